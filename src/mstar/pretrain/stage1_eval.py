"""Embedding a split and scoring it: cross-modal retrieval (Recall@K with CIs and chance) and cancer
separation.

Retrieval galleries hold each *distinct* item once: reports by the id they were found under (a case-level
report shared by two slides is one gallery entry), RNA profiles by case. Slide ``i`` and report/profile
``j`` are a relevant pair when they belong to the same slide (report) or case (RNA); report–gene pairs are
relevant when some slide has both. Only the held-out split is scored.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader

from mstar.eval.results import point_entry
from mstar.pretrain.stage1_data import Stage1Dataset, collate_stage1

KS = (1, 5, 10)
DIRECTIONS = (("slide", "report"), ("report", "slide"), ("slide", "gene"), ("gene", "slide"),
              ("report", "gene"), ("gene", "report"))


@torch.no_grad()
def embed_dataset(model, dataset: Stage1Dataset, batch_size: int = 8, device: torch.device | str = "cpu",
                  bf16: bool = False) -> dict[str, np.ndarray]:
    """Embed every item with all its patches (model in eval mode; restored afterwards).

    Returns:
        ``slide``/``report``/``gene`` ``(S, dim)`` float32 (raw projections; rows without the modality are
        meaningless), ``has_slide``, ``has_report``, ``has_gene`` ``(S,)`` bool and ``labels`` ``(S,)``.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    flags = ("has_slide", "has_report", "has_gene", "labels")
    parts: dict[str, list] = {k: [] for k in ("slide", "report", "gene", *flags)}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_stage1)
    try:
        for batch in loader:
            moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with autocast:
                z = model(moved)
            for k in ("slide", "report", "gene"):
                parts[k].append(z[k].float().cpu().numpy())
            for k in flags:
                parts[k].append(batch[k].numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _gallery(emb: dict, keys: list) -> tuple[list, np.ndarray, dict]:
    """Distinct keys (first occurrence), their row in ``emb`` and key → position."""
    first: dict = {}
    for i, k in enumerate(keys):
        if k is not None and k not in first:
            first[k] = i
    return list(first), np.array(list(first.values()), dtype=np.int64), {k: j for j, k in enumerate(first)}


def item_keys(items) -> dict[str, list]:
    """Per-item identity per modality (None where the item lacks it): slide id, report id, RNA case id."""
    has_slide = items.has_slide if items.has_slide is not None else [True] * len(items)
    return {"slide": [s if h else None for s, h in zip(items.slides, has_slide)], "report": items.report_keys,
            "gene": [c if h else None for c, h in zip(items.cases, items.has_gene)]}


def retrieval_entries(emb: dict[str, np.ndarray], keys: dict[str, list], n_boot: int = 1000, seed: int = 0,
                      ks=KS, within: bool = False) -> dict[str, dict]:
    """Recall@K and mAP of every direction, with bootstrap CIs over queries and the chance level.

    Args:
        emb: Output of :func:`embed_dataset`.
        keys: Per-item identity per modality: ``slide`` (slide ids), ``report`` (report id or None),
            ``gene`` (case id or None).
        n_boot, seed: Bootstrap resamples and seed.
        ks: Cut-offs K.
        within: Also retrieve within each label (cancer type): a query's gallery holds only items of its own
            label (``<query>_to_<gallery>_within/...``; the chance level uses those smaller galleries).

    Returns:
        ``{"<query>_to_<gallery>/recall@K" | ".../map": {value, ci_low, ci_high, n, chance}}``; directions
        with fewer than 2 pairs are left out.
    """
    from mstar.eval.retrieval import chance_levels, retrieval_metrics_ci

    galleries = {m: _gallery(emb, keys[m]) for m in ("slide", "report", "gene")}
    out: dict[str, dict] = {}
    for qm, gm in DIRECTIONS:
        q_keys, q_rows, _ = galleries[qm]
        g_keys, g_rows, g_pos = galleries[gm]
        if len(q_keys) < 2 or len(g_keys) < 2:
            continue
        q_index = {k: j for j, k in enumerate(q_keys)}
        rel = np.zeros((len(q_keys), len(g_keys)), dtype=bool)  # (Q, G)
        for kq, kg in zip(keys[qm], keys[gm]):
            if kq is not None and kg is not None:
                rel[q_index[kq], g_pos[kg]] = True
        has = rel.any(axis=1)
        if has.sum() < 2:
            continue
        sim = _unit(emb[qm][q_rows[has]]) @ _unit(emb[gm][g_rows]).T  # (Q', G)
        variants = [("", None)]
        if within:
            labels = np.asarray(emb["labels"])
            variants.append(("_within", labels[q_rows[has]][:, None] != labels[g_rows][None, :]))  # (Q', G)
        for suffix, exclude in variants:
            metrics = retrieval_metrics_ci(sim, rel[has], ks=ks, n_resamples=n_boot, seed=seed,
                                           exclude=exclude)
            chance = chance_levels(rel[has], ks=ks, exclude=exclude)
            for name, entry in metrics.items():
                out[f"{qm}_to_{gm}{suffix}/{name}"] = {**entry, "chance": chance[name]}
    return out


def separation_entries(slide_emb: np.ndarray, labels: np.ndarray, k: int = 5, n_boot: int = 1000,
                       seed: int = 0, prefix: str = "slide") -> dict[str, dict]:
    """How well held-out embeddings of one modality (``prefix``: slide, report, gene) separate cancer types.

    Returns:
        ``<prefix>_knn_accuracy`` (leave-one-out k-NN majority vote, cosine, CI over items),
        ``<prefix>_1nn_accuracy`` (nearest other item has the same type), ``<prefix>_silhouette`` (cosine),
        each with ``chance`` (majority-class rate; 0 for the silhouette).
    """
    from mstar.eval.bootstrap import bootstrap_ci_weighted, weighted_mean_stats

    n = len(labels)
    if n < 3 or len(np.unique(labels)) < 2:
        return {}
    z = _unit(slide_emb)
    sim = z @ z.T  # (S, S)
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    kk = min(k, n - 1)
    votes = labels[order[:, :kk]]  # (S, k)
    classes = np.unique(labels)
    counts = (votes[:, :, None] == classes[None, None, :]).sum(axis=1)  # (S, C)
    score = counts + 1e-3 * (votes[:, :1] == classes[None, :])  # ties go to the nearest neighbour
    knn = classes[np.argmax(score, axis=1)] == labels
    nn1 = labels[order[:, 0]] == labels
    per = {f"{prefix}_knn_accuracy": knn.astype(float), f"{prefix}_1nn_accuracy": nn1.astype(float)}
    out = bootstrap_ci_weighted(weighted_mean_stats(per), n, n_resamples=n_boot, seed=seed)
    majority = float(np.bincount(labels - labels.min()).max() / n)
    for entry in out.values():
        entry["chance"] = majority
    from sklearn.metrics import silhouette_score

    sil = float(silhouette_score(z, labels, metric="cosine"))
    out[f"{prefix}_silhouette"] = {**point_entry(sil, n), "chance": 0.0}
    return out
