"""End to end: a tiny report model learns to state the cancer type from class-carrying bags.

Bags: per case, a tumour fraction of patches around a type centre (+ a TP53 direction when mutant), the
rest around a shared stroma centre; reports from ``write_report`` on the same latent truth. Trained on
CPU for 20 epochs (~20-30 s), decoded with beam 3 + trigram blocking.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mstar.data.synthetic.reports import write_report
from mstar.data.synthetic.truth import draw_cohort_truth
from mstar.data.synthetic.types import cancer_codes
from mstar.eval.clinical import clinical_accuracy
from mstar.eval.report_baseline import baseline_reports
from mstar.eval.text_metrics import report_generation_metrics
from mstar.models.report import ReportGenerator, Vocabulary, clean_report, generate_reports
from mstar.tasks.report_train import build_items, fit_report_model

DIM = 32


def class_bags(cases, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    centres = {code: rng.normal(0, 1, DIM) * 2.0 for code in cancer_codes(3)}
    marker_dir, stroma = rng.normal(0, 1, DIM) * 1.5, rng.normal(0, 1, DIM) * 2.0
    bags = {}
    for c in cases:
        n = int(rng.integers(20, 70))
        n_tumour = max(1, round(c.tumour_fraction * n))
        tumour = centres[c.cancer_type] + c.marker * marker_dir + rng.normal(0, 1, (n_tumour, DIM))
        other = stroma + rng.normal(0, 1, (n - n_tumour, DIM))
        x = np.concatenate([tumour, other])
        rng.shuffle(x)
        bags[c.case_id] = torch.tensor(x, dtype=torch.float32)
    return bags


@pytest.mark.slow
def test_tiny_model_states_the_cancer_type_and_beats_the_template_baseline():
    cases = draw_cohort_truth(240, 3, seed=0)
    rng = np.random.default_rng(1)
    reports = {c.case_id: write_report(c, rng) if c.has_report else None for c in cases}
    feats = class_bags(cases)
    split = {s: [c.case_id for c in cases if c.split == s] for s in ("train", "val", "test")}
    train, counts = build_items(feats, reports, split["train"])
    val, _ = build_items(feats, reports, split["val"])
    test, _ = build_items(feats, reports, split["test"])
    assert counts["missing_report"] > 0 and counts["used"] == len(train)  # cases without a report are skipped

    vocab = Vocabulary.build([it.report for it in train], min_freq=3)
    torch.manual_seed(0)
    model = ReportGenerator(len(vocab), in_dim=DIM, d_vf=64, d_model=32, d_ff=64, n_heads=4, num_layers=2,
                            encoder_layers=2, region_size=16, cmm_size=64, cmm_dim=32, topk=16,
                            prototype_num=16, max_len=64, dropout=0.0, drop_prob_lm=0.1)
    fit = fit_report_model(model, train, val, vocab, epochs=20, lr=4e-3, gamma=0.95, batch_size=8,
                           grad_clip_value=None, beam_size=1, val_every=10)
    assert [r["epoch"] for r in fit.history if "val_bleu_4" in r] == [10, 20]
    assert fit.history[-1]["train_loss"] < 0.5 * fit.history[0]["train_loss"]

    truth = {c.case_id: c for c in cases}
    refs = {it.slide_id: clean_report(it.report) for it in test}
    generated = generate_reports(model, vocab, test, beam_size=3, length_penalty=1.0)
    clinical = clinical_accuracy(generated, truth)
    bleu = report_generation_metrics(generated, refs, meteor=False).scores["bleu_4"]
    baseline = baseline_reports([it.report for it in train], list(refs))
    base_clinical = clinical_accuracy(baseline, truth)
    base_bleu = report_generation_metrics(baseline, refs, meteor=False).scores["bleu_4"]
    print(f"type {clinical.cancer_type_accuracy:.3f} (baseline {base_clinical.cancer_type_accuracy:.3f}), "
          f"TP53 {clinical.marker_accuracy:.3f}, BLEU-4 {bleu:.4f} (baseline {base_bleu:.4f})")
    assert clinical.cancer_type_accuracy >= 0.8  # chance (majority type) ≈ 0.36
    assert base_clinical.cancer_type_accuracy <= 0.5  # one template states one type
    assert clinical.marker_accuracy >= 0.7
    assert bleu > base_bleu
