"""`mstar view DIR`: a local deep-zoom viewer of a prediction folder.

The slide at full resolution (OpenSlide's ``DeepZoomGenerator`` serves Deep Zoom tiles), the evidence
heatmap as an overlay with an opacity slider, and the top evidence tiles as clickable markers that fly to
their region. The browser side is OpenSeadragon, installed at set-up from the npm registry
(``viewer/package.json``; ``make viewer``), never copied into the repository. The server listens on the
loopback interface only.

Routes: ``/`` (slides), ``/slide/<id>`` (the viewer; ``?opacity=0.5``, ``&fly=1`` opens on rank 1's
tile), ``/dzi/<id>.dzi`` and ``/dzi/<id>_files/<level>/<col>_<row>.jpeg`` (Deep Zoom),
``/overlay/<id>.png`` (the heatmap, RGBA), ``/osd/<file>`` (OpenSeadragon), ``/files/<path>`` (the
folder's own files: evidence, pages).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pandas as pd

from mstar.errors import MstarError, some

log = logging.getLogger(__name__)
OSD_ENV = "MSTAR_OPENSEADRAGON"
TILE_PX, OVERLAP_PX, OVERLAY_MAX_PX = 254, 1, 2048


def openseadragon_dir() -> Path:
    """The folder holding ``openseadragon.min.js`` and its ``images/`` (``$MSTAR_OPENSEADRAGON``, else the
    project's ``viewer/node_modules``)."""
    candidates = [Path(os.environ[OSD_ENV])] if os.environ.get(OSD_ENV) else []
    root = Path(__file__).resolve().parents[3]  # src/mstar/predict/viewer.py -> the project
    candidates.append(root / "viewer" / "node_modules" / "openseadragon" / "build" / "openseadragon")
    for folder in candidates:
        if (folder / "openseadragon.min.js").is_file():
            return folder
    raise MstarError("OpenSeadragon is not installed: run `make viewer` (npm ci --prefix viewer) in the "
                     f"project, or set {OSD_ENV} to a folder holding openseadragon.min.js")


class ViewerData:
    """The slides of a prediction folder and what the viewer draws of each."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        records = sorted((self.folder / "evidence").glob("*.json"))
        if not records:
            if (self.folder / "heatmaps" / "evidence").is_dir():  # a run folder with `mstar heatmap` output
                raise MstarError(f"{self.folder}: a run folder; its `mstar heatmap` evidence is viewed with "
                                 f"`mstar view {self.folder / 'heatmaps'}`")
            raise MstarError(f"{self.folder}: no evidence/<slide>.json; run `mstar predict ... --out "
                             f"{self.folder}` first")
        self.records = {r["slide"]: r for r in (json.loads(p.read_text()) for p in records)}
        self._locks: dict[str, threading.Lock] = {}

    def record(self, slide_id: str) -> dict:
        if slide_id not in self.records:
            raise KeyError(slide_id)
        return self.records[slide_id]

    def slide_path(self, slide_id: str) -> Path:
        path = Path(self.record(slide_id).get("slide_path", ""))
        if not path.is_file():
            raise FileNotFoundError(f"slide file {path} not found")
        return path

    @lru_cache(maxsize=8)  # noqa: B019 - one generator per slide for the server's lifetime
    def deepzoom(self, slide_id: str):
        """``(DeepZoomGenerator, lock)`` of a slide."""
        import openslide
        from openslide.deepzoom import DeepZoomGenerator

        path = self.slide_path(slide_id)
        try:
            handle = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError:
            handle = openslide.ImageSlide(str(path))
        return DeepZoomGenerator(handle, tile_size=TILE_PX, overlap=OVERLAP_PX), threading.Lock()

    def tiles(self, slide_id: str) -> pd.DataFrame:
        return pd.read_csv(self.folder / self.record(slide_id)["files"]["csv"])

    def overlay_png(self, slide_id: str) -> bytes:
        """The heatmap as an RGBA PNG over the whole slide (transparent outside the tiles)."""
        import cv2
        from matplotlib import colormaps

        gen, _ = self.deepzoom(slide_id)
        width, height = gen.level_dimensions[-1]
        down = max(1.0, max(width, height) / OVERLAY_MAX_PX)
        w, h = max(1, round(width / down)), max(1, round(height / down))
        rgba = np.zeros((h, w, 4), np.uint8)
        t = self.tiles(slide_id)
        lo, hi = float(t["score"].min()), float(t["score"].max())
        norm = (t["score"] - lo) / (hi - lo) if hi > lo else t["score"] * 0 + 0.5
        colours = (colormaps["inferno"](norm.to_numpy())[:, :3] * 255).astype(np.uint8)
        for (x, y, side), colour in zip(t[["x", "y", "tile_px_level0"]].to_numpy(), colours):
            x0, y0 = int(x / down), int(y / down)
            x1, y1 = min(w, int(round((x + side) / down))), min(h, int(round((y + side) / down)))
            rgba[y0:y1, x0:x1, :3] = colour
            rgba[y0:y1, x0:x1, 3] = 255
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        return buf.tobytes()


def _handler(data: ViewerData, osd: Path):
    from mstar.predict.viewer_page import index_html, slide_html

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args) -> None:  # quiet: one line per request at debug level
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store" if content_type.startswith("text/html") else
                             "max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def _file(self, base: Path, rel: str) -> None:
            path = (base / rel).resolve()
            if base.resolve() not in path.parents or not path.is_file():  # nothing outside ``base``
                self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
                return
            types = {".js": "application/javascript", ".png": "image/png", ".json": "application/json",
                     ".csv": "text/csv", ".html": "text/html; charset=utf-8", ".geojson": "application/json",
                     ".map": "application/json"}
            self._send(path.read_bytes(), types.get(path.suffix, "application/octet-stream"))

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            port = self.server.server_address[1]
            if self.headers.get("Host", "") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                # a page elsewhere that rebinds its name to 127.0.0.1 must not read the folder (DNS rebinding)
                self._send(b"forbidden: wrong Host", "text/plain", HTTPStatus.FORBIDDEN)
                return
            url = urlparse(self.path)
            route = unquote(url.path)
            try:
                if route == "/":
                    self._send(index_html(data).encode(), "text/html; charset=utf-8")
                elif m := re.fullmatch(r"/slide/([^/]+)", route):
                    query = parse_qs(url.query)
                    page = slide_html(data, m.group(1), float(query.get("opacity", ["0.5"])[0]),
                                      fly=int(query.get("fly", ["0"])[0]))
                    self._send(page.encode(), "text/html; charset=utf-8")
                elif m := re.fullmatch(r"/dzi/([^/]+)\.dzi", route):
                    gen, _ = data.deepzoom(m.group(1))
                    self._send(gen.get_dzi("jpeg").encode(), "application/xml")
                elif m := re.fullmatch(r"/dzi/([^/]+)_files/(\d+)/(\d+)_(\d+)\.jpeg", route):
                    gen, lock = data.deepzoom(m.group(1))
                    with lock:
                        tile = gen.get_tile(int(m.group(2)), (int(m.group(3)), int(m.group(4))))
                    buf = io.BytesIO()
                    tile.convert("RGB").save(buf, "jpeg", quality=85)
                    self._send(buf.getvalue(), "image/jpeg")
                elif m := re.fullmatch(r"/overlay/([^/]+)\.png", route):
                    self._send(data.overlay_png(m.group(1)), "image/png")
                elif route.startswith("/osd/"):
                    self._file(osd, route[len("/osd/"):])
                elif route.startswith("/files/"):
                    self._file(data.folder, route[len("/files/"):])
                else:
                    self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            except (KeyError, ValueError, FileNotFoundError) as exc:
                self._send(f"not found: {exc}".encode(), "text/plain", HTTPStatus.NOT_FOUND)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as exc:  # noqa: BLE001 - a bad tile or file answers 500, the server goes on
                log.warning("%s: %s", route, exc)
                self._send(f"error: {type(exc).__name__}".encode(), "text/plain",
                           HTTPStatus.INTERNAL_SERVER_ERROR)

    return Handler


def make_server(folder: str | os.PathLike, port: int = 0, slide: str | None = None) -> ThreadingHTTPServer:
    """A viewer server of ``folder`` on ``127.0.0.1:port`` (0: a free port); call ``serve_forever``.
    ``slide``, the one to open first, must be one of the folder's."""
    data = ViewerData(folder)
    if slide is not None and slide not in data.records:
        known = sorted(data.records)
        raise MstarError(f"{folder}: no predicted slide {slide!r}; it has {some(known, 8)}")
    osd = openseadragon_dir()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(data, osd))
    except OSError as exc:
        raise MstarError(f"port {port}: cannot listen on 127.0.0.1 ({exc.strerror}); pass another --port") \
            from None
    server.daemon_threads = True
    return server
