"""Reading the ``embeddings.h5`` that ``mstar embed`` writes (stage-1 slide, report and gene vectors).

The layout (written by :mod:`mstar.pretrain.stage1_embed`): ``slide_id``, ``case_id`` ``(S,)`` strings;
``slide``, ``report``, ``gene`` ``(S, E)`` float32 with NaN rows where a modality is absent; ``has_slide``,
``has_report``, ``has_gene`` ``(S,)`` bool; attrs ``checkpoint``, ``dim`` and ``train_cases`` (JSON list of
the cases the stage-1 model was trained on, when its checkpoint records them). Stages that consume the vectors
(the report task's neighbour consensus) read them here, below the stage that writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mstar.errors import MstarError

MODALITIES = ("slide", "report", "gene")


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

    def trained_on(self, slide_ids: list[str]) -> list[str]:
        """The slides of ``slide_ids`` whose case the stage-1 model was trained on (none when unrecorded)."""
        if self.train_cases is None:
            return []
        case_of = dict(zip(self.slide_ids, self.case_ids))
        return [s for s in slide_ids if case_of.get(s, s) in self.train_cases]

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
        row = {s: i for i, s in enumerate(self.slide_ids)}
        idx = [row.get(s, -1) for s in slide_ids]
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
            slide_ids = f["slide_id"][:].astype(str).tolist()
            case_ids = f["case_id"][:].astype(str).tolist() if "case_id" in f else list(slide_ids)
            trained = f.attrs.get("train_cases")
            train_cases = frozenset(json.loads(trained)) if trained is not None else None
            vectors = {m: f[m][:].astype(np.float32) for m in MODALITIES
                       if m in f and f[m].ndim == 2 and np.isfinite(f[m][:]).any()}
            checkpoint = str(f.attrs.get("checkpoint", "<stage-1 checkpoint>"))
    except OSError as err:
        raise MstarError(f"{path}: cannot read the embeddings file ({err})") from None
    if not vectors:
        raise MstarError(f"{path}: holds no slide, report or gene embeddings")
    return CohortEmbeddings(path, slide_ids, case_ids, vectors, checkpoint, train_cases)
