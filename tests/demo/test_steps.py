import shutil

from mstar.demo import DemoContext
from mstar.demo.steps import step_extract
from mstar.features.io import load_features


def test_step_extract_on_the_tiled_cohort(work, tmp_path):
    ctx = DemoContext(out=tmp_path / "demo", workers=2)
    shutil.copytree(work, ctx.work)
    output, numbers = step_extract(ctx)
    assert output == str(ctx.work / "features" / "timm-test_vit")
    assert numbers.startswith("15 tiles -> 64-d features (timm:test_vit)") and "3 slides" in numbers
    summary = ctx.results["extract"]
    assert len(summary) == 3 and (summary["status"] == "ok").all()
    for sid in summary["slide"]:
        assert load_features(ctx.work / "features" / "timm-test_vit" / f"{sid}.h5")[0].shape == (5, 64)
        assert (ctx.work / "pt_files" / "timm-test_vit" / f"{sid}.pt").exists()
