"""`mstar predict` from the real slides (../shared/data/slides): one has no mpp and needs --slide-mpp."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mstar.errors import MstarError
from mstar.predict.config import PredictConfig
from mstar.predict.run import predict

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.mark.parametrize("kind", ["classify", "survival", "cv", "multimodal"])
def test_real_slides_from_raw_files_to_pages(runs, shared_data, tiny_cohort, tmp_path, kind):
    slides = sorted((shared_data / "slides").glob("*.svs"))
    if len(slides) < 2:
        pytest.skip("the two real slides are absent")
    extra = {}
    if kind == "multimodal":
        # no real omics exist for these two slides (neither is in ../shared/data/tcga_omics), so each is given
        # a synthetic case's RNA profile: this checks the path from raw real slides to pages, not a prediction
        rna = tiny_cohort / "rna" / "cases"
        case = sorted(p.stem for p in rna.glob("*.csv"))[0]
        pd.DataFrame({"case": [case], "slide": [";".join(s.stem for s in slides)]}).to_csv(
            tmp_path / "cases.csv", index=False)
        extra = {"omics": str(rna), "cases": str(tmp_path / "cases.csv")}

    def cfg(**kw):
        return PredictConfig(inputs=[str(s) for s in slides], run=str(runs[kind]), out=str(tmp_path / "o"),
                             top_k=2, **extra, **kw)

    with pytest.raises(MstarError, match="no microns-per-pixel.*--slide-mpp"):
        predict(cfg(), progress=False)
    result = predict(cfg(slide_mpp=0.5), overwrite=True, progress=False)
    table = result["predictions"]
    assert sorted(table["slide"]) == sorted(s.stem for s in slides) and (table["status"] == "ok").all()
    assert (table["n_tiles"] > 20).all() and (tmp_path / "o" / "index.html").is_file()
    for s in table["slide"]:
        gj = json.loads((tmp_path / "o" / "evidence" / f"{s}.geojson").read_text())
        kinds = {f["properties"]["objectType"] for f in gj["features"]}
        assert kinds == {"detection", "annotation"}
        assert (tmp_path / "o" / "evidence" / f"{s}_heatmap.png").stat().st_size > 10_000
        assert (tmp_path / "o" / "slides" / f"{s}.html").is_file()
