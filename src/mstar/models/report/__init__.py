"""Pathology report generation from slide features (HistGen-style); see docs/report_generation.md.

Modules: ``vocab`` (tokeniser, vocabulary), ``memory`` (cross-modal context memory), ``encoder`` (WSI
mapping + local-global hierarchical encoder), ``decoder`` (Transformer decoder), ``decoding`` (beam
search, trigram blocking), ``generator`` (the model), ``inference`` (batch generation, baseline),
``train`` (plain-PyTorch training loop), ``clinical`` (cancer type / TP53 check), ``init`` (stage-1 reuse).
"""

from mstar.models.report.clinical import (
    ClinicalScores,
    clinical_accuracy,
    extract_cancer_type,
    extract_marker,
)
from mstar.models.report.generator import DEFAULTS, ReportGenerator
from mstar.models.report.inference import (
    ReportItem,
    baseline_reports,
    generate_for_slide,
    generate_reports,
    most_common_report,
)
from mstar.models.report.init import init_from_stage1
from mstar.models.report.train import FitResult, build_items, fit_report_model
from mstar.models.report.vocab import Vocabulary, clean_report, tokenize

__all__ = [
    "DEFAULTS", "ClinicalScores", "FitResult", "ReportGenerator", "ReportItem", "Vocabulary",
    "baseline_reports", "build_items", "clean_report", "clinical_accuracy", "extract_cancer_type",
    "extract_marker", "fit_report_model", "generate_for_slide", "generate_reports", "init_from_stage1",
    "most_common_report", "tokenize",
]
