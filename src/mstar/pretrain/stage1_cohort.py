"""Assemble a stage-1 cohort: slide table + feature bags + reports + RNA → per-split :class:`Stage1Items`.

Used by pretraining (vocabulary from the training cases) and by ``mstar embed`` (vocabulary from the
checkpoint; unseen genes ignored with a warning, vocabulary genes absent from the table masked).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mstar.data.bags import BagStore
from mstar.data.feature_dirs import resolve_feature_dir
from mstar.data.reports import load_reports
from mstar.errors import MstarError
from mstar.pretrain.stage1_data import Stage1Items
from mstar.pretrain.stage1_inputs import gene_rows, match_reports, training_vocabulary

log = logging.getLogger(__name__)


@dataclass
class Stage1Cohort:
    """What pretraining or embedding needs, split by ``split``."""

    bags: BagStore | None                 # keyed by slide id; None: no slide features
    in_dim: int | None
    classes: list[str]
    splits: dict[str, Stage1Items]
    vocabulary: list[str] | None          # None: no RNA branch
    counts: dict = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def check_width(self, features: object, model_in_dim: int) -> None:
        """Refuse patch features of another width than the stage-1 model was pretrained on."""
        if self.bags is not None and self.in_dim != model_in_dim:
            raise MstarError(f"{features}: {self.in_dim}-d patch features, but the checkpoint was pretrained "
                             f"on {model_in_dim}-d ones; use features of the same patch encoder")


def _bags(features: str, slides: list[str], cache: bool, skip_missing: bool):
    """A slide-keyed :class:`BagStore` (float16; in RAM unless ``cache`` is False), its width, the kept
    slides."""
    feature_dir = resolve_feature_dir(features)
    store = BagStore(feature_dir, slides, [[s] for s in slides], skip_missing=skip_missing, cache=cache)
    empty = store.empty_cases()
    if empty and not skip_missing:
        raise MstarError(f"{feature_dir}: {len(empty)} slide(s) have empty bags (no tissue tiles): "
                         f"{', '.join(empty[:10])}; pass --skip-missing to drop them")
    kept = [s for s in store.cases if s not in set(empty)]
    if not kept or store.dim is None:
        raise MstarError(f"{feature_dir}: none of the manifest's slides has features")
    return store, store.dim, kept


def _rna(path: str | None, layout: str, rows: pd.DataFrame, vocabulary: list[str] | None):
    """``(values (S, G), mask (S, G), has (S,), vocabulary)`` for the slides of ``rows``."""
    if not path:
        return (np.zeros((len(rows), 0), np.float32), np.zeros((len(rows), 0), bool),
                np.zeros(len(rows), bool), None)
    from mstar.data.rna import match_genes, read_rna_table

    table = read_rna_table(path, layout=layout)
    if vocabulary is None:
        vocabulary = training_vocabulary(table, rows.loc[rows["split"] == "train", "case"].tolist())
    match = match_genes(table, vocabulary)
    idx = gene_rows(rows["slide"].tolist(), rows["case"].tolist(), match.cases)
    has = idx >= 0
    if not has.any():
        hint = ("; without --manifest each slide is its own case (case id = slide id): pass --manifest CSV "
                "for a table keyed by case" if (rows["case"] == rows["slide"]).all() else "")
        raise MstarError(f"{path}: no manifest case has an RNA profile (table ids start {match.cases[:3]}, "
                         f"manifest cases {rows['case'].head(3).tolist()}){hint}")
    values = np.where(has[:, None], match.values[np.maximum(idx, 0)], 0.0).astype(np.float32)
    mask = match.mask[np.maximum(idx, 0)] & has[:, None]
    has = has & mask.any(axis=1)  # a profile with no vocabulary gene measured is missing
    return values, mask, has, vocabulary


def build_cohort(rows: pd.DataFrame, features: str | None, reports: str | None, rna: str | None,
                 rna_layout: str = "auto", vocabulary: list[str] | None = None,
                 classes: list[str] | None = None, cache_features: bool = True,
                 skip_missing: bool = False, splits: tuple[str, ...] = ("train", "val"),
                 report_prep: str = "auto", max_tokens: int | None = None) -> Stage1Cohort:
    """Load bags, reports and RNA for the slides of ``rows`` (from :func:`read_slide_table`).

    Without ``features`` the cohort has no slide branch: one item per case (its key is the case id), made of
    its report and RNA profile; cases with neither are dropped.

    Args:
        rows: ``slide, case, label, split`` per slide; rows of other splits (``test``) are dropped.
        features: Features folder (any layout), or None (no slides).
        reports: Reports JSON or None (no text branch).
        rna: RNA table/folder or None (no gene branch).
        rna_layout: Layout for :func:`mstar.data.rna.read_rna_table`.
        vocabulary: Gene vocabulary (None: genes measured in a training case).
        classes: Cancer-type names in index order (None: sorted labels; unknown labels map to -1).
        cache_features: Keep bags in RAM (float16) instead of reading them per access.
        skip_missing: Drop slides without features instead of failing.
        splits: The splits to keep (``mstar embed`` relabels every row ``all``).
        report_prep: Report preparation (:func:`mstar.data.reports.load_reports`: auto, ocr, none).
        max_tokens: Token budget of prepared reports.
    """
    rows = rows[rows["split"].isin(splits)].reset_index(drop=True)
    if rows.empty:
        raise MstarError(f"manifest: no slides in splits {list(splits)} "
                         "(test rows are kept out of pretraining)")
    if features:
        bags, in_dim, kept = _bags(features, rows["slide"].tolist(), cache_features, skip_missing)
    else:  # no slides: one item per case, keyed by the case id
        slides_of = rows.groupby("case", sort=False)["slide"].agg(list).to_dict()
        rows = rows.drop_duplicates("case").assign(slide=lambda r: r["case"]).reset_index(drop=True)
        bags, in_dim, kept = None, None, rows["slide"].tolist()
    dropped = sorted(set(rows["slide"]) - set(kept))
    if dropped:
        log.warning("dropping %d slide(s) without features: %s", len(dropped), ", ".join(dropped[:10]))
    rows = rows[rows["slide"].isin(set(kept))].reset_index(drop=True)
    classes = classes or sorted(rows["label"].unique())
    index = {c: i for i, c in enumerate(classes)}
    labels = rows["label"].map(lambda x: index.get(x, -1)).to_numpy(np.int64)
    texts = [None] * len(rows)
    keys = [None] * len(rows)
    counts: dict = {"slides": len(rows)}
    if reports:
        texts_by_id, prep = load_reports(reports, report_prep, max_tokens)
        if prep is not None:
            log.info("%s", prep.summary())  # kept in the counts (metrics.json meta), not a warning
            counts["report_prep"] = {**prep.as_dict(), "summary": prep.summary()}
        if bags is None:  # reports keyed by slide id still belong to the case (first slide that has one)
            texts_by_id = {**{c: texts_by_id[s] for c, ss in slides_of.items() for s in ss[::-1]
                              if s in texts_by_id}, **texts_by_id}
        match = match_reports(rows["slide"].tolist(), rows["case"].tolist(), texts_by_id)
        if match.n_found == 0:
            shown = ", ".join(list(texts_by_id)[:3])
            raise MstarError(f"{reports}: no slide or case of the manifest has a (non-empty) report (report "
                             f"ids start {shown}; manifest cases {', '.join(rows['case'].head(3))})")
        texts, keys = match.texts, match.keys
        counts.update(reports=match.n_found, empty_reports=match.n_empty, absent_reports=match.n_absent)
    values, mask, has, vocabulary = _rna(rna, rna_layout, rows, vocabulary)
    counts.update(rna=int(has.sum()), genes=len(vocabulary or []))
    has_slide = np.full(len(rows), bags is not None)
    if bags is None:  # a case without report and RNA has nothing to learn from
        useful = np.array([t is not None for t in texts]) | has
        if not useful.all():
            counts["no_modality"] = int((~useful).sum())
            lacking = ("neither a report nor an RNA profile" if reports and rna
                       else "no report" if reports else "no RNA profile")
            log.warning("dropping %d case(s) with %s", int((~useful).sum()), lacking)
        rows, labels, has, values, mask, has_slide = (rows[useful].reset_index(drop=True), labels[useful],
                                                      has[useful], values[useful], mask[useful],
                                                      has_slide[useful])
        texts = [t for t, u in zip(texts, useful) if u]
        keys = [k for k, u in zip(keys, useful) if u]
    items = {}
    for split in splits:
        sel = np.flatnonzero(rows["split"].to_numpy() == split)
        items[split] = Stage1Items(
            slides=rows["slide"].iloc[sel].tolist(), cases=rows["case"].iloc[sel].tolist(),
            labels=labels[sel], texts=[texts[i] for i in sel], report_keys=[keys[i] for i in sel],
            gene_values=values[sel], gene_mask=mask[sel], has_gene=has[sel], has_slide=has_slide[sel])
        counts[f"{split}_slides"] = len(sel)
    return Stage1Cohort(bags, in_dim, list(classes), items, vocabulary, counts, dropped)
