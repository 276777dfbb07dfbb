"""Static pages of a prediction folder: ``index.html`` (one row per slide) and ``slides/<slide>.html``
(prediction with its uncertainty, heatmap, top tiles, supporting knowledge, provenance). Plain HTML and CSS,
no script and no server needed to read them."""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path
from urllib.parse import quote

from mstar.predict.config import PredictConfig
from mstar.predict.models import RunModels
from mstar.utils.atomic import write_text_atomic

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;
vertical-align:middle}th{background:#f4f4f4}img.thumb{height:90px}.tiles img{width:160px;margin:3px}
.err{color:#a00}.muted{color:#777;font-size:90%}blockquote{margin:.3em 0 .8em 1em;padding-left:.8em;
border-left:3px solid #9bd}"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _provenance(run: RunModels, cfg: PredictConfig) -> str:
    from mstar import __version__

    ident = run.identity
    items = [("run", str(run.run)), ("models", f"{len(run.units)} ({', '.join(run.units)})"),
             ("encoder", f"{ident.get('encoder', '?')} (weights {str(ident.get('encoder_sha', '?'))[:32]})"),
             ("tiles", f"{ident.get('tile_px', '?')} px at {ident.get('target_mpp', '?')} µm/px"),
             ("knowledge", cfg.knowledge or "none"), ("stage-1 model", cfg.stage1 or "none"),
             ("mstar", __version__), ("written", _dt.datetime.now().isoformat(timespec="seconds"))]
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items) + \
        "</table>"


def _prediction_table(record: dict, run: RunModels) -> str:
    if run.kind == "classification":
        rows = "".join(f"<tr><td>{escape(c)}</td><td>{record[f'prob_{c}']:.3f}</td>"
                       f"<td>± {record[f'sd_{c}']:.3f}</td></tr>" for c in run.classes)
        return ("<table><tr><th>class</th><th>probability (mean over models)</th><th>sd over models</th>"
                f"</tr>{rows}</table>")
    return (f"<table><tr><th>risk (mean over models)</th><td>{record['risk']:.3f} ± {record['risk_sd']:.3f}"
            f"</td></tr><tr><th>risk group</th><td>{escape(record['risk_group'])} "
            f"({record['high_risk_votes']} of {record['n_models']} models above their training median)"
            "</td></tr></table>")


def slide_page(record: dict, run: RunModels, cfg: PredictConfig) -> str:
    """The page of one slide (paths relative to ``slides/``)."""
    files = record["files"]
    parts = [f"<p><a href='../index.html'>← all slides</a></p><h1>{escape(record['slide'])}</h1>",
             f"<h2>Prediction: {escape(record['label_text'])}</h2>", _prediction_table(record, run),
             f"<p class='muted'>{record['n_tiles']} tiles; evidence = {escape(record['score_kind'])} "
             f"(mean over {record['n_models']} model(s)); tile scores: "
             f"<a href='../{quote(files['csv'])}'>CSV</a>, "
             f"QuPath: <a href='../{quote(files['geojson'])}'>GeoJSON</a></p>"]
    if "heatmap" in files:
        parts.append(f"<h2>Heatmap</h2><img src='../{quote(files['heatmap'])}' style='max-width:100%'>")
        tiles = "".join(f"<figure style='display:inline-block;margin:0'><img src='../{quote(p)}'>"
                        f"<figcaption class='muted'>#{i}</figcaption></figure>"
                        for i, p in enumerate(files.get("top_tiles", []), start=1))
        parts.append(f"<h2>Top evidence tiles</h2><div class='tiles'>{tiles}</div>")
    for note in record.get("notes", []):
        parts.append(f"<p class='err'>{escape(note)}</p>")
    cited = record.get("knowledge")
    if cited:
        items = "".join(
            f"<li><b>{escape(c['concept'])}</b> (similarity {c['score']:.3f})<blockquote>"
            f"{escape(c['statement'])}<br><span class='muted'>source: {escape(c['source'] or 'none given')}"
            "</span></blockquote></li>" for c in cited)
        parts.append(f"<h2>Supporting knowledge</h2><ol>{items}</ol>"
                     "<p class='muted'>Statements of the knowledge file ranked by the stage-1 model against "
                     "this slide's evidence tiles; a citation, not a diagnosis.</p>")
    parts.append("<h2>Provenance</h2>" + _provenance(run, cfg))
    return _page(record["slide"], "\n".join(parts))


def index_page(records: list[dict], errors: list[dict], run: RunModels, cfg: PredictConfig) -> str:
    """One row per slide: thumbnail, prediction, confidence, link."""
    head = "<tr><th></th><th>slide</th><th>prediction</th><th>tiles</th></tr>"
    rows = []
    for r in sorted(records, key=lambda r: r["slide"]):
        heat = r["files"].get("heatmap")
        thumb = f"<img class='thumb' src='{quote(heat)}'>" if heat else ""
        link = f"slides/{quote(r['slide'])}.html"
        rows.append(f"<tr><td><a href='{link}'>{thumb}</a></td><td><a href='{link}'>{escape(r['slide'])}</a>"
                    f"</td><td>{escape(r['label_text'])}</td><td>{r['n_tiles']}</td></tr>")
    failed = "".join(f"<li class='err'>{escape(e['slide'])}: {escape(str(e['error']))}</li>" for e in errors)
    body = (f"<h1>Predictions: {escape(run.run.name)}</h1><p>{len(records)} slide(s)"
            f"{f', {len(errors)} failed' if errors else ''}; "
            "<a href='predictions.csv'>predictions.csv</a></p>"
            f"<table>{head}{''.join(rows)}</table>" + (f"<h2>Failed</h2><ul>{failed}</ul>" if failed else "")
            + "<h2>Provenance</h2>" + _provenance(run, cfg))
    return _page(f"Predictions: {run.run.name}", body)


def write_pages(out: Path, records: list[dict], errors: list[dict], run: RunModels,
                cfg: PredictConfig) -> None:
    """Write ``index.html`` and ``slides/<slide>.html`` (atomically)."""
    for r in records:
        write_text_atomic(out / "slides" / f"{r['slide']}.html", slide_page(r, run, cfg))
    write_text_atomic(out / "index.html", index_page(records, errors, run, cfg))
