"""Reading the ``embeddings.h5`` that ``mstar embed`` writes (stage-1 slide, report and gene vectors).

The layout (written by :mod:`mstar.pretrain.stage1_embed`): ``slide_id``, ``case_id`` ``(S,)`` strings;
``slide``, ``report``, ``gene`` ``(S, E)`` float32 with NaN rows where a modality is absent; ``has_slide``,
``has_report``, ``has_gene`` ``(S,)`` bool; attrs ``checkpoint``, ``checkpoint_digest`` (content digest of
the stage-1 checkpoint), ``dim``, ``train_cases`` (JSON list of the cases the stage-1 model was trained on,
when its checkpoint records them), ``train_cases_complete`` (False when a continued model's earlier cases
are unknown) and ``reports_digest`` (of the reports file). Stages that consume the vectors (the report
task's neighbour consensus) read them here, below the stage that writes them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mstar.errors import MstarError

MODALITIES = ("slide", "report", "gene")
log = logging.getLogger(__name__)


def warn_unrecorded(where, train_cases, complete: bool = True,
                    scored: str = "this run's val/test cases") -> None:
    """Warn when a stage-1 checkpoint (or its embeddings file) does not record every case it was trained on
    (upstream's checkpoints, a continued model): whether it saw the ``scored`` cases cannot be checked."""
    if train_cases is None or not complete:
        what = "the cases" if train_cases is None else "all the cases (a continued model)"
        log.warning("%s: its stage-1 checkpoint does not record %s it was trained on; make sure it never saw "
                    "%s", where, what, scored)


def cases_seen(train_cases, aliases: dict[str, list[str]]) -> list[str]:
    """The keys of ``aliases`` that a stage-1 model trained on ``train_cases`` saw: the key or one of its
    aliases is among them (a case with its slide ids, or a slide with its case ids: a manifest whose cases
    are slide ids is matched too); none when ``train_cases`` is None (not recorded). The one rule the
    stage-1 leakage checks share."""
    if train_cases is None:
        return []
    trained = {str(c) for c in train_cases}
    return [k for k, other in aliases.items() if trained & {str(k), *map(str, other)}]


@dataclass(frozen=True)
class CohortEmbeddings:
    """Stage-1 vectors of a cohort, one row per slide; ``vectors[m]`` is ``(S, E)`` with NaN rows where the
    slide has no modality ``m``."""

    path: Path
    slide_ids: list[str]
    case_ids: list[str]
    vectors: dict[str, np.ndarray]
    checkpoint: str
    train_cases: frozenset[str] | None = None  # cases the stage-1 model was trained on (None: not recorded)
    train_cases_complete: bool = True          # False: a continued model whose earlier cases are unknown
    checkpoint_digest: str = ""                # content digest of the stage-1 checkpoint ("" in older files)
    reports_digest: str = ""                   # content digest of the reports file the texts came from
    rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {s: i for i, s in enumerate(self.slide_ids)})

    @property
    def model_id(self) -> str:
        """What identifies the stage-1 model: its content digest, else its resolved path."""
        return self.checkpoint_digest or str(Path(self.checkpoint).resolve())

    def trained_on(self, slide_ids: list[str], case_of: dict[str, str] | None = None) -> list[str]:
        """The slides of ``slide_ids`` the stage-1 model was trained on: their case (from ``case_of``, e.g.
        the caller's manifest, and from this file) or the slide id itself is among its training cases (none
        when unrecorded)."""
        own, case_of = dict(zip(self.slide_ids, self.case_ids)), case_of or {}
        return cases_seen(self.train_cases, {s: [own.get(s, s), case_of.get(s, s)] for s in slide_ids})

    @property
    def dim(self) -> int:
        """Embedding width ``E``."""
        return next(iter(self.vectors.values())).shape[1]

    def lookup(self, modality: str, slide_ids: list[str], what: str) -> torch.Tensor:
        """The L2-normalised ``(len(slide_ids), E)`` vectors of ``modality`` for ``slide_ids``.

        Raises:
            MstarError: Naming the file, the modality and the first slides without a vector (``what`` says
                which slides they are, e.g. "training slides").
        """
        table = self.vectors.get(modality)
        if table is None:
            raise MstarError(f"{self.path}: no {modality} embeddings; run `mstar embed` with the "
                             f"{'--reports' if modality == 'report' else '--features'} of the cohort")
        idx = [self.rows.get(s, -1) for s in slide_ids]
        missing = [s for s, i in zip(slide_ids, idx) if i < 0 or not np.isfinite(table[i]).all()]
        if missing:
            raise MstarError(f"{self.path}: {len(missing)} {what} have no {modality} embedding (e.g. "
                             f"{', '.join(missing[:3])}); embed them with "
                             f"`mstar embed --stage1 {self.checkpoint}` and pass that file")
        return F.normalize(torch.from_numpy(table[idx]).float(), dim=1)  # (n, E)


def read_cohort_embeddings(path: str | Path) -> CohortEmbeddings:
    """Read an ``embeddings.h5`` of ``mstar embed``.

    Raises:
        MstarError: When the file is missing or not such a file (one line naming it).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MstarError(f"{path}: no such embeddings file (write one with `mstar embed`)")
    try:
        with h5py.File(path, "r") as f:
            if "slide_id" not in f:
                raise MstarError(f"{path}: not an `mstar embed` file (no 'slide_id' dataset)")
            slide_ids = [str(s) for s in f["slide_id"].asstr()[:]]
            case_ids = [str(s) for s in f["case_id"].asstr()[:]] if "case_id" in f else list(slide_ids)
            vectors = {}
            for m in MODALITIES:
                if m in f and f[m].ndim == 2:
                    table = f[m][:].astype(np.float32)
                    if np.isfinite(table).any():
                        vectors[m] = table
            attrs = dict(f.attrs)
    except OSError as err:
        raise MstarError(f"{path}: cannot read the embeddings file ({err})") from None
    if not vectors:
        raise MstarError(f"{path}: holds no slide, report or gene embeddings")
    train_cases = None
    if attrs.get("train_cases") is not None:
        try:
            train_cases = frozenset(str(c) for c in json.loads(attrs["train_cases"]))
        except (TypeError, ValueError):
            raise MstarError(f"{path}: attribute 'train_cases' is not a JSON list of case ids; embed again "
                             "with `mstar embed`") from None
    return CohortEmbeddings(path, slide_ids, case_ids, vectors, str(attrs.get("checkpoint", "")), train_cases,
                            bool(attrs.get("train_cases_complete", True)),
                            str(attrs.get("checkpoint_digest", "")), str(attrs.get("reports_digest", "")))
