from __future__ import annotations

import pytest
import torch

from mstar.errors import MstarError
from mstar.eval.report_baseline import most_common_report
from mstar.models.report.generator import ReportGenerator
from mstar.models.report.inference import ReportItem, generate_for_slide, generate_reports, pad_bags
from mstar.models.report.vocab import PAD_ID, Vocabulary
from mstar.tasks.report_train import build_items, fit_report_model, report_loss, token_batch

TINY = dict(in_dim=6, d_vf=16, d_model=16, d_ff=32, n_heads=2, num_layers=1, encoder_layers=1, region_size=5,
            cmm_size=16, cmm_dim=16, topk=4, prototype_num=4, max_len=10, dropout=0.0, drop_prob_lm=0.0)


def test_build_items_skips_and_counts_missing_or_empty_reports():
    feats = {s: torch.randn(3, 6) for s in "abcde"}
    reports = {"a": "Tumor seen.", "b": "", "c": " .. ", "e": "Margins free."}
    items, counts = build_items(feats, reports)
    assert [it.slide_id for it in items] == ["a", "e"]
    assert counts == {"used": 2, "missing_report": 1, "empty_report": 2}
    with pytest.raises(MstarError, match="unknown slide id 'z'"):
        build_items(feats, reports, ids=["a", "z"])


def test_padding_helpers():
    feats, mask = pad_bags([torch.ones(2, 3), torch.ones(4, 3)])
    assert feats.shape == (2, 4, 3) and mask.sum(1).tolist() == [2, 4] and feats[0, 2:].abs().sum() == 0
    vocab = Vocabulary.build(["a b c.", "a."], min_freq=1)
    tokens = token_batch(vocab, ["a b c.", "a."], max_len=10)
    assert tokens.shape == (2, 6) and tokens[1, 4:].tolist() == [PAD_ID, PAD_ID]


def test_loss_ignores_padding():
    torch.manual_seed(0)
    model = ReportGenerator(12, **TINY).eval()
    feats = torch.randn(1, 4, 6)
    tok = torch.tensor([[1, 5, 6, 2]])
    padded = torch.tensor([[1, 5, 6, 2, PAD_ID, PAD_ID]])
    with torch.no_grad():
        assert float(report_loss(model, feats, None, tok)) == pytest.approx(
            float(report_loss(model, feats, None, padded)), abs=1e-6)


def test_fit_selects_best_validation_epoch_and_restores_it():
    torch.manual_seed(0)
    reports = ["left tumor is big.", "right tumor is small."]
    feats = [torch.randn(5, 6) + 3, torch.randn(5, 6) - 3]
    items = [ReportItem(f"s{i}", feats[i % 2] + 0.1 * torch.randn(5, 6), reports[i % 2]) for i in range(8)]
    vocab = Vocabulary.build([it.report for it in items], min_freq=1)
    model = ReportGenerator(len(vocab), **TINY)
    rows = []
    res = fit_report_model(model, items, items[:2], vocab, epochs=4, lr=3e-3, batch_size=4, beam_size=1,
                           on_epoch_end=lambda row, m: rows.append(row))
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4] and rows == res.history
    assert res.best_bleu_4 == max(r["val_bleu_4"] for r in res.history)
    assert res.history[res.best_epoch - 1]["val_bleu_4"] == res.best_bleu_4
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, res.best_state[k])
    assert generate_reports(model, vocab, items[:2], beam_size=1) == {
        k: res.val_generated[k] for k in ("s0", "s1")}
    with pytest.raises(MstarError, match="no validation slides"):
        fit_report_model(model, items, [], vocab, epochs=1)


def test_an_interrupted_fit_resumes_to_the_uninterrupted_result(tmp_path):
    """Dropout on, shuffled batches: the epoch checkpoint carries the random states, the best epoch and the
    validation reports, so stopping after epoch 2 and re-running gives the run that never stopped."""
    reports = ["left tumor is big.", "right tumor is small.", "no tumor seen."]
    torch.manual_seed(1)
    items = [ReportItem(f"s{i}", torch.randn(5, 6) + (i % 3), reports[i % 3]) for i in range(9)]
    vocab = Vocabulary.build(reports, min_freq=1)
    noisy = {**TINY, "dropout": 0.2, "drop_prob_lm": 0.2}

    def run(folder, stop_at=None):
        torch.manual_seed(0)
        model = ReportGenerator(len(vocab), **noisy)

        def crash(row, _):
            if row["epoch"] == stop_at:
                raise RuntimeError("simulated crash")
        fit = fit_report_model(model, items, items[:3], vocab, epochs=4, lr=3e-3, batch_size=2, beam_size=1,
                               on_epoch_end=crash, run=folder, resume_from=folder / "last.ckpt",
                               checkpoint_every_s=0)
        return fit, model

    whole, whole_model = run(tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "cut", stop_at=3)  # epoch 2's checkpoint is the last one written
    saved = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=False)
    best = next(v for k, v in saved["callbacks"].items() if "BestEpoch" in k)
    rows = saved["mstar_history"]
    assert [r["epoch"] for r in rows] == [1, 2]  # the best of epoch 2 included (saved after BestEpoch ran)
    assert best["best_epoch"] == max(rows, key=lambda r: (r["val_bleu_4"], r["epoch"]))["epoch"]
    resumed, resumed_model = run(tmp_path / "cut")
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history] == strip
    assert (resumed.best_epoch, resumed.best_bleu_4) == (whole.best_epoch, whole.best_bleu_4)
    assert resumed.val_generated == whole.val_generated
    for key, value in whole_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key


def test_generate_for_unknown_slide_is_a_clear_error():
    model = ReportGenerator(10, **TINY)
    vocab = Vocabulary([f"w{i}" for i in range(6)])
    feats = {"a": torch.randn(3, 6)}
    assert isinstance(generate_for_slide(model, vocab, feats, "a"), str)
    with pytest.raises(MstarError, match="unknown slide id 'b'.*known: a"):
        generate_for_slide(model, vocab, feats, "b")


def test_most_common_report():
    assert most_common_report(["B x.", "A y.", "b x.", ""]) == "b x ."
    unique = ["the tumor is big .", "the tumor is big and red .", "margins free .", "the tumor is small ."]
    # all unique: the medoid by BLEU-4 against the others (0.35 vs 0.22, 0.00, 0.00)
    assert most_common_report(unique) == "the tumor is big ."
    with pytest.raises(MstarError, match="no non-empty"):
        most_common_report(["", " . "])


def test_medoid_bleu_matches_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu

    from mstar.eval.report_baseline import bleu4_against, ngram_counts

    cand = "the tumor is big and red . margins free ."
    refs = ["the tumor is big .", "margins free . the tumor is red and big .", "no tumor ."]
    want = Bleu(4).compute_score({i: [r] for i, r in enumerate(refs)}, {i: [cand] for i in range(3)},
                                 verbose=0)[0][3]
    assert (bleu4_against(ngram_counts(cand), [ngram_counts(r) for r in refs])
            == pytest.approx(want, rel=1e-12))
