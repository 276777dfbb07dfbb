"""Synthetic RNA-seq (log1p TPM-like) driven by cancer type, TP53 status and the RNA's share of the risk.

Type modules follow the cancer type, TP53 targets the marker, and the proliferation module follows
``risk_rna`` (the half of the residual risk the RNA shows; ``truth.py``), each plus per-gene noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mstar.data.synthetic.genes import BACKGROUND, PROLIFERATION_MODULE, TP53_MODULE, TYPE_MODULES
from mstar.data.synthetic.truth import CaseTruth

PROLIFERATION_LOG_UNITS = 1.2  # shift of the proliferation genes per unit of risk_rna

SIGNATURE_GROUPS = ("Tumor Suppressor Genes", "Oncogenes", "Protein Kinases", "Cell Differentiation Markers",
                    "Transcription Factors", "Cytokines and Growth Factors")


def gene_list() -> list[str]:
    """All genes of the synthetic table, modules first, without duplicates."""
    genes = ([g for module in TYPE_MODULES.values() for g in module] + TP53_MODULE + PROLIFERATION_MODULE
             + BACKGROUND)
    seen: dict[str, None] = {}
    for g in genes:
        seen.setdefault(g, None)
    return list(seen)


def expression_table(cases: list[CaseTruth], seed: int) -> pd.DataFrame:
    """Genes x cases table (index = gene symbol) for the cases that have RNA."""
    rng = np.random.default_rng(seed)
    genes = gene_list()
    index = {g: i for i, g in enumerate(genes)}
    baseline = rng.uniform(1.0, 7.0, len(genes))
    with_rna = [c for c in cases if c.has_rna]
    values = np.empty((len(genes), len(with_rna)))
    for j, case in enumerate(with_rna):
        shift = np.zeros(len(genes))
        for g in TYPE_MODULES.get(case.cancer_type, []):
            shift[index[g]] += 2.2
        for g in TP53_MODULE:
            shift[index[g]] -= 1.4 * case.marker
        proliferation = PROLIFERATION_LOG_UNITS * case.risk_rna
        for g in PROLIFERATION_MODULE:
            shift[index[g]] += proliferation
        values[:, j] = baseline + shift + rng.normal(0, 0.6, len(genes))
    values = np.round(np.clip(values, 0, None), 3)
    return pd.DataFrame(values, index=pd.Index(genes, name="gene"), columns=[c.case_id for c in with_rna])


def signature_table(seed: int) -> pd.DataFrame:
    """An MCAT-style ``signatures.csv`` for the synthetic genes: 6 named groups of gene symbols."""
    rng = np.random.default_rng(seed)
    genes = gene_list()
    groups: list[list[str]] = [[] for _ in SIGNATURE_GROUPS]
    for g in TP53_MODULE:
        groups[0].append(g)
    for g in PROLIFERATION_MODULE:
        groups[2].append(g)
    for module in TYPE_MODULES.values():
        groups[3].extend(module)
    rest = [g for g in genes if not any(g in grp for grp in groups)]
    for g in rest:
        groups[int(rng.choice([0, 1, 2, 3, 4, 5]))].append(g)
    length = max(len(g) for g in groups)
    return pd.DataFrame({name: grp + [""] * (length - len(grp))
                         for name, grp in zip(SIGNATURE_GROUPS, groups)})
