"""Pathology report generation from slide features (HistGen-style); see docs/report_generation.md.

Modules: ``vocab`` (tokeniser, vocabulary), ``memory`` (cross-modal context memory), ``encoder`` (WSI
mapping + local-global hierarchical encoder), ``decoder`` (Transformer decoder), ``decoding`` (beam
search, trigram blocking), ``generator`` (the model), ``inference`` (batch generation), ``init`` (stage-1
reuse). Training lives in :mod:`mstar.tasks.report_train`, the clinical check in :mod:`mstar.eval.clinical`
and the most-common-report baseline in :mod:`mstar.eval.report_baseline`.
"""

from mstar.models.report.generator import DEFAULTS, ReportGenerator
from mstar.models.report.inference import ReportItem, generate_for_slide, generate_reports
from mstar.models.report.init import init_from_stage1
from mstar.models.report.vocab import Vocabulary, clean_report, tokenize

__all__ = [
    "DEFAULTS", "ReportGenerator", "ReportItem", "Vocabulary", "clean_report", "generate_for_slide",
    "generate_reports", "init_from_stage1", "tokenize",
]
