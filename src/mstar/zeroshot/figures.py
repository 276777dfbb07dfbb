"""Zero-shot figure: balanced accuracy against the pooling size j, with slide-level scoring and chance."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def plot_topj(per_split: Mapping[str, Mapping[str, dict]], js: list[int], chosen_j: int, n_classes: int,
              path: Path) -> Path:
    """One line per split of ``patch_top<j>/balanced_accuracy`` (CI band), a dashed line for ``slide``.

    Args:
        per_split: ``{split: metrics entries}`` as written to ``metrics.json``.
        js: The pooling sizes, ascending.
        chosen_j: Marked with a vertical line.
        n_classes: Chance level is ``1 / n_classes``.
        path: PNG to write.
    """
    from mstar.eval.plots import new_figure, save_figure

    fig = new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    for split, entries in per_split.items():
        rows = [entries[f"patch_top{j}/balanced_accuracy"] for j in js]
        vals = np.array([r["value"] for r in rows])
        line = ax.plot(js, vals, marker="o", label=f"{split}: patch top-j")[0]
        ax.fill_between(js, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], color=line.get_color(),
                        alpha=0.15)
        slide = entries.get("slide/balanced_accuracy")
        if slide:
            ax.axhline(slide["value"], ls="--", color=line.get_color(), label=f"{split}: slide embedding")
    ax.axhline(1.0 / n_classes, ls=":", color="grey", label="chance")
    ax.axvline(chosen_j, color="black", lw=0.8, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xticks(js, [str(j) for j in js])
    ax.set(xlabel="j (top patches pooled per class)", ylabel="balanced accuracy", ylim=(0, 1.02),
           title=f"zero-shot: j = {chosen_j} chosen on validation")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
