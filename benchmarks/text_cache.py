"""The frozen text encoder's [CLS] cache across commands (``--text-cache``) vs encoding the reports again.

One command of the real-data benchmark (pretrain, embed, zero-shot, retrieve) reads up to ~3,900 prepared
reports; without the on-disk cache each command runs MiniLM over all of them again. Side by side, same
reports, same process: a fresh model encoding ``--reports`` prepared real TCGA reports (what every command
pays without the cache), a fresh model filled from the cache folder (what it pays with it), and the check
that both give the same embeddings. The training-time cost of fine-tuning instead of freezing is in
RESULTS.md ("Frozen vs fine-tuned text encoder").

``--data`` is the shared data folder (default: ``$MSTAR_SHARED_DATA``, ``<repo>/shared/data`` or
``<repo>/../shared/data``), which holds ``tcga_reports/tcga_reports.csv.gz``.

    python benchmarks/text_cache.py --data ../shared/data --reports 400
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _cli import run, shared_data
from mstar.data.reports import load_reports
from mstar.errors import MstarError
from mstar.pretrain.stage1_model import Stage1Model, build_text_encoder


def fresh_model(max_tokens: int) -> Stage1Model:
    torch.manual_seed(0)
    return Stage1Model(None, 128, build_text_encoder(None, 128, max_tokens), None).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder (default: see above)")
    ap.add_argument("--reports", type=int, default=400, help="prepared reports to encode")
    ap.add_argument("--max-tokens", type=int, default=256, help="text encoder tokens per report")
    args = ap.parse_args()
    if args.reports < 1:
        raise MstarError(f"--reports {args.reports}: expected at least 1")
    table = "tcga_reports/tcga_reports.csv.gz"
    path = shared_data(table) if args.data is None else shared_data(explicit=args.data / table)
    texts, _ = load_reports(path, max_tokens=args.max_tokens)
    texts = [t for t in texts.values() if t][: args.reports]
    with tempfile.TemporaryDirectory() as cache, torch.no_grad():
        cold = fresh_model(args.max_tokens)
        start = time.perf_counter()
        z_cold = torch.cat([cold.encode_text(texts[i:i + 64]) for i in range(0, len(texts), 64)])  # (R, 128)
        t_cold = time.perf_counter() - start
        cold.save_text_cache(cache)
        warm = fresh_model(args.max_tokens)
        start = time.perf_counter()
        loaded = warm.load_text_cache(cache)
        z_warm = torch.cat([warm.encode_text(texts[i:i + 64]) for i in range(0, len(texts), 64)])
        t_warm = time.perf_counter() - start
    same = torch.allclose(z_cold, z_warm, atol=1e-6)
    print(f"{len(texts)} reports, max_tokens {args.max_tokens}, {torch.get_num_threads()} threads")
    print(f"encode (no cache):   {t_cold:7.2f} s  ({1000 * t_cold / len(texts):.1f} ms/report)")
    print(f"from cache ({loaded}):  {t_warm:7.2f} s  ({1000 * t_warm / len(texts):.2f} ms/report)")
    print(f"speed-up {t_cold / t_warm:.0f}x; same embeddings: {same}")


if __name__ == "__main__":
    run(main)
