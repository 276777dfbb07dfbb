"""A tiny feature-level multimodal cohort (bags, reports, RNA) and a few-dozen-step stage-1 training loop.

Bags: a cancer-type direction added to half of each bag's patches. Reports use the synthetic cohort's
cancer-type synonyms (so the packaged prompt file fits). RNA: ten marker genes per type.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tests.tasks._bags import write_bag

TYPES = ("BRCA", "LUSC", "KIRC")
DISTRACTORS = ("Surgical margins are free of tumor.", "Lymphovascular invasion is not identified.",
               "Sections were submitted in six cassettes.", "The background shows mild inflammation.")
VISION = {"heads": 2, "dim_head": 16, "num_landmarks": 8, "attn_dropout": 0.0}


def make_cohort(root: Path, n_cases: int = 60, dim: int = 16, seed: int = 0, signal: float = 2.0,
                nuisance: float = 0.0) -> dict:
    """Write ``features/``, ``manifest.csv`` (60/20/20 per type), ``reports.json`` and ``rna.csv``.

    ``nuisance`` scales a random per-case offset of every patch (a stain/site effect): it makes one support
    slide a poor class example, so few-shot accuracy grows with k.
    """
    from mstar.data.synthetic.types import CANCER_TYPES

    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(TYPES), dim))
    genes = [f"G{g:02d}" for g in range(30)]
    rows, reports, expr = [], {}, {}
    for i in range(n_cases):
        k = i % len(TYPES)
        code = TYPES[k]
        n = int(rng.integers(24, 48))
        feats = rng.normal(size=(n, dim))
        feats[rng.random(n) < 0.5] += signal * directions[k]
        feats += nuisance * rng.normal(size=dim)
        slide, case = f"S{i:03d}", f"C{i:03d}"
        write_bag(root / "features" / f"{slide}.h5", feats)
        t = CANCER_TYPES[code]
        name, proc = (t.names[int(rng.integers(len(t.names)))],
                      t.procedures[int(rng.integers(len(t.procedures)))])
        reports[slide] = (f"FINAL DIAGNOSIS: {proc.capitalize()}: {name}, grade {int(rng.integers(1, 4))}. "
                          f"{DISTRACTORS[int(rng.integers(len(DISTRACTORS)))]}")
        profile = rng.normal(size=len(genes))
        profile[k * 10:(k + 1) * 10] += 2.5
        expr[case] = profile
        nth = i // len(TYPES)  # position within its type
        fold = "test" if nth % 5 == 4 else "val" if nth % 5 == 3 else "train"
        rows.append({"case": case, "slide": slide, "label": code, "fold": fold})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    (root / "reports.json").write_text(json.dumps(reports))
    pd.DataFrame(expr, index=genes).rename_axis("gene").reset_index().to_csv(root / "rna.csv", index=False)
    return {"root": root, "manifest": root / "manifest.csv", "features": root / "features",
            "reports": root / "reports.json", "rna": root / "rna.csv"}


def build_model(cohort: dict, dim: int = 32, seed: int = 0, text=None):
    """A fresh stage-1 model (MiniLM text tower, SNN gene encoder fitted on the training cases)."""
    from mstar.data.rna import read_rna_table
    from mstar.models.gene_encoder import SNNGeneEncoder
    from mstar.pretrain.stage1_model import Stage1Model, build_text_encoder

    torch.manual_seed(seed)
    text = text or build_text_encoder(None, dim, max_tokens=64)
    table = read_rna_table(cohort["rna"])
    gene = SNNGeneEncoder(list(table.columns), proj_dim=dim, hidden=(32,), dropout=0.0)
    gene.fit(torch.tensor(table.to_numpy(np.float32)))
    in_dim = 16
    return Stage1Model(in_dim, dim, text, gene, VISION)


def train_stage1(model, cohort: dict, steps: int = 40, batch: int = 16, lr: float = 2e-3, seed: int = 0):
    """A minimal stage-1 loop (``stage1_loss`` on slide/report/gene) over the training cases."""
    from mstar.data.rna import read_rna_table
    from mstar.features.io import load_features
    from mstar.pretrain.losses import stage1_loss

    manifest = pd.read_csv(cohort["manifest"])
    train = manifest[manifest["fold"] == "train"].reset_index(drop=True)
    reports = json.loads(Path(cohort["reports"]).read_text())
    rna = read_rna_table(cohort["rna"])
    bags = [torch.tensor(np.asarray(load_features(cohort["features"] / f"{s}.h5")[0]))
            for s in train["slide"]]
    labels = torch.tensor(pd.Categorical(train["label"], categories=TYPES).codes, dtype=torch.long)
    genes = torch.tensor(rna.loc[train["case"]].to_numpy(np.float32))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(train), generator=g)[:batch]
        n_max = max(bags[i].shape[0] for i in idx)
        x = torch.zeros(len(idx), n_max, bags[0].shape[1])  # (B, N, D)
        mask = torch.zeros(len(idx), n_max, dtype=torch.bool)
        for r, i in enumerate(idx):
            x[r, : bags[i].shape[0]] = bags[i]
            mask[r, : bags[i].shape[0]] = True
        zs = model.encode_slide(x, mask)
        zr = model.encode_text([reports[train["slide"][int(i)]] for i in idx])
        zg = model.encode_gene(genes[idx], torch.ones_like(genes[idx], dtype=torch.bool))
        ones = torch.ones(len(idx), dtype=torch.bool)
        loss = stage1_loss(zs, zr, zg, ones, ones, labels[idx], model.logit_scale())["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
