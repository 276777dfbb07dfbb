"""`mstar predict`: predictions equal `mstar evaluate`'s, evidence files, QuPath GeoJSON, pages, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.predict.config import PredictConfig
from mstar.predict.run import predict

pytestmark = pytest.mark.slow


def _predict(inputs, run, out, **kw):
    return predict(PredictConfig(inputs=[str(i) for i in inputs], run=str(run), out=str(out), top_k=3, **kw),
                   progress=False)


def _evaluate(run: Path, manifest: Path, features: Path) -> pd.DataFrame:
    from mstar.tasks.evaluate import EvaluateConfig, evaluate_run

    res = evaluate_run(EvaluateConfig(run=str(run), manifest=str(manifest), features=str(features)))
    return pd.read_csv(Path(res["out"]) / "predictions.csv")


@pytest.fixture(scope="module")
def classified(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "classify"
    return _predict([runs["features"]], runs["classify"], out), out


@pytest.mark.parametrize("kind", ["classify", "cv"])
def test_ensemble_probabilities_equal_evaluate_mean_over_units(classified, runs, tiny_cohort, tmp_path, kind):
    """Two seeds of a fixed split, or the two folds of a cross-validated run."""
    result = (classified[0] if kind == "classify"
              else _predict([runs["features"]], runs["cv"], tmp_path / "cv"))
    table = result["predictions"].set_index("slide")
    ev = _evaluate(runs[kind], tiny_cohort / "manifests" / "diagnosis.csv", runs["features"])
    manifest = pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv")
    slide_of = dict(zip(manifest["case"], manifest["slide"]))
    probs = [c for c in ev.columns if c.startswith("prob_")]
    assert len(ev["unit"].unique()) == 2  # an ensemble of two models
    mean = ev.groupby("case")[probs].mean()
    sd = ev.groupby("case")[probs].std(ddof=1)
    single = [c for c in mean.index if ";" not in slide_of[c]]  # predict works per slide; evaluate per case
    assert len(single) >= 5
    for case, row in mean.loc[single].iterrows():
        slide = slide_of[case]
        np.testing.assert_allclose(table.loc[slide, probs].to_numpy(float), row.to_numpy(float), atol=1e-5)
        sds = [f"sd_{c[5:]}" for c in probs]
        np.testing.assert_allclose(table.loc[slide, sds].to_numpy(float), sd.loc[case].to_numpy(float),
                                   atol=1e-5)
        assert table.loc[slide, "predicted"] == probs[int(row.to_numpy().argmax())][5:]
    assert (table["status"] == "ok").all() and (table["n_models"] == 2).all()


def test_evidence_files_geojson_and_pages(classified):
    shapely = pytest.importorskip("shapely", reason="shapely (dev extra) reads the GeoJSON back")
    from shapely.geometry import shape

    result, out = classified
    slide = result["predictions"]["slide"].iloc[0]
    ev = pd.read_csv(out / "evidence" / f"{slide}.csv")
    record = json.loads((out / "evidence" / f"{slide}.json").read_text())
    assert len(ev) == record["n_tiles"] and sorted(ev["rank"]) == list(range(1, len(ev) + 1))
    assert ev["score"].sum() == pytest.approx(1.0, abs=1e-4)  # ABMIL attention sums to one per slide
    gj = json.loads((out / "evidence" / f"{slide}.geojson").read_text())
    assert gj["type"] == "FeatureCollection"
    dets = [f for f in gj["features"] if f["properties"]["objectType"] == "detection"]
    anns = [f for f in gj["features"] if f["properties"]["objectType"] == "annotation"]
    assert len(dets) == len(ev) and anns, "tiles as detections, tissue as annotations"
    for f, (_, row) in zip(dets, ev.iterrows()):
        poly = shape(f["geometry"])  # round trip through a GeoJSON library
        assert poly.is_valid and poly.area == pytest.approx(row["tile_px_level0"] ** 2)
        assert poly.bounds == (row["x"], row["y"], row["x"] + row["tile_px_level0"],
                               row["y"] + row["tile_px_level0"])
        assert f["properties"]["measurements"]["score"] == pytest.approx(row["score"])
        assert f["properties"]["classification"]["name"] == record["predicted"]
        assert len(f["properties"]["classification"]["color"]) == 3
    tissue = shapely.union_all([shape(a["geometry"]) for a in anns])
    cover = [tissue.intersection(shape(f["geometry"])).area / shape(f["geometry"]).area for f in dets]
    assert min(cover) > 0 and np.median(cover) > 0.5  # tiles (kept at >= 25 % tissue) lie on the contours
    tiles = record["files"]["top_tiles"]
    assert len(tiles) == 3 and all((out / p).is_file() for p in tiles)
    index = (out / "index.html").read_text()
    for s in result["predictions"]["slide"]:  # one row per slide, linking its page
        assert index.count(f"<a href='slides/{s}.html'>") == 2 and (out / "slides" / f"{s}.html").is_file()
    page = (out / "slides" / f"{slide}.html").read_text()
    assert record["predicted"] in page and f"../evidence/{slide}_heatmap.png" in page


def test_survival_risk_and_groups(runs, tiny_cohort, tmp_path):
    import torch

    result = _predict([runs["features"]], runs["survival"], tmp_path / "surv")
    table = result["predictions"].set_index("slide")
    ev = _evaluate(runs["survival"], tiny_cohort / "manifests" / "survival.csv", runs["features"])
    manifest = pd.read_csv(tiny_cohort / "manifests" / "survival.csv")
    slide_of = dict(zip(manifest["ID"], manifest["WSI"].str.replace(".pt", "", regex=False)))
    model = torch.load(next(runs["survival"].glob("units/*/model.pt")), weights_only=False)
    cutoff = model["info"]["risk_cutoff"]
    for case, risk in zip(ev["case"], ev["risk"]):
        if ";" in slide_of[case]:
            continue
        row = table.loc[slide_of[case]]
        assert row["risk"] == pytest.approx(risk, abs=1e-5)
        assert row["risk_group"] == ("high" if risk > cutoff else "low")


@pytest.mark.parametrize("kind", ["classify", "cv", "survival", "multimodal"])
def test_slides_are_embedded_with_the_runs_encoder(runs, tiny_cohort, tmp_path, kind, monkeypatch):
    """From raw slides (tiled and embedded on the way) = from the run's features, for every run kind."""
    slides = sorted((tiny_cohort / "slides").glob("*.svs"))
    extra = {}
    if kind == "multimodal":  # slides whose case has RNA, and the cases' omics
        rna = tiny_cohort / "rna" / "cases"
        slides = [s for s in slides if (rna / f"{s.stem[:8]}.csv").is_file() and s.stem.endswith("DX1")]
        extra = {"omics": str(rna), "cases": str(tiny_cohort / "manifests" / "multimodal_survival.csv")}
    slides = slides[:2]
    result = _predict(slides, runs[kind], tmp_path / "from_slides", **extra)
    got = result["predictions"].set_index("slide")
    want = _predict([runs["features"]], runs[kind], tmp_path / "from_features", skip_errors=True,
                    **extra)["predictions"]
    want = want.set_index("slide")
    cols = [c for c in got.columns if c.startswith("prob_")] or ["risk"]
    assert len(got) == 2 and (got["status"] == "ok").all()
    assert (tmp_path / "from_slides" / "index.html").is_file()
    for s in got.index:
        np.testing.assert_allclose(got.loc[s, cols].to_numpy(float), want.loc[s, cols].to_numpy(float),
                                   atol=1e-4)
    if kind != "classify":
        return
    # finished: the same call is reported, not redone (the encoder is not even built); other inputs are
    # refused without --overwrite
    import mstar.predict.inputs

    def unused(*_args, **_kw):
        raise AssertionError("a finished prediction built its encoder")

    monkeypatch.setattr(mstar.predict.inputs, "run_encoder", unused)
    assert _predict(slides, runs["classify"], tmp_path / "from_slides")["finished_before"]
    with pytest.raises(MstarError, match="--overwrite to redo it, or another --out to predict beside it"):
        _predict(slides[:1], runs["classify"], tmp_path / "from_slides")  # (predict has no --name)


