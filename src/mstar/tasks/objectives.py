"""What is predicted and how it is scored: classification and discrete-time survival.

An objective turns manifest rows into targets, a model output into a loss and into per-case prediction
columns, and prediction tables into metrics (a fast selection score per epoch, and every metric with a
bootstrap CI at the end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mstar.errors import MstarError
from mstar.models.losses import nll_surv_loss
from mstar.models.output import MILOutput

log = logging.getLogger(__name__)


class ClassificationObjective:
    """Cross-entropy over the manifest's classes; selection by validation macro-AUC."""

    kind = "classification"
    selection_metric = "auc_macro"

    def __init__(self, classes: list[str], ordinal: bool = False):
        self.classes = classes
        self.ordinal = ordinal
        self.index = {c: i for i, c in enumerate(classes)}

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    @classmethod
    def from_table(cls, table: pd.DataFrame, ordinal: bool | None,
                   where: str = "the manifest") -> ClassificationObjective:
        classes = sorted(table["label"].unique(), key=lambda s: (not s.lstrip("-").isdigit(), _num(s), s))
        if len(classes) < 2:
            raise MstarError(f"{where}: a single class ({classes}); classification needs two or more")
        if ordinal is None:
            ordinal = all(c.lstrip("-").isdigit() for c in classes) and len(classes) > 2
        return cls(classes, ordinal)

    def fit(self, train: pd.DataFrame, where: str = "the manifest") -> None:
        """Nothing is estimated from the training rows for classification."""

    def targets(self, rows: pd.DataFrame) -> list:
        return [torch.tensor(self.index[label]) for label in rows["label"]]

    def loss(self, out: MILOutput, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits.float(), target.long())

    def outputs(self, out: MILOutput) -> dict[str, np.ndarray]:
        probs = torch.softmax(out.logits.float(), dim=1).cpu().numpy()
        return {f"prob_{c}": probs[:, i] for i, c in enumerate(self.classes)}

    def truth_columns(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"label": rows["label"].to_numpy(), "y": rows["label"].map(self.index).to_numpy()}

    def _arrays(self, preds: pd.DataFrame):
        probs = preds[[f"prob_{c}" for c in self.classes]].to_numpy(float)
        return preds["y"].to_numpy(int), probs

    def score(self, preds: pd.DataFrame) -> float:
        from mstar.eval.classification import classification_metrics

        y, probs = self._arrays(preds)
        metrics = classification_metrics(y, probs, self.classes)
        if np.isfinite(metrics["auc_macro"]) or len(self.classes) == 2:
            return metrics["auc_macro"]
        # a validation split without some class: the macro AUC over the classes it has (check_split warns)
        per_class = [metrics[f"auc[{c}]"] for c in self.classes]
        finite = [v for v in per_class if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    def stats_fn(self, preds: pd.DataFrame) -> Callable:
        from mstar.eval.classification import classification_stats

        y, probs = self._arrays(preds)
        return classification_stats(y, probs, self.classes, self.ordinal)

    def check_split(self, rows: pd.DataFrame, split: str, where: str) -> None:
        present = set(rows["label"])
        if split == "train" and len(present) < len(self.classes):
            raise MstarError(f"{where}: the training split lacks classes "
                             f"{sorted(set(self.classes) - present)}")
        if split in ("val", "test") and len(present) < 2:
            raise MstarError(f"{where}: the {split} split holds a single class ({sorted(present)}); AUC is "
                             "undefined — rebalance the split")
        missing = sorted(set(self.classes) - present)
        if split == "val" and missing:
            log.warning("%s: the validation split lacks classes %s; epochs are selected by the mean AUC over "
                        "the %d classes it has (its macro AUC over all classes is undefined)", where,
                        missing, len(present))


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


class SurvivalObjective:
    """Discrete-time NLL survival loss over quartile bins of uncensored training times; C-index selection."""

    kind = "survival"
    selection_metric = "c_index"

    def __init__(self, n_bins: int = 4):
        self.n_bins = n_bins
        self.edges: np.ndarray | None = None

    @property
    def n_outputs(self) -> int:
        return self.n_bins

    def fit(self, train: pd.DataFrame, where: str = "the manifest") -> None:
        """Bin edges from the training split only (the test split never shapes the labels); ``where`` (the
        manifest and unit) words the error."""
        from mstar.eval.survival import discretize_survival

        if int(train["event"].sum()) < self.n_bins:
            raise MstarError(f"{where}: the training split has {int(train['event'].sum())} observed deaths; "
                             f"at least {self.n_bins} are needed for {self.n_bins} time bins")
        _, self.edges = discretize_survival(train["time"].to_numpy(), train["event"].to_numpy(), self.n_bins)

    def _bins(self, time: np.ndarray) -> np.ndarray:
        from mstar.eval.survival import apply_survival_bins

        return apply_survival_bins(time, self.edges)  # times outside the training range: outer bins

    def targets(self, rows: pd.DataFrame) -> list:
        bins = self._bins(rows["time"].to_numpy())
        cens = 1.0 - rows["event"].to_numpy(float)
        return [torch.tensor([b, c], dtype=torch.float32) for b, c in zip(bins, cens)]

    def loss(self, out: MILOutput, target: torch.Tensor) -> torch.Tensor:
        s = out.survival
        return nll_surv_loss(s.hazards.float(), s.S.float(), target[:, 0].long(), target[:, 1].float())

    def outputs(self, out: MILOutput) -> dict[str, np.ndarray]:
        s = out.survival
        cols = {"risk": s.risk.float().cpu().numpy()}
        for t in range(self.n_bins):
            cols[f"S_{t + 1}"] = s.S[:, t].float().cpu().numpy()
        return cols

    def truth_columns(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"time": rows["time"].to_numpy(), "event": rows["event"].to_numpy(bool),
                "bin": self._bins(rows["time"].to_numpy())}

    def score(self, preds: pd.DataFrame) -> float:
        from mstar.eval.survival import concordance_index

        return concordance_index(preds["event"].to_numpy(bool), preds["time"].to_numpy(float),
                                 preds["risk"].to_numpy(float))

    def stats_fn(self, preds: pd.DataFrame) -> Callable:
        from mstar.eval.survival import concordance_stats

        return concordance_stats(preds["event"].to_numpy(bool), preds["time"].to_numpy(float),
                                 preds["risk"].to_numpy(float))

    def check_split(self, rows: pd.DataFrame, split: str, where: str) -> None:
        if split in ("val", "test") and int(rows["event"].sum()) == 0:
            raise MstarError(f"{where}: the {split} split has no observed death; the C-index is undefined")


def make_objective(task: str, table: pd.DataFrame, ordinal: bool | None, n_bins: int,
                   where: str = "the manifest"):
    """The objective of ``task`` (``classify`` or ``survival``) for a manifest table (``where``: its path,
    for the messages)."""
    if task == "classify":
        if "label" not in table:
            raise MstarError(f"{where}: task classify needs a manifest with a 'label' column "
                             "(case,slide,label,fold)")
        return ClassificationObjective.from_table(table, ordinal, where)
    if "time" not in table:
        raise MstarError(f"{where}: task survival needs a survival manifest "
                         "(Study,ID,Event,Status,WSI,split)")
    return SurvivalObjective(n_bins)
