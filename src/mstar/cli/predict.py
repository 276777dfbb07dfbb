"""`mstar predict` and `mstar heatmap`: a trained run on new slides, with evidence and pages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mstar.cli import app
from mstar.cli.options import Config, Overwrite, Set, Stage1, build_config, say_finished


@app.command("predict")
def predict(
    inputs: Annotated[list[Path], typer.Argument(
        help="Slide files, folders of slides, or one features folder made by the run's encoder.")],
    run: Annotated[Optional[Path], typer.Option("--run", help="Trained classify/survival run.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (predictions.csv, index.html, "
                                                "evidence/, slides/).")] = None,
    unit: Annotated[Optional[list[str]], typer.Option(
        "--unit", help="Only this unit's model (repeatable; default: every unit, as an ensemble).")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Evidence tiles per slide.")] = None,
    slide_mpp: Annotated[Optional[float], typer.Option(
        "--slide-mpp", help="Level-0 µm/px for slides whose metadata has none.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", help="The encoder's weights, to embed slides (the run records which).")] = None,
    knowledge: Annotated[Optional[Path], typer.Option(
        "--knowledge", help="Knowledge YAML (classes, concepts with sources); needs --stage1.")] = None,
    stage1: Stage1 = None,
    omics: Annotated[Optional[Path], typer.Option(
        "--omics", help="Multimodal runs: omics by case (a table, or a folder of <case>.csv).")] = None,
    cases: Annotated[Optional[Path], typer.Option(
        "--cases", help="Manifest mapping slides to cases (default: slide id or TCGA patient).")] = None,
    skip_errors: Annotated[bool, typer.Option(
        "--skip-errors", help="Record a slide that fails and go on.")] = False,
    overwrite: Overwrite = False, config: Config = None, set_: Set = None,
) -> None:
    """Predict new slides with a trained run: predictions.csv, per-slide evidence (tile scores, heatmap, top
    tiles, QuPath GeoJSON), supporting knowledge, and index.html."""
    from mstar.cli.options import report_failures, rprint
    from mstar.predict.config import PredictConfig
    from mstar.predict.run import predict as run_predict

    cfg = build_config(PredictConfig, config, set_, inputs=[str(p) for p in inputs], run=run, out=out,
                       units=unit or None, top_k=top_k, slide_mpp=slide_mpp, checkpoint=checkpoint,
                       knowledge=knowledge, stage1=stage1, omics=omics, cases=cases, skip_errors=skip_errors)
    result = run_predict(cfg, overwrite=overwrite)
    table = result["predictions"]
    if "recited" in result:
        rprint(f"{result['out']}: only the knowledge inputs changed; citations ranked again for "
               f"{result['recited']} slide(s), predictions and evidence unchanged")
    else:
        say_finished(result, key="out")
    ok = table[table["status"] == "ok"]
    page = Path(result["out"]) / "index.html"
    rprint(f"{len(ok)} slide(s) predicted, {len(table) - len(ok)} failed; open {page}")
    report_failures(table, "slide", str(Path(result["out"]) / "predictions.csv"))


@app.command("heatmap")
def heatmap(
    run: Annotated[Path, typer.Option("--run", help="Run directory (runs/<task>/<name>).")],
    slide: Annotated[str, typer.Option("--slide", help="Slide id (file name without suffix).")],
    unit: Annotated[Optional[str], typer.Option(
        "--unit", help="Only this unit's model (default: every unit, as in `mstar predict`).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Number of top tiles.")] = 8,
    features: Annotated[Optional[Path], typer.Option(
        "--features", help="Features folder (default: the run's).")] = None,
) -> None:
    """Evidence of a trained run on one slide (the single-slide case of `mstar predict`): tile scores,
    heatmap over the thumbnail, top tiles and QuPath GeoJSON in <run>/heatmaps/evidence/."""
    from mstar.cli.options import rprint
    from mstar.predict.heatmap import slide_heatmap
    from mstar.tasks.run_files import find_run

    record = slide_heatmap(run, slide, unit, top_k, features)
    files = record["files"]  # relative to <run>/heatmaps
    base = find_run(run) / "heatmaps"
    heat = base / files["heatmap"] if files.get("heatmap") else "(no slide file)"
    rprint(f"{record['label_text']}; {record['score_kind']}\n"
           f"heatmap: {heat}\nscores: {base / files['csv']}\nQuPath: {base / files['geojson']}\n"
           f"viewer: mstar view {base}")


@app.command("view")
def view(
    folder: Annotated[Path, typer.Argument(help="A `mstar predict` output folder.")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    slide: Annotated[Optional[str], typer.Option("--slide", help="Open this slide first.")] = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open a browser tab.")] = False,
) -> None:
    """Deep-zoom viewer of a prediction folder on 127.0.0.1: the slide at full resolution, the evidence
    heatmap as an overlay (opacity slider), the top tiles as markers that fly to their region."""
    import webbrowser

    from mstar.cli.options import rprint
    from mstar.predict.viewer import make_server

    server = make_server(folder, port, slide)
    host, bound = server.server_address[:2]
    url = f"http://{host}:{bound}/" + (f"slide/{slide}" if slide else "")
    rprint(f"serving {folder} at {url} (loopback only; Ctrl-C stops)")
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
