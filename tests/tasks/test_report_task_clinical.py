"""The report task's clinical check: classes from a prompts file, the manifest label as the true class, and
"cannot judge" (None + a warning) for classes the file does not name. One tiny epoch, a few seconds."""

import json

import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.models.report import Vocabulary
from mstar.tasks.report_config import ReportConfig
from mstar.tasks.report_task import clinical_truth, train_report
from tests.tasks._bags import write_bag

TINY = {"d_model": 16, "d_ff": 32, "n_heads": 2, "d_vf": 16, "cmm_size": 16, "cmm_dim": 16, "topk": 4,
        "prototype_num": 4, "region_size": 4, "num_layers": 1, "encoder_layers": 1, "max_len": 24,
        "dropout": 0.0}
REPORTS = {"LUAD": "Pulmonary adenocarcinoma, {cm} cm. No component of small cell carcinoma is identified.",
           "SCLC": "Small cell carcinoma, {cm} cm. Negative for mesothelioma. {k} of 11 nodes involved.",
           "MESO": "Diffuse pleural mesothelioma up to {cm} cm thick. Features of adenocarcinoma of the lung "
                   "are not seen."}


def _cohort(root, n=18):
    rng = np.random.default_rng(0)
    rows, reports = [], {}
    for i in range(n):
        code, sid = list(REPORTS)[i % 3], f"s{i:02d}"
        write_bag(root / "features" / f"{sid}.h5", rng.normal(size=(6, 8)))
        rows.append({"case": f"c{i:02d}", "slide": sid, "label": code,
                     "fold": ("train", "train", "train", "train", "val", "test")[i // 3]})
        reports[sid] = REPORTS[code].format(cm=f"{rng.uniform(1, 9):.1f}", k=int(rng.integers(0, 11)))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    (root / "reports.json").write_text(json.dumps(reports))
    (root / "classes.json").write_text(json.dumps({"0": {"classnames": {
        "LUAD": ["pulmonary adenocarcinoma", "adenocarcinoma of the lung"], "SCLC": ["small cell carcinoma"],
        "MESO": ["diffuse pleural mesothelioma", "mesothelioma"]}}}))
    return ReportConfig(manifest=str(root / "manifest.csv"), features=str(root / "features"),
                        reports=str(root / "reports.json"), out=str(root / "runs"), epochs=1, batch_size=4,
                        min_freq=10, beam_size=1, bootstrap=0, meteor=False, accelerator="cpu",
                        model_args=TINY)


def test_clinical_truth_takes_the_manifest_label():
    refs = {"a": "Small cell carcinoma. TP53 mutant pattern.", "b": "x"}
    assert clinical_truth(refs, {"a": "SCLC", "b": "LUAD"}) == {
        "a": {"cancer_type": "SCLC", "marker": 1}, "b": {"cancer_type": "LUAD", "marker": None}}
    assert clinical_truth(refs, {}) == refs  # no labels: the reference texts


def test_classes_setting_is_checked_and_fingerprinted(tmp_path):
    cfg = _cohort(tmp_path)
    assert cfg.classes is None and "classes" not in cfg.identity()
    assert cfg.input_paths()["classes"].name == "prompts_synthetic_cancer_type.json"
    cfg.classes = str(tmp_path / "nope.json")
    with pytest.raises(MstarError, match="config 'classes'.*nope.json.*not found"):
        cfg.validate()


def test_task_judges_custom_classes_and_says_when_it_cannot(tmp_path):
    cfg = _cohort(tmp_path)
    with pytest.warns(UserWarning, match=r"LUAD, MESO, SCLC are not classes of synthetic_cancer_type"):
        default = train_report(cfg)  # the synthetic classes know none of these
    for split in ("test", "test_baseline"):
        assert default[split]["cancer_type_accuracy"] is None
        assert default[split]["unknown_classes"] == ["LUAD", "MESO", "SCLC"]
        assert any("set `classes`" in note for note in default[split]["notes"])
    run = tmp_path / "runs" / "report" / "manifest-histgen"
    vocab = Vocabulary.load(run / "vocab.json")  # min_freq 10, yet every number is representable
    assert vocab.numbers and all(d in vocab.stoi for d in "0123456789")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "bleu_4" in metrics["test"] and "cancer_type_accuracy" not in metrics["test"]  # no number

    cfg.classes, cfg.name = str(tmp_path / "classes.json"), "custom"
    custom = train_report(cfg)
    test, base = custom["test"], custom["test_baseline"]
    assert test["unknown_classes"] == [] and test["classes"] == cfg.classes
    assert test["cancer_type_accuracy"] is not None and base["cancer_type_accuracy"] == pytest.approx(1 / 3)
    # the baseline (one training report) states one class and negates another: only its own counts
    assert sum(v == 1.0 for v in base["cancer_type_by_class"].values()) == 1


def test_max_len_fits_the_longest_training_report_unless_given(tmp_path):
    from types import SimpleNamespace

    from mstar.tasks.report_task import model_args_for

    long = "the tumour measures 12.5 x 3.4 x 2.25 cm ; " * 8  # numbers spelled by digits: many tokens
    items = [SimpleNamespace(report=long), SimpleNamespace(report="benign lung .")]
    vocab = Vocabulary.build([it.report for it in items], min_freq=1)
    cfg = ReportConfig(manifest="m.csv", features="f", reports="r.json", model_args={"d_model": 16})
    args = model_args_for(cfg, vocab, items)
    assert args["max_len"] == len(vocab.encode(long)) > 100  # HistGen's fixed 100 would cut it
    assert vocab.encode(long, max_len=args["max_len"]) == vocab.encode(long)  # nothing cut in training
    assert args["d_model"] == 16 and "max_len" not in cfg.model_args  # the config itself is left alone
    fixed = ReportConfig(manifest="m.csv", features="f", reports="r.json", model_args={"max_len": 24})
    assert model_args_for(fixed, vocab, items)["max_len"] == 24
