"""`mstar view`: the deep-zoom server's routes, and a headless-Chromium screenshot of slide and overlay."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pandas as pd
import pytest

from mstar.errors import MstarError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    from mstar.predict.config import PredictConfig
    from mstar.predict.run import predict
    from mstar.predict.viewer import make_server, openseadragon_dir

    try:
        openseadragon_dir()
    except MstarError as exc:
        pytest.skip(f"{exc}")
    out = tmp_path_factory.mktemp("view") / "pred"
    table = predict(PredictConfig(inputs=[str(runs["features"])], run=str(runs["classify"]), out=str(out),
                                  top_k=3), progress=False)["predictions"]
    server = make_server(out, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}", out, table["slide"].iloc[0]
    server.shutdown()
    server.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def test_an_unknown_slide_to_open_first_is_one_line_before_serving(served):
    from mstar.predict.viewer import make_server

    _, out, slide = served
    with pytest.raises(MstarError, match=rf"pred: no predicted slide 'NOPE'; it has .*{slide}"):
        make_server(out, 0, "NOPE")
    server = make_server(out, 0, slide)  # a slide of the folder is fine
    server.server_close()


def test_routes_serve_deep_zoom_tiles_overlay_and_nothing_outside(served):
    base, out, slide = served
    assert base.startswith("http://127.0.0.1:")  # loopback only
    assert f"/slide/{slide}" in _get(base + "/").decode()
    dzi = _get(f"{base}/dzi/{slide}.dzi").decode()
    assert 'TileSize="254"' in dzi and 'Format="jpeg"' in dzi
    jpeg = _get(f"{base}/dzi/{slide}_files/0/0_0.jpeg")
    tile = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert tile is not None and tile.shape[:2] == (1, 1)  # Deep Zoom level 0 is one pixel
    overlay = cv2.imdecode(np.frombuffer(_get(f"{base}/overlay/{slide}.png"), np.uint8), cv2.IMREAD_UNCHANGED)
    tiles = pd.read_csv(out / "evidence" / f"{slide}.csv")
    assert overlay.shape[2] == 4 and 0 < (overlay[..., 3] > 0).mean() < 1  # transparent off the tiles
    page = _get(f"{base}/slide/{slide}?opacity=0.3").decode()
    assert '"opacity": 0.3' in page and f'"rank": {int(tiles["rank"].min())}' in page
    # DNS rebinding: a request naming another host is refused
    request = urllib.request.Request(base + "/", headers={"Host": f"evil.example:{base.rsplit(':', 1)[1]}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 403
    for bad in ("/files/../../../etc/passwd", "/dzi/NOPE.dzi", "/osd/../package.json", "/nothing"):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(base + bad)
        assert err.value.code == 404


def _shot(url: str, path) -> np.ndarray:
    subprocess.run([shutil.which("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1100,700", "--virtual-time-budget=15000",
                    f"--screenshot={path}", url], check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(path))
    assert image is not None, f"no screenshot of {url}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_headless_chromium_draws_the_slide_the_overlay_and_the_markers(served, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it as root via apt-get)")
    base, _, slide = served
    plain = _shot(f"{base}/slide/{slide}?opacity=0", tmp_path / "plain.png")
    heat = _shot(f"{base}/slide/{slide}?opacity=0.9", tmp_path / "heat.png")
    view = plain[60:, :-260].astype(int)  # the viewer pane (below the bar, left of the side list)
    # the slide is drawn: tissue (not white, not black) covers a good part of the pane
    tissue = (view.min(axis=2) < 220) & (view.max(axis=2) > 60)
    assert tissue.mean() > 0.1, tissue.mean()
    # the overlay is drawn: the same pane changes where the heatmap covers the tissue
    change = np.abs(heat[60:, :-260].astype(int) - view).sum(axis=2) > 60
    assert change.mean() > 0.05, change.mean()
    # the top-tile markers are drawn (cyan #00e5ff borders)
    cyan = (np.abs(plain.astype(int) - [0, 229, 255]).sum(axis=2) < 60)
    assert cyan.sum() > 200
    # a marker flies to its region (as a click on it does): the page records the zoom it settled at
    zoom = {}
    for fly in (0, 1):
        dom = subprocess.run([shutil.which("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
                              "--window-size=1100,700", "--virtual-time-budget=15000", "--dump-dom",
                              f"{base}/slide/{slide}?fly={fly}"], check=True, capture_output=True,
                             text=True, timeout=120).stdout
        found = re.search(r'data-zoom="([0-9.]+)"', dom)
        assert found and 'data-overlay="loaded"' in dom and 'data-tiles="loaded"' in dom, dom[:300]
        zoom[fly] = float(found.group(1))
    assert zoom[1] > 2 * zoom[0], zoom  # a 3-tile square fills the pane: 2.7x the whole-slide view here
    if os.environ.get("MSTAR_VIEW_SCREENSHOT"):
        shutil.copy(tmp_path / "heat.png", os.environ["MSTAR_VIEW_SCREENSHOT"])
