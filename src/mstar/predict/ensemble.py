"""One slide through every model of a run: the prediction with its spread over the models, and the per-tile
evidence averaged over them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError
from mstar.predict.models import RunModels, fusion_outputs, omics_input, unit_outputs


@dataclass
class SlidePrediction:
    """The ensemble's prediction for one slide.

    Attributes:
        row: The ``predictions.csv`` row: probabilities (``prob_<class>``, their ``sd_<class>`` over models),
            ``predicted``, ``confidence``; or ``risk``, ``risk_sd``, ``risk_group``, ``high_risk_votes``.
        scores: Per-tile evidence ``(N,)``, the mean over the models.
        scores_sd: Its standard deviation over the models ``(N,)`` (0 for one model).
        score_kind: What the evidence is (``attention``, ``per-tile class score``, ``per-tile risk``).
    """

    row: dict
    scores: np.ndarray
    scores_sd: np.ndarray
    score_kind: str
    per_model: list[dict] = field(default_factory=list)
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # multimodal: co-attention per gene group

    @property
    def label(self) -> str:
        """A short text: ``LUAD (0.93 ± 0.02)`` or ``risk 0.41 ± 0.10 (high)``."""
        r = self.row
        if "predicted" in r:
            return f"{r['predicted']} ({r['confidence']:.2f} ± {r['confidence_sd']:.2f})"
        return f"risk {r['risk']:.3f} ± {r['risk_sd']:.3f} ({r['risk_group']})"


def predict_bag(run: RunModels, feats: torch.Tensor, omics: pd.Series | None = None) -> SlidePrediction:
    """Every model of ``run`` on one bag ``feats`` ``(N, D)`` (and, for a multimodal run, the case's omic
    profile ``omics``: one row of an omics table)."""
    if run.multimodal:
        if omics is None:
            raise MstarError("a multimodal run needs the case's omics (--omics TABLE)")
        outs = [fusion_outputs(m, feats, omics_input(info, omics)) for m, info in zip(run.models, run.infos)]
    else:
        outs = [unit_outputs(m, feats) for m in run.models]
        if run.kind == "classification" and outs[0][2] == "per-tile class score" and len(outs) > 1:
            best = int(np.mean([o["probs"] for o, _, _ in outs], axis=0).argmax())  # the ensemble's class
            outs = [unit_outputs(m, feats, best) for m in run.models]
    scores = np.stack([s for _, s, _ in outs])  # (U, N)
    sd = lambda a: a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1:])  # noqa: E731
    row: dict = {"n_models": len(outs), "n_tiles": int(feats.shape[0])}
    if run.kind == "classification":
        probs = np.stack([o["probs"] for o, _, _ in outs])  # (U, C)
        mean, spread = probs.mean(axis=0), sd(probs)
        best = int(mean.argmax())
        row.update({f"prob_{c}": float(p) for c, p in zip(run.classes, mean)})
        row.update({f"sd_{c}": float(s) for c, s in zip(run.classes, spread)})
        row.update({"predicted": run.classes[best], "confidence": float(mean[best]),
                    "confidence_sd": float(spread[best])})
    else:
        risks = np.array([o["risk"] for o, _, _ in outs])  # (U,)
        votes = int((risks > np.asarray(run.risk_cutoffs)).sum())
        row.update({"risk": float(risks.mean()), "risk_sd": float(sd(risks[:, None])[0]),
                    "risk_group": ("high" if 2 * votes > len(risks) else "low" if 2 * votes < len(risks)
                                   else "tied"),  # an even ensemble split in half: neither group
                    "high_risk_votes": votes})
    groups = {}
    if outs[0][0].get("groups") is not None:  # (G, N) per model -> mean over models, one entry per group
        mean_groups = np.mean([o["groups"] for o, _, _ in outs], axis=0)
        groups = dict(zip(run.infos[0]["omic_groups"], mean_groups))
    return SlidePrediction(row, scores.mean(axis=0), sd(scores), outs[0][2],
                           [{k: v for k, v in o.items() if k != "groups"} for o, _, _ in outs], groups)
