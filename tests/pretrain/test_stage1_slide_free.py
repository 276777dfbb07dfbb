"""Stage 1 without slides (reports + RNA only, as on the real TCGA tables) and continuing a model on new
cancer types with replay (learning as cases accrue)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mstar.errors import MstarError
from mstar.pretrain.stage1_config import Stage1Config
from mstar.pretrain.stage1_model import load_stage1
from mstar.pretrain.stage1_train import pretrain
from tests.pretrain._cohort import TINY, stage1_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return stage1_cohort(tmp_path_factory.mktemp("slide_free"), n_cases=60)


def _cfg(root, paths, **kw) -> Stage1Config:
    args = {"manifest": str(paths["manifest"]), "features": "", "reports": str(paths["reports"]),
            "rna": str(paths["rna"]), "out": str(root / "runs"), "epochs": 4, "gene_encoder": "snn",
            **{k: v for k, v in TINY.items() if k not in ("vision_args", "gene_args", "max_patches",
                                                                 "gene_encoder")},
            "gene_args": {"hidden": [32], "dropout": 0.0}}
    args.update(kw)
    return Stage1Config(**args)


@pytest.fixture(scope="module")
def slide_free(cohort, tmp_path_factory):
    return pretrain(_cfg(tmp_path_factory.mktemp("run"), cohort, name="free"), progress=False)


def test_without_features_each_case_is_an_item_of_report_and_rna(slide_free, cohort):
    counts = slide_free["meta"]["counts"]
    # 60 cases; val+test (i % 10 in 7, 8, 9) are held out; case 40 has neither report nor RNA (dropped);
    # reports are keyed by slide id and still found for their case
    assert counts["slides"] == 60 and counts["train_slides"] == 41 and counts["val_slides"] == 18
    assert counts["reports"] == 52 and counts["empty_reports"] == 1 and counts["rna"] == 52
    assert counts["no_modality"] == 1
    assert slide_free["meta"]["in_dim"] is None
    model, _ = load_stage1(slide_free["checkpoint"])
    assert model.in_dim is None and model.vision_encoder is None
    log = pd.read_csv(f"{slide_free['run']}/log.csv")
    assert (log["train_report_gene"] > 0).all() and log["train_report_gene"].iloc[-1] < log[
        "train_report_gene"].iloc[0]
    val = slide_free["metrics"]["val"]
    assert not any(k.startswith(("slide_to", "report_to_slide")) for k in val)
    r5 = val["report_to_gene/recall@5"]
    # 18 held-out cases: 16 with RNA (the gallery), 14 with both (the queries); the planted facts are learnt
    assert r5["n"] == 14 and r5["chance"] == pytest.approx(5 / 16) and r5["value"] > r5["chance"] + 0.3
    assert "report_knn_accuracy" in val and "gene_knn_accuracy" in val


def test_continuing_on_new_cancer_types_with_replay(cohort, tmp_path):
    first = pretrain(_cfg(tmp_path, cohort, name="first", labels=["BRCA", "LUAD"], epochs=2), progress=False)
    assert first["meta"]["classes"] == ["BRCA", "LUAD"]
    # epochs 0: the continued model is the earlier one, weights and gene vocabulary unchanged
    same = pretrain(_cfg(tmp_path, cohort, name="same", labels=["KIRC"], epochs=0,
                         continue_from=first["run"]), progress=False)
    a, _ = load_stage1(first["checkpoint"])
    b, _ = load_stage1(same["checkpoint"])
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items() if torch.is_tensor(v))
    assert b.gene_encoder.vocabulary == a.gene_encoder.vocabulary
    later = pretrain(_cfg(tmp_path, cohort, name="later", labels=["KIRC"], epochs=1,
                          continue_from=first["run"], replay_fraction=0.5), progress=False)
    counts = later["meta"]["counts"]
    # every case the model was ever trained on is recorded: the earlier run's and KIRC's training cases
    # (a case with neither report nor RNA is dropped, so never trained on: one slide per case here)
    train = pd.read_csv(cohort["manifest"]).query("fold == 'train'")
    first_cases, later_cases = set(first["meta"]["train_cases"]), set(later["meta"]["train_cases"])
    assert len(first_cases) == first["meta"]["counts"]["train_slides"]
    assert first_cases <= set(train[train["label"].isin(["BRCA", "LUAD"])]["case"])
    kirc = later_cases - first_cases
    assert first_cases < later_cases <= set(train["case"])
    assert kirc <= set(train[train["label"] == "KIRC"]["case"])
    assert len(kirc) == counts["train_slides"] - counts["replayed_cases"]
    assert first["meta"]["train_cases_complete"] and later["meta"]["train_cases_complete"]
    # an earlier checkpoint that does not record its cases: this run's are kept, the list marked incomplete
    blob = torch.load(first["checkpoint"], map_location="cpu", weights_only=False)
    del blob["meta"]["train_cases"]
    torch.save(blob, first["checkpoint"])
    unknown = pretrain(_cfg(tmp_path, cohort, name="unknown", labels=["KIRC"], epochs=0,
                            continue_from=first["run"]), progress=False)["meta"]
    assert unknown["train_cases"] == sorted(kirc) and unknown["train_cases_complete"] is False
    # 14 training cases per earlier type; half of each is replayed beside KIRC's 14
    assert counts["replayed_cases"] == 14 and counts["train_slides"] == 14 + 14
    assert later["meta"]["classes"] == ["BRCA", "KIRC", "LUAD"]
    assert counts["val_slides"] == 6  # held-out KIRC only
    with pytest.raises(MstarError, match="set continue_from"):
        _cfg(tmp_path, cohort, replay_fraction=0.3).validate()
    with pytest.raises(MstarError, match=r"labels \['XXX'\] are not cancer types"):
        pretrain(_cfg(tmp_path, cohort, name="bad", labels=["XXX"]), progress=False)
    with pytest.raises(MstarError, match="continue_from needs a finished stage-1 run"):
        pretrain(_cfg(tmp_path, cohort, name="bad2", continue_from=str(tmp_path / "nowhere")), progress=False)
    classify = tmp_path / "runs" / "classify" / "dx"
    classify.mkdir(parents=True)
    (classify / "run.json").write_text('{"kind": "classify", "status": "finished"}')
    with pytest.raises(MstarError, match="dx: a classify run, not a stage-1 run; continue_from takes"):
        pretrain(_cfg(tmp_path, cohort, name="bad3", continue_from=str(classify)), progress=False)


def test_a_dropped_case_is_said_to_lack_the_modalities_that_were_given(cohort, caplog):
    """(Zero-shot on reports said "neither a report nor an RNA profile" of a case with RNA: none was read.)"""
    from mstar.pretrain.stage1_cohort import build_cohort
    from mstar.pretrain.stage1_inputs import read_slide_table

    rows = read_slide_table(cohort["manifest"])
    both = "with neither a report nor an RNA profile"
    for reports, rna, said in ((cohort["reports"], None, "with no report"),
                               (None, cohort["rna"], "with no RNA profile"),
                               (cohort["reports"], cohort["rna"], both)):
        caplog.clear()
        build_cohort(rows, None, str(reports) if reports else None, str(rna) if rna else None)
        assert any(f"case(s) {said}" in r.getMessage() for r in caplog.records), said
