"""Every figure writes a non-empty PNG of the expected pixel size."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.eval.plots import (
    plot_confusion,
    plot_embeddings_2d,
    plot_metric_vs_k,
    plot_roc,
    plot_training_curves,
)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return struct.unpack(">II", data[16:24])


def _classification(n=60, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2 * np.eye(c)[y]
    return y, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_roc_and_confusion(tmp_path):
    y, p = _classification()
    assert png_size(plot_roc(y, p, ["a", "b", "c"], tmp_path / "roc.png")) == (600, 500)
    assert png_size(plot_roc(y % 2, np.stack([1 - p[:, 0], p[:, 0]], 1), ["n", "p"], tmp_path / "roc2.png")) \
        == (600, 500)
    assert png_size(plot_confusion(y, p.argmax(1), ["a", "b", "c"], tmp_path / "cm.png")) == (600, 500)


def test_training_curves(tmp_path):
    log = pd.DataFrame({
        "epoch": range(5), "train/loss": np.linspace(1, 0.2, 5), "val/loss": [0.9, np.nan, 0.5, np.nan, 0.4],
        "val/auc_macro": np.linspace(0.5, 0.9, 5), "lr": np.linspace(1e-4, 0, 5),
    })
    log.to_csv(tmp_path / "log.csv", index=False)
    # panels: loss (train + val), auc_macro, lr -> 3 panels in one row
    assert png_size(plot_training_curves(tmp_path / "log.csv", tmp_path / "curves.png")) == (1200, 350)
    with pytest.raises(MstarError, match="no 'step' column"):
        plot_training_curves(log, tmp_path / "x.png", x="step")


def test_metric_vs_k_and_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"method": m, "k": k, "value": rng.random(), "seed": s}
            for m in ("mstar", "baseline") for k in (1, 2, 4, 8) for s in range(5)]
    assert png_size(plot_metric_vs_k(pd.DataFrame(rows), tmp_path / "fewshot.png")) == (600, 500)
    emb = rng.normal(size=(40, 8))
    labels = ["a"] * 20 + ["b"] * 20
    assert png_size(plot_embeddings_2d(emb, labels, tmp_path / "pca.png")) == (600, 500)
    assert png_size(plot_embeddings_2d(emb, labels, tmp_path / "tsne.png", method="tsne")) == (600, 500)
