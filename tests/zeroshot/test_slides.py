"""Zero-shot on real (synthetic) slides: features of the tiny cohort's test slides, heatmaps over the
slides."""

import shutil

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # the tiny cohort and extraction of its test slides


@pytest.fixture(scope="module")
def extracted(tiny_cohort, tiny_tiles, tmp_path_factory):
    from mstar.features.extract import extract_features

    work = tmp_path_factory.mktemp("zs_work")
    (work / "tiles").mkdir()
    test = pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv").query("fold == 'test'")
    for slide in (s for cell in test["slide"] for s in cell.split(";")):  # only the test slides
        shutil.copy(tiny_tiles / "tiles" / f"{slide}.h5", work / "tiles")
    extract_features(work, "timm:test_vit", batch_size=32, workers=0, device="cpu", show_progress=False)
    return work / "features" / "timm-test_vit"


def test_zero_shot_heatmaps_on_slides(tiny_cohort, extracted, tmp_path):
    from mstar.pretrain.stage1_model import Stage1Model, build_text_encoder
    from mstar.zeroshot.config import ZeroShotConfig
    from mstar.zeroshot.zero_shot import zero_shot
    from tests.zeroshot._cohort import VISION

    model = Stage1Model(64, 32, build_text_encoder(None, 32, max_tokens=64), None, VISION).eval()
    cfg = ZeroShotConfig(stage1="random", prompts=str(tiny_cohort / "prompts" / "cancer_type.json"),
                         manifest=str(tiny_cohort / "manifests" / "diagnosis.csv"), features=str(extracted),
                         out=str(tmp_path), name="slides", top_j=5, bootstrap=50, heatmaps=2,
                         skip_missing=True)  # val slides have no features
    result = zero_shot(cfg, model=model, progress=False)
    assert len(result["heatmaps"]) == 2
    for png in result["heatmaps"]:
        assert png.endswith("_zeroshot.png") and (tmp_path / "zeroshot" / "slides" / "heatmaps").exists()
    pred = pd.read_csv(tmp_path / "zeroshot" / "slides" / "predictions.csv")
    test_cases = pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv").query("fold == 'test'")
    assert sorted(pred.loc[pred["split"] == "test", "case"]) == sorted(test_cases["case"])