def test_bad_inputs_are_one_line_errors_and_skip_errors_goes_on(runs, tmp_path):
    feats = tmp_path / "feats"
    shutil.copytree(runs["features"], feats)
    (feats / "summary.csv").unlink(missing_ok=True)
    bad = sorted(feats.glob("*.h5"))[0]
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(MstarError, match=f"{bad.stem}.*--skip-errors"):
        _predict([feats], runs["classify"], tmp_path / "a")
    result = _predict([feats], runs["classify"], tmp_path / "b", skip_errors=True)
    table = result["predictions"]
    assert result["failed"] == [bad.stem] and table.set_index("slide").loc[bad.stem, "status"] == "error"
    assert (table["status"] == "ok").sum() == len(table) - 1
    # features of another encoder (another width) are refused before anything is written
    other = tmp_path / "other"
    other.mkdir()
    from tests.tasks._bags import write_bag

    write_bag(other / "X.h5", np.zeros((4, 8), np.float32))
    with pytest.raises(MstarError, match="8-d features, but the run was trained on 64-d"):
        _predict([other], runs["classify"], tmp_path / "c")
    assert not (tmp_path / "c").exists()
    (tmp_path / "config.yaml").write_text("task: report\n")
    with pytest.raises(MstarError, match="a report run; `mstar predict` applies classify, survival and"):
        _predict([feats], tmp_path, tmp_path / "d")


