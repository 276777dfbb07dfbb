"""Hierarchical scan (`mstar extract --scan`): a quick low-power look at the whole slide ranks regions, then
only the top share of the tissue is embedded at high power.

::

    root/tiles/<slide>.h5                       the high-power tiles (`mstar tile`), as usual
    root/scan/tiles/, scan/features/<enc>/      the low-power pass: tiles at ``scan_mpp`` and their features
    root/scan/regions/<slide>.csv               each low-power region's score (the scan run's attention)
    root/scan/keep<pct>/tiles/<slide>.h5        the kept high-power tiles; ``skipped_coords`` = the others
    root/scan/keep<pct>/features/<enc>/         the bags: only the kept tiles were embedded

The ranking comes from a trained run (``scan_run``) on **low-power** features of the same encoder (e.g.
`mstar train classify --features root/scan/features/<enc>` on the training slides): its attention over a
slide's low-power tiles, averaged over the run's units. Each high-power tile takes the score of the
low-power region its centre lies in; tiles are kept by region score, best first, until ``keep_fraction`` of
the slide's high-power tiles. The kept bag's features file says what was skipped (``scan_total_tiles``,
``scan_kept_tiles``, ``scan_keep_fraction``, its tiles file's ``skipped_coords``).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError
from mstar.features.context import context_rows
from mstar.utils.atomic import finished_files

log = logging.getLogger(__name__)


def keep_mask(region_scores: np.ndarray, regions: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Which high-power tiles to embed: by their region's score, best first (tiles outside every scored
    region last; ties in tile order), the first ``ceil(keep_fraction * N)``."""
    n = len(regions)
    region_scores = np.asarray(region_scores, np.float64)
    if not len(region_scores):  # no low-power tissue tile: no ranking, the tiles in their order
        regions = np.full(n, -1)
        region_scores = np.zeros(1)
    score = np.where(regions >= 0, region_scores[np.maximum(regions, 0)], -np.inf)
    order = np.argsort(-score, kind="stable")
    keep = np.zeros(n, bool)
    keep[order[: min(n, max(1, math.ceil(keep_fraction * n)))]] = True
    return keep


def scan_run_for(run_dir: str | os.PathLike, encoder, scan_mpp: float | None):
    """The scan run's models and the low-power µm/px, checked against ``encoder`` before any work: the run
    must be slide-only, trained on this encoder's weights (hash), width and, when it records them, its
    features' µm/px (``scan_mpp`` None: that µm/px, else 2).

    Raises:
        MstarError: another kind of run, another encoder's weights or width, or another µm/px.
    """
    from mstar.data.feature_dirs import check_same_encoder
    from mstar.predict.models import load_run_models

    run = load_run_models(run_dir)
    if run.multimodal or run.context:
        raise MstarError(f"{run_dir}: the scan run must be a slide-only classify/survival run on single-"
                         "resolution low-power features")
    check_same_encoder("the low-power pass", {"encoder": encoder.name, "encoder_sha": encoder.encoder_sha},
                       run.identity, "train the scan run on the low-power features of this encoder "
                       "(`mstar extract --scan-only`), or pass the encoder and weights it was trained on",
                       "the scan run was trained on")
    if encoder.dim != run.in_dim:
        raise MstarError(f"--encoder {encoder.name}: {encoder.dim}-d features, but the scan run takes "
                         f"{run.in_dim}-d; train it on the low-power features of the same encoder")
    trained_mpp = run.identity.get("target_mpp")
    if scan_mpp is None:
        scan_mpp = float(trained_mpp) if trained_mpp is not None else 2.0
    elif trained_mpp is not None and not math.isclose(float(trained_mpp), float(scan_mpp), rel_tol=1e-3):
        raise MstarError(f"--scan-mpp {scan_mpp:g}: the scan run was trained on features at "
                         f"{float(trained_mpp):g} µm/px; pass --scan-mpp {float(trained_mpp):g} (or leave it "
                         "out)")
    return run, float(scan_mpp)


def scan_scores(run, lp_features: Path) -> dict[str, np.ndarray]:
    """Each slide's low-power tile scores: the attention of the scan run's models (``RunModels``, mean over
    units; :func:`scan_run_for` checked the encoder's width against them)."""
    from mstar.features.io import load_features
    from mstar.predict.ensemble import predict_bag

    out = {}
    for path in finished_files(lp_features, (".h5",)):
        feats, _, _ = load_features(path)
        if len(feats) == 0:
            out[path.stem] = np.zeros(0)
            continue
        out[path.stem] = predict_bag(run, torch.as_tensor(np.asarray(feats))).scores
    return out


def keep_folder(root: Path, keep_fraction: float) -> Path:
    """``root/scan/keep<pct>``: the percentage as written (``keep25``, ``keep30.4``), so that two shares
    never share a folder."""
    return root / "scan" / f"keep{round(100 * keep_fraction, 6):g}"


