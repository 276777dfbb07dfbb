"""Continuing a stage-1 model on new cases (learning as cases accrue), with replay of earlier training cases.

``continue_from`` names a finished stage-1 run folder (or its ``checkpoints/stage1.pt``). The new run starts
from that model, keeps its architecture and gene vocabulary (the gene encoder's normalisation stays the one
fitted on the first cohort), and trains on this run's cases. ``replay_fraction`` mixes back that share of the
earlier run's training cases (stratified by cancer type, seeded), read from the earlier run's
``config.yaml`` (manifest, cancer-type filter); their reports and RNA come from this run's inputs, so both
runs should point at the same report and RNA tables. Replay counters forgetting: without it, figures on the
first cohort drift toward those of a model never trained on it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mstar.errors import MstarError

log = logging.getLogger(__name__)


@dataclass
class Continuation:
    checkpoint: Path               # the stage1.pt started from
    run: Path | None               # the earlier run folder (None when a bare checkpoint was given)


def resolve_continuation(source: str | os.PathLike) -> Continuation:
    """The checkpoint and run folder behind ``continue_from`` (a run folder or a ``stage1.pt`` file)."""
    path = Path(source)
    ckpt = path / "checkpoints" / "stage1.pt" if path.is_dir() else path
    if not ckpt.is_file():
        from mstar.run.folder import record_field

        kind = record_field(path, "kind") if path.is_dir() else None
        if kind and kind != "pretrain":
            raise MstarError(f"{source}: a {kind} run, not a stage-1 run; continue_from takes a finished "
                             "`mstar pretrain` run folder or its checkpoints/stage1.pt")
        raise MstarError(f"{source}: continue_from needs a finished stage-1 run folder or its "
                         "checkpoints/stage1.pt (not found)")
    run = ckpt.parent.parent
    return Continuation(ckpt, run if (run / "config.yaml").is_file() else None)


def replay_rows(cont: Continuation, fraction: float, seed: int) -> pd.DataFrame:
    """``fraction`` of the earlier run's training cases (all their slides), stratified by cancer type."""
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_inputs import read_slide_table

    if cont.run is None:
        raise MstarError(f"{cont.checkpoint}: replay_fraction needs the earlier run folder (its config.yaml "
                         "names the training cases); pass the run folder to continue_from")
    prev = Stage1Config.load(cont.run / "config.yaml")
    rows = read_slide_table(prev.manifest, prev.label_column, prev.val_fraction, prev.seed)
    rows = select_labels(rows, prev.labels, prev.manifest)
    rows = rows[rows["split"] == "train"]
    rng = np.random.default_rng(seed + 104729)
    keep: list[str] = []
    for _, cases in rows.drop_duplicates("case").groupby("label")["case"]:
        picked = cases.to_numpy().copy()
        rng.shuffle(picked)
        keep.extend(picked[:int(round(fraction * len(picked)))])
    log.warning("replay: %d of %d earlier training cases mixed in", len(keep), rows["case"].nunique())
    return rows[rows["case"].isin(set(keep))]


def select_labels(rows: pd.DataFrame, labels: list[str] | None, where: str) -> pd.DataFrame:
    """Rows of the given cancer types (all when ``labels`` is None); unknown names are a one-line error."""
    if not labels:
        return rows
    unknown = sorted(set(labels) - set(rows["label"]))
    if unknown:
        raise MstarError(f"{where}: labels {unknown} are not cancer types of the manifest "
                         f"(it has {sorted(rows['label'].unique())[:12]})")
    return rows[rows["label"].isin(set(labels))].reset_index(drop=True)


def add_replay(rows: pd.DataFrame, replay: pd.DataFrame) -> pd.DataFrame:
    """This run's rows plus replayed training rows not already in it (by slide)."""
    extra = replay[~replay["slide"].isin(set(rows["slide"]))].assign(split="train")
    return pd.concat([rows, extra], ignore_index=True)