def test_heatmap_is_the_single_slide_case(runs, classified):
    from mstar.predict.heatmap import slide_heatmap

    result, out = classified
    slide = result["predictions"]["slide"].iloc[1]
    record = slide_heatmap(runs["classify"], slide, top_k=3)
    ev = pd.read_csv(runs["classify"] / "heatmaps" / record["files"]["csv"])
    want = pd.read_csv(out / "evidence" / f"{slide}.csv")
    pd.testing.assert_frame_equal(ev, want)
    assert (runs["classify"] / "heatmaps" / record["files"]["heatmap"]).is_file()
    # the command prints where the files are, and `mstar view` on the run points to its heatmaps folder
    from typer.testing import CliRunner

    from mstar.cli import app
    from mstar.predict.viewer import make_server

    printed = CliRunner().invoke(app, ["heatmap", "--run", str(runs["classify"]), "--slide", slide,
                                       "--top-k", "3"], terminal_width=400)
    assert printed.exit_code == 0, printed.output
    heatmaps = runs["classify"] / "heatmaps"
    assert f"heatmap: {heatmaps / record['files']['heatmap']}" in printed.output
    assert f"viewer: mstar view {heatmaps}" in printed.output
    with pytest.raises(MstarError, match=f"a run folder; its `mstar heatmap` evidence is viewed with `mstar "
                                         f"view {heatmaps}`"):
        make_server(runs["classify"], 0)
    make_server(heatmaps, 0).server_close()


def test_multimodal_runs_take_each_cases_omics(runs, tiny_cohort, tmp_path):
    manifest = tiny_cohort / "manifests" / "multimodal_survival.csv"
    result = _predict([runs["features"]], runs["multimodal"], tmp_path / "mm",
                      omics=str(tiny_cohort / "rna" / "cases"), cases=str(manifest), skip_errors=True)
    table = result["predictions"].set_index("slide")
    # the run's own test/val predictions, averaged over its two units, for single-slide cases
    unit_preds = pd.concat(pd.read_csv(p) for p in runs["multimodal"].glob("units/*/predictions.csv"))
    unit_preds = unit_preds[unit_preds["split"].isin(["val", "test"])].drop_duplicates(["unit", "case"])
    mean = unit_preds.groupby("case")["risk"].mean()
    checked = 0
    for case, risk in mean.items():
        slide = f"{case}-DX1"
        if slide in table.index and not (tmp_path / "mm" / "evidence" / f"{case}-DX2.json").exists():
            assert table.loc[slide, "case"] == case
            assert table.loc[slide, "risk"] == pytest.approx(risk, abs=1e-5)
            checked += 1
    assert checked >= 3
    assert (table["status"] == "error").any()  # the tiny cohort has cases without RNA: error rows, not a stop
    ok = table.index[table["status"] == "ok"][0]
    ev = pd.read_csv(tmp_path / "mm" / "evidence" / f"{ok}.csv")
    groups = [c for c in ev.columns if c.startswith("coattn_")]
    assert len(groups) == 6  # MCAT: one co-attention map per signature group
    np.testing.assert_allclose(ev[groups].sum(axis=0), 1.0, atol=1e-4)  # softmax over the tiles
    np.testing.assert_allclose(ev["score"], ev[groups].mean(axis=1), atol=1e-6)
    with pytest.raises(MstarError, match="--omics TABLE"):
        _predict([runs["features"]], runs["multimodal"], tmp_path / "mm2")
    # without --skip-errors a slide without omics stops before the output folder exists
    with pytest.raises(MstarError, match=r"no omics for slide .*\(or use --skip-errors"):
        _predict([runs["features"]], runs["multimodal"], tmp_path / "mm3",
                 omics=str(tiny_cohort / "rna" / "cases"), cases=str(manifest))
    assert not (tmp_path / "mm3").exists()


