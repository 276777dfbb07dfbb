"""The pages `mstar view` serves: the slide list and the deep-zoom viewer of one slide."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

STYLE = """body{margin:0;font-family:system-ui,sans-serif;color:#222}
#bar{display:flex;gap:1.2em;align-items:center;padding:6px 12px;background:#f4f4f4;
border-bottom:1px solid #ddd}
#main{display:flex;height:calc(100vh - 42px)}#osd{flex:1;background:#fff}
#side{width:250px;overflow:auto;padding:8px;border-left:1px solid #ddd;font-size:90%}
#side li{cursor:pointer;margin:2px 0}#side li:hover{text-decoration:underline}
.marker{border:2px solid #00e5ff;box-sizing:border-box;cursor:pointer}
.marker span{background:#00e5ff;color:#000;font:bold 11px sans-serif;padding:0 3px}"""

SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
const viewer = OpenSeadragon({id: 'osd', prefixUrl: '/osd/images/', tileSources: D.dzi,
  showNavigator: true, maxZoomPixelRatio: 2, animationTime: 0.6});
let heat = null;
viewer.addHandler('open', () => {
  const base = viewer.world.getItemAt(0);
  const size = base.getContentSize();
  viewer.addTiledImage({tileSource: {type: 'image', url: D.overlay}, x: 0, y: 0, width: 1,
    opacity: D.opacity, success: (e) => { heat = e.item; document.body.dataset.overlay = 'loaded'; }});
  D.top.forEach((t) => {
    const rect = viewer.viewport.imageToViewportRectangle(t.x, t.y, t.side, t.side);
    const el = document.createElement('div');
    el.className = 'marker';
    el.id = 'marker-' + t.rank;
    el.innerHTML = '<span>#' + t.rank + '</span>';
    el.title = 'rank ' + t.rank + ', score ' + t.score.toPrecision(3);
    viewer.addOverlay({element: el, location: rect});
    new OpenSeadragon.MouseTracker({element: el, clickHandler: () => fly(t)});
  });
  document.body.dataset.slide = size.x + 'x' + size.y;
  document.body.dataset.zoom = viewer.viewport.getZoom(true).toFixed(3);
  if (D.fly > 0 && D.fly <= D.top.length) fly(D.top[D.fly - 1]);
});
viewer.addHandler('animation-finish', () => {
  document.body.dataset.zoom = viewer.viewport.getZoom(true).toFixed(3);
});
viewer.addHandler('tile-loaded', () => { document.body.dataset.tiles = 'loaded'; });
function fly(t) {
  viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(
    t.x - t.side, t.y - t.side, 3 * t.side, 3 * t.side));
}
document.getElementById('opacity').addEventListener('input', (e) => {
  if (heat) heat.setOpacity(parseFloat(e.target.value));
});
document.querySelectorAll('#side li').forEach((li, i) => li.addEventListener('click', () => fly(D.top[i])));
"""


def _page(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style>{head}</head><body>\n{body}\n</body></html>\n")


def index_html(data) -> str:
    """The slides of the folder, each a link to its viewer."""
    rows = "".join(f"<li><a href='/slide/{quote(s)}'>{escape(s)}</a> — {escape(r['label_text'])}</li>"
                   for s, r in sorted(data.records.items()))
    return _page("mstar view", f"<div style='padding:1em'><h1>Slides</h1><ul>{rows}</ul>"
                               "<p><a href='/files/index.html'>the prediction pages</a></p></div>")


def slide_html(data, slide_id: str, opacity: float = 0.5, top_k: int = 8, fly: int = 0) -> str:
    """The viewer of one slide: deep zoom, heatmap overlay with an opacity slider, top tiles as markers
    (``fly``: open zoomed onto that rank's tile, as a click on its marker does)."""
    record = data.record(slide_id)
    tiles = data.tiles(slide_id).sort_values("rank").head(top_k)
    top = [{"rank": int(t.rank), "x": float(t.x), "y": float(t.y), "side": float(t.tile_px_level0),
            "score": float(t.score)} for t in tiles.itertuples()]
    payload = {"dzi": f"/dzi/{quote(slide_id)}.dzi", "overlay": f"/overlay/{quote(slide_id)}.png",
               "opacity": max(0.0, min(1.0, opacity)), "top": top, "fly": int(fly)}
    items = "".join(f"<li>#{t['rank']} score {t['score']:.3g}</li>" for t in top)
    data = json.dumps(payload).replace("<", "\\u003c")  # no "</script>" can end the block early
    body = (f"<div id='bar'><a href='/'>slides</a><b>{escape(slide_id)}</b>"
            f"<span>{escape(record['label_text'])}</span><label>heatmap opacity <input id='opacity' "
            f"type='range' min='0' max='1' step='0.05' value='{payload['opacity']}'></label>"
            f"<span class='muted'>{escape(record['score_kind'])}</span></div>"
            f"<div id='main'><div id='osd'></div><div id='side'><b>Top evidence tiles</b> (click to fly)"
            f"<ol style='padding-left:1.2em;list-style:none'>{items}</ol></div></div>"
            f"<script id='data' type='application/json'>{data}</script>"
            f"<script src='/osd/openseadragon.min.js'></script><script>{SCRIPT}</script>")
    return _page(f"{slide_id} — mstar view", body)