def hierarchical_scan(root: str | os.PathLike, encoder: str, scan_run: str | os.PathLike,
                      keep_fraction: float = 0.25, scan_mpp: float | None = None,
                      checkpoint: str | None = None, batch_size: int = 64, skip_errors: bool = False,
                      show_progress: bool = True, precision: str | None = None) -> dict:
    """Run the low-power pass, rank regions with ``scan_run`` and embed the top ``keep_fraction`` of every
    slide's high-power tiles (see the module docstring for the files).

    ``scan_mpp`` None: the µm/px of the scan run's training features. The run, the encoder's weights and
    width and the µm/px are checked before any work (:func:`scan_run_for`).

    Returns:
        ``{"features": folder of the kept bags, "summary": DataFrame (slide, total, kept, low-power tiles),
        "scan_mpp": the low-power µm/px, "seconds": {"low_power_pass", "scoring", "high_power_features"}}``.
    """
    import time

    from mstar.features.context import low_power_pass
    from mstar.features.encoders import create_encoder
    from mstar.features.extract import extract_features
    from mstar.slide.tiles_file import read_tiles, write_tiles
    from mstar.utils.atomic import write_text_atomic

    root = Path(root)
    if not 0 < keep_fraction <= 1:
        raise MstarError(f"--keep-fraction {keep_fraction}: expected a share in (0, 1]")
    enc = create_encoder(encoder, checkpoint)
    run, scan_mpp = scan_run_for(scan_run, enc, scan_mpp)
    seconds = {}
    start = time.perf_counter()
    lp_feature_dir = low_power_pass(root, enc, scan_mpp, batch_size=batch_size, skip_errors=skip_errors,
                                    show_progress=show_progress, precision=precision)
    seconds["low_power_pass"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = scan_scores(run, lp_feature_dir)
    seconds["scoring"] = time.perf_counter() - start
    hp_files = finished_files(root / "tiles", (".h5",))
    kept_root = keep_folder(root, keep_fraction)
    rows = []
    for hp in hp_files:
        coords, attrs = read_tiles(hp)
        sid = str(attrs["slide_id"])
        lp_path = root / "scan" / "tiles" / hp.name
        if sid not in scores or not lp_path.is_file():
            if not skip_errors:
                raise MstarError(f"{sid}: no low-power pass (see {root}/scan/tiles/summary.csv)")
            continue
        lp_coords, lp_attrs = read_tiles(lp_path)
        regions = context_rows(coords, int(attrs["tile_px_level0"]), lp_coords,
                               int(lp_attrs["tile_px_level0"]))
        keep = keep_mask(scores[sid], regions, keep_fraction)
        pd_scores = pd.DataFrame({"x": lp_coords[:, 0], "y": lp_coords[:, 1],
                                  "tile_px_level0": int(lp_attrs["tile_px_level0"]), "score": scores[sid]})
        (root / "scan" / "regions").mkdir(parents=True, exist_ok=True)
        write_text_atomic(root / "scan" / "regions" / f"{sid}.csv", pd_scores.to_csv(index=False))
        with h5py.File(hp, "r") as f:
            fraction = np.asarray(f["tissue_fraction"][:])
        scan_attrs = {**attrs, "scan_total_tiles": int(len(coords)), "scan_kept_tiles": int(keep.sum()),
                      "scan_keep_fraction": float(keep_fraction), "scan_mpp": float(scan_mpp),
                      "scan_run": str(scan_run), "scan_source_tiles": str(hp.resolve())}
        write_tiles(kept_root / "tiles" / hp.name, coords[keep], fraction[keep], scan_attrs,
                    {"skipped_coords": coords[~keep].astype(np.int64).reshape(-1, 2)})
        rows.append({"slide": sid, "tiles": len(coords), "kept": int(keep.sum()),
                     "low_power_tiles": len(lp_coords)})
    start = time.perf_counter()
    extract_features(kept_root, enc, batch_size=batch_size, skip_errors=skip_errors,
                     show_progress=show_progress, precision=precision)
    seconds["high_power_features"] = time.perf_counter() - start
    return {"features": str(kept_root / "features" / enc.folder_name), "summary": pd.DataFrame(rows),
            "scan_mpp": scan_mpp, "seconds": seconds}


def skipped_tiles(features_file: str | os.PathLike) -> np.ndarray:
    """The high-power tiles a scanned bag skipped ``(K, 2)`` (level-0 top-left), read from its tiles file."""
    from mstar.features.io import load_features

    _, _, attrs = load_features(features_file)
    tiles = attrs.get("tiles_file")
    if "scan_total_tiles" not in attrs or not tiles or not Path(tiles).is_file():
        raise MstarError(f"{features_file}: not a scanned bag (no scan attributes or tiles file)")
    with h5py.File(tiles, "r") as f:
        return np.asarray(f["skipped_coords"][:])