def test_when_every_slide_fails_to_tile_their_reasons_are_the_rows(runs, tmp_path):
    from PIL import Image

    image = tmp_path / "scan.png"  # a plain image has no µm/px: it cannot be tiled without --slide-mpp
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    result = _predict([image], runs["classify"], tmp_path / "out", skip_errors=True)
    table = result["predictions"]
    assert result["failed"] == ["scan"] and table["status"].tolist() == ["error"]
    assert "no microns-per-pixel" in table["error"][0]  # not "no tiles files; run mstar tile first"


def test_slide_and_encoder_errors_stop_before_the_output_folder_so_the_fix_reruns(runs, tmp_path):
    from PIL import Image

    image = tmp_path / "scan.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    with pytest.raises(MstarError, match="no microns-per-pixel"):
        _predict([image], runs["classify"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # the run's encoder had random weights: a --checkpoint would not be used, so it is refused
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    with pytest.raises(MstarError, match="random initial weights.*predict without --checkpoint"):
        _predict([image], runs["classify"], tmp_path / "out", slide_mpp=0.5, checkpoint=str(weights))
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken.svs"  # unreadable, --slide-mpp or not: before the folder too
    broken.write_bytes(b"not a slide")
    with pytest.raises(MstarError, match="cannot read this slide"):
        _predict([broken], runs["classify"], tmp_path / "out", slide_mpp=0.5)
    assert not (tmp_path / "out").exists()
    # the fix the first error named runs (the plain image has no tissue: a failed row, not "other settings")
    result = _predict([image], runs["classify"], tmp_path / "out", slide_mpp=0.5, skip_errors=True)
    assert result["failed"] == ["scan"] and not result["finished_before"]


def test_a_stage2_encoder_run_names_the_checkpoint_it_needs(runs, tmp_path):
    from mstar.predict.inputs import run_encoder
    from mstar.predict.models import load_run_models

    run = load_run_models(runs["classify"])
    run.identity = {**run.identity, "encoder": "s2", "encoder_sha": "abc", "checkpoint": "s2.pth"}
    other = tmp_path / "other.pth"
    other.write_bytes(b"")
    with pytest.raises(MstarError, match=r"--checkpoint .*other.pth: the run was trained on features of the "
                                         r"stage-2 encoder s2 \(weights s2.pth\); pass that file, with its "
                                         r"sidecar s2.json beside it"):
        run_encoder(run, str(other))


def test_runs_on_multi_resolution_bags_predict_from_context_folders_and_slides(runs, tiny_cohort, tmp_path):
    """A run trained with --set context=true: predict reads [high | context] like training and evaluate."""
    from mstar.features.context import low_power_pass, write_context_folder

    work = tmp_path / "work"
    shutil.copytree(runs["features"].parents[1] / "tiles", work / "tiles")
    shutil.copytree(runs["features"], work / "features" / "timm-test_vit")
    low = low_power_pass(work, "timm:test_vit", 2.0, show_progress=False)
    ctx = work / "features" / "timm-test_vit-ctx2"
    write_context_folder(work / "features" / "timm-test_vit", low, ctx)
    from tests.predict.conftest import _train

    manifest_path = tiny_cohort / "manifests" / "diagnosis.csv"
    run = _train("classify", manifest_path, ctx, tmp_path / "runs", context=True)
    table = _predict([ctx], run, tmp_path / "p1")["predictions"].set_index("slide")
    ev = _evaluate(run, tiny_cohort / "manifests" / "diagnosis.csv", ctx)
    manifest = pd.read_csv(tiny_cohort / "manifests" / "diagnosis.csv")
    probs = [c for c in ev.columns if c.startswith("prob_")]
    for case, slide in zip(manifest["case"], manifest["slide"]):
        if ";" not in slide:
            np.testing.assert_allclose(table.loc[slide, probs].to_numpy(float),
                                       ev.set_index("case").loc[case, probs].to_numpy(float), atol=1e-5)
    slides = sorted((tiny_cohort / "slides").glob("*.svs"))[:2]
    from_slides = _predict(slides, run, tmp_path / "p2")["predictions"].set_index("slide")
    for s in from_slides.index:
        np.testing.assert_allclose(from_slides.loc[s, probs].to_numpy(float),
                                   table.loc[s, probs].to_numpy(float), atol=1e-4)
    with pytest.raises(MstarError, match="multi-resolution bags; pass the <encoder>-ctx folder"):
        _predict([runs["features"]], run, tmp_path / "p3")
