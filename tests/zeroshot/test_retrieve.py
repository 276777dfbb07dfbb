import json

import pandas as pd
import pytest

from mstar.errors import MstarError

pytestmark = pytest.mark.slow  # shares a ~30 s trained stage-1 fixture


def _retrieve(model, cohort, tmp_path, **kw):
    from mstar.zeroshot.config import RetrievalConfig
    from mstar.zeroshot.retrieve import retrieve

    cfg = RetrievalConfig(stage1="model", manifest=str(cohort["manifest"]), features=str(cohort["features"]),
                          out=str(tmp_path), **kw)
    return retrieve(cfg, model=model)


def test_retrieval_beats_chance(trained_model, zs_cohort, tmp_path):
    result = _retrieve(trained_model, zs_cohort, tmp_path, reports=str(zs_cohort["reports"]),
                       rna=str(zs_cohort["rna"]), name="r", bootstrap=200)
    m = result["metrics"]["test"]
    assert result["n_slides"] == 18
    for d in ("slide_to_report", "report_to_slide", "slide_to_gene", "gene_to_slide", "slide_to_slide"):
        for k in (1, 5, 10, 50):
            assert f"{d}/recall@{k}" in m
        k = 1 if d == "slide_to_slide" else 5  # 5 same-type slides in a gallery of 17: R@5 is easy by chance
        assert m[f"{d}/recall@{k}"]["value"] > m[f"{d}/recall@{k}"]["chance"] + 0.2, d
        assert m[f"{d}/map"]["value"] > m[f"{d}/map"]["chance"] + 0.1, d
    assert m["slide_to_report/recall@5"]["chance"] == pytest.approx(5 / 18)  # paired: K / G
    assert m["slide_to_report/recall@50"]["value"] == 1.0  # K beyond the gallery
    run = tmp_path / "retrieval" / "r"
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["_meta"]["split"] == "test"
    table = pd.read_csv(run / "retrieval.csv")
    assert {"metric", "value", "ci_low", "ci_high", "chance"} <= set(table.columns)
    assert (run / "figures" / "retrieval.png").stat().st_size > 1000


def test_retrieval_input_errors(trained_model, zs_cohort, tmp_path):
    with pytest.raises(MstarError, match="--reports and/or --rna"):
        _retrieve(trained_model, zs_cohort, tmp_path)
    with pytest.raises(MstarError, match="'split' must be one of test, val, train, all; got 'holdout'"):
        _retrieve(trained_model, zs_cohort, tmp_path, reports=str(zs_cohort["reports"]), split="holdout")
    table = pd.read_csv(zs_cohort["manifest"])
    table[table["fold"] != "val"].to_csv(tmp_path / "noval.csv", index=False)
    with pytest.raises(MstarError, match="no rows in split 'val'"):
        _retrieve(trained_model, {**zs_cohort, "manifest": tmp_path / "noval.csv"}, tmp_path,
                  reports=str(zs_cohort["reports"]), split="val")
    import numpy as np

    from tests.tasks._bags import write_bag

    for slide in table["slide"]:  # another patch encoder's width: one line, as zero-shot and embed say
        write_bag(tmp_path / "narrow" / f"{slide}.h5", np.zeros((3, 5), np.float32))
    with pytest.raises(MstarError, match=r"narrow: 5-d patch features, but the checkpoint was pretrained"):
        _retrieve(trained_model, {**zs_cohort, "features": tmp_path / "narrow"}, tmp_path,
                  reports=str(zs_cohort["reports"]), name="narrow")
    assert not (tmp_path / "retrieval" / "narrow").exists()


def test_a_stage1_model_refuses_features_of_another_patch_encoder(trained_model, zs_cohort, tmp_path):
    import shutil

    import h5py

    from mstar.pretrain.stage1_model import save_stage1
    from mstar.zeroshot.config import RetrievalConfig
    from mstar.zeroshot.loading import load_model
    from mstar.zeroshot.retrieve import retrieve

    ckpt = save_stage1(tmp_path / "stage1.pt", trained_model,
                       {"features": {"encoder": "enc-a", "encoder_sha": "a" * 64}})
    other = tmp_path / "features-b"
    shutil.copytree(zs_cohort["features"], other)
    for f in sorted(other.glob("*.h5")):  # the same width, another encoder
        with h5py.File(f, "a") as h5:
            h5.attrs["encoder"], h5.attrs["encoder_sha"] = "enc-b", "b" * 64
    refused = (r"features from encoder enc-b .* but .*stage1.pt was pretrained on enc-a .*; use features of "
               r"the patch encoder it was pretrained on")
    with pytest.raises(MstarError, match=refused):
        retrieve(RetrievalConfig(stage1=str(ckpt), manifest=str(zs_cohort["manifest"]), features=str(other),
                                 reports=str(zs_cohort["reports"]), out=str(tmp_path), name="b",
                                 device="cpu"))
    model, meta = load_model(ckpt, features=zs_cohort["features"], device="cpu")  # no hash there: by width
    assert meta["features"]["encoder"] == "enc-a"
