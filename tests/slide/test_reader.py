import numpy as np
import pytest
from PIL import Image

from mstar.errors import MstarError
from mstar.slide.mpp import mpp_from_properties
from mstar.slide.reader import open_slide, slide_id_of


@pytest.mark.parametrize("props, expected", [
    ({"openslide.mpp-x": "0.2527"}, 0.2527),
    ({"aperio.MPP": "0.499"}, 0.499),
    ({"tiff.XResolution": "40000", "tiff.ResolutionUnit": "centimeter"}, 0.25),
    ({"tiff.XResolution": "50800", "tiff.ResolutionUnit": "inch"}, 0.5),
    ({"tiff.XResolution": "72", "tiff.ResolutionUnit": "inch"}, None),  # a 72-dpi default is not a scan
    ({}, None),
])
def test_mpp_sources(props, expected):
    got = mpp_from_properties(props)
    assert got == (pytest.approx(expected) if expected else None)


def test_slide_id_keeps_inner_dots():
    assert slide_id_of("/x/TCGA-05-4244-01Z-00-DX1.d4ff32cd.svs") == "TCGA-05-4244-01Z-00-DX1.d4ff32cd"


def test_plain_image_needs_mpp_and_reads_with_white_padding(tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[..., 0] = 200
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    with pytest.raises(MstarError, match="--slide-mpp"):
        open_slide(path)
    slide = open_slide(path, mpp=0.5)
    assert slide.backend == "image" and slide.dimensions == (60, 40) and slide.mpp_source == "override"
    region = slide.read_region(50, 30, 0, 20)
    assert region.shape == (20, 20, 3)
    assert (region[:10, :10, 0] == 200).all() and (region[10:, 10:] == 255).all()


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(MstarError, match="not found"):
        open_slide(tmp_path / "nope.svs")
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(MstarError, match="cannot read this slide") as err:
        open_slide(bad)
    assert "\n" not in str(err.value)


def test_synthetic_40x_slide_is_a_proper_aperio_pyramid(tiny_cohort):
    import json

    truth = json.loads((tiny_cohort / "truth.json").read_text())
    slides = [s for c in truth["cases"] for s in c["slides"]]
    s40 = next(s for s in slides if s["scanner"] == "40x")
    s20 = next(s for s in slides if s["scanner"] == "20x")
    with open_slide(tiny_cohort / "slides" / f"{s40['slide_id']}.svs") as slide:
        assert slide.backend == "openslide"
        assert slide.properties["openslide.vendor"] == "aperio"
        assert slide.mpp == pytest.approx(0.25) and slide.mpp_source == "metadata"
        assert slide.properties["aperio.AppMag"] == "40"
        assert slide.level_downsamples == pytest.approx((1.0, 4.0, 16.0), rel=1e-3)
        # the levels hold the same picture: level 1 ≈ level 0 averaged 4x4
        w, h = 256, 256
        lvl0 = slide.read_region(1024, 1024, 0, (4 * w, 4 * h)).astype(np.float32)
        lvl1 = slide.read_region(1024, 1024, 1, (w, h)).astype(np.float32)
        pooled = lvl0.reshape(h, 4, w, 4, 3).mean((1, 3))
        assert np.abs(pooled - lvl1).mean() < 6.0
    with open_slide(tiny_cohort / "slides" / f"{s20['slide_id']}.svs") as slide:
        assert slide.mpp == pytest.approx(s20["mpp"], abs=1e-4)
        assert slide.level_downsamples == pytest.approx((1.0, 4.0), rel=1e-3)


def test_tiffslide_fallback_reads_the_same_pixels(tiny_cohort):
    import mstar.slide.reader as reader

    path = next((tiny_cohort / "slides").glob("*.svs"))
    with open_slide(path) as a:
        ref = a.read_region(300, 200, 0, 128)
    handle, backend, props, dims, downs = reader._open_tiffslide(path)
    slide = reader.Slide(path, handle, backend, 0.25, "override", dims, downs, props)
    assert np.abs(slide.read_region(300, 200, 0, 128).astype(int) - ref).max() <= 2
    slide.close()


def test_slide_mpp_serves_slides_without_metadata_and_overrides_only_when_asked(tmp_path, caplog):
    from mstar.slide import reader

    props = {"openslide.mpp-x": "0.499", "openslide.mpp-y": "0.499"}
    path = tmp_path / "scan.png"
    path.write_bytes(b"x")
    original = reader._open_image
    try:
        reader._open_image = lambda p: (None, "image", props, ((60, 40),), (1.0,))
        slide = open_slide(path, mpp=0.25, only_if_missing=True)  # --slide-mpp: the metadata wins, said
        assert (slide.mpp, slide.mpp_source) == (pytest.approx(0.499), "metadata")
        said = "its metadata says 0.499 µm/px; --slide-mpp 0.25 applies only to slides without one"
        assert said in caplog.text
        caplog.clear()
        assert open_slide(path, mpp=0.5, only_if_missing=True).mpp == pytest.approx(0.499)
        assert not caplog.text  # within 5 %: quiet
        slide = open_slide(path, mpp=0.25)  # a recorded override (a tiled slide re-opened), or forced
        assert (slide.mpp, slide.mpp_source) == (0.25, "override") and not caplog.text
        reader._open_image = lambda p: (None, "image", {}, ((60, 40),), (1.0,))
        slide = open_slide(path, mpp=0.25, only_if_missing=True)  # no metadata: the given value
        assert (slide.mpp, slide.mpp_source) == (0.25, "override")
    finally:
        reader._open_image = original


def test_tifffile_warnings_while_trying_a_file_print_no_stray_line(tmp_path, caplog, monkeypatch):
    import logging

    import tiffslide

    def damaged(path):
        logging.getLogger("tifffile").warning("<tifffile.TiffPages @8> invalid page offset 12345")
        raise ValueError("index 0 out of range(0)")

    monkeypatch.setattr(tiffslide, "TiffSlide", damaged)
    path = tmp_path / "bad.svs"
    path.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(MstarError, match="tiffslide: index 0 out of range"):
        open_slide(path)
    assert "invalid page offset" not in caplog.text  # the error line says what failed
    logging.getLogger("tifffile").warning("outside an open attempt")  # other tifffile warnings still show
    assert "outside an open attempt" in caplog.text
