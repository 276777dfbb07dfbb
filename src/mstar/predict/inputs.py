"""What `mstar predict` reads: a features folder made by the run's encoder, or slides it tiles and embeds
with the run's encoder and tiling first."""

from __future__ import annotations

import logging
from pathlib import Path

from mstar.data.feature_dirs import check_same_encoder, feature_file, feature_slides, resolve_feature_dir
from mstar.errors import MstarError
from mstar.predict.models import RunModels

log = logging.getLogger(__name__)


def features_folder_of(inputs: list[str]) -> Path | None:
    """The features folder when ``inputs`` is one (a single folder holding ``.h5``/``.pt`` feature files),
    else None (slides)."""
    if len(inputs) != 1 or not Path(inputs[0]).is_dir():
        return None
    try:
        return resolve_feature_dir(inputs[0])
    except MstarError:
        return None


def check_features(folder: Path, run: RunModels) -> dict[str, Path]:
    """``{slide_id: feature file}`` of a features folder, after checking that the run's encoder made them.

    Raises:
        MstarError: another encoder's features (by weights hash, or width for files that do not record it).
    """
    from mstar.features.io import feature_rows, load_features

    slides = feature_slides(folder)
    files = {s: feature_file(folder, s) for s in slides}
    if not files:
        raise MstarError(f"{folder}: no feature files (.h5/.pt)")
    want_enc = run.identity.get("encoder", "?")
    attrs, first, reason = None, None, ""
    for path in files.values():  # the first readable file speaks for the folder; bad ones fail per slide
        try:
            _, _, attrs = load_features(path)
            first = path
            break
        except MstarError as exc:
            reason = reason or str(exc)
    if attrs is None:
        raise MstarError(f"{folder}: no readable feature file; the first: {reason}")
    sha = attrs.get("encoder_sha")
    check_same_encoder(folder, attrs, run.identity,
                       "extract them with the run's encoder, or pass the slides themselves")
    _, dim, _ = feature_rows(first)
    if run.context:  # multi-resolution run: the files must carry their low-power context
        import h5py

        from mstar.features.context import CONTEXT

        has_context = False
        if first.suffix in (".h5", ".hdf5"):
            with h5py.File(first, "r") as f:
                has_context = CONTEXT in f
        if not has_context:
            raise MstarError(f"{folder}: the run was trained on multi-resolution bags; pass the "
                             "<encoder>-ctx folder (`mstar extract --context-mpp`) or the slides")
        dim *= 2
    if dim != run.in_dim:
        raise MstarError(f"{folder}: {dim}-d features, but the run was trained on {run.in_dim}-d "
                         f"({want_enc}); extract with the run's encoder")
    if not sha:
        log.warning("%s: the features do not record their encoder; only their width (%d) was checked",
                    folder, dim)
    return files


def tissue_params(ident: dict, run: Path):
    """The tissue segmentation the run's training slides had (``features_identity`` keys); the defaults,
    with a warning, for what features from before mstar recorded every setting lack."""
    from mstar.slide.tissue import TissueParams

    missing = [k for k in ("min_tissue_area_um2", "min_hole_area_um2", "remove_pen") if k not in ident]
    if missing:
        log.warning("%s: the training features do not record %s; new slides are segmented with the defaults "
                    "for them (retrain the run on slides tiled and extracted with this mstar to record them)",
                    run, ", ".join(missing))
    return TissueParams.from_attrs(ident)


def run_encoder(run: RunModels, checkpoint: str | None):
    """The patch encoder the run's training features came from, built from ``checkpoint`` (checked by its
    weights hash) or, for a run on a randomly initialised encoder, without weights.

    Raises:
        MstarError: the run does not record its encoder, ``--checkpoint`` is missing, is not the weights
            the run's features came from, or is given for a run whose encoder had no weights.
    """
    from mstar.features.checkpoints import read_sidecar
    from mstar.features.encoders import REGISTRY, create_encoder

    ident = run.identity
    if "encoder" not in ident or "target_mpp" not in ident:
        raise MstarError(f"{run.run}: the run's features do not record their encoder and tiling; extract the "
                         "slides yourself (`mstar tile`, `mstar extract`) and pass the features folder")
    name, want = str(ident["encoder"]), str(ident.get("encoder_sha", ""))
    if want.startswith("random-init:"):
        if checkpoint is not None:
            raise MstarError(f"--checkpoint {checkpoint}: the run was trained on {name} features with random "
                             "initial weights (no checkpoint); predict without --checkpoint")
        return create_encoder(name, random_init=True)
    if checkpoint is None:
        raise MstarError(f"the run was trained on {name} features (weights "
                         f"{ident.get('checkpoint') or '?'}): pass --checkpoint with those weights to "
                         "embed new slides")
    stage2 = name not in REGISTRY and not name.startswith("timm:")
    if stage2 and read_sidecar(checkpoint) is None:
        weights = ident.get("checkpoint") or "?"
        sidecar = Path(ident.get("checkpoint") or name).with_suffix(".json").name
        raise MstarError(f"--checkpoint {checkpoint}: the run was trained on features of the stage-2 encoder "
                         f"{name} (weights {weights}); pass that file, with its sidecar {sidecar} beside it")
    encoder = create_encoder(name, checkpoint)
    if want and encoder.encoder_sha != want:
        raise MstarError(f"--checkpoint {checkpoint}: these weights ({encoder.encoder_sha[:24]}...) are not "
                         f"the ones the run's features came from ({want[:24]}...)")
    return encoder


def check_slides_open(paths: list[Path], slide_mpp: float | None = None) -> None:
    """Open every slide file of ``paths`` (metadata only) so that an unreadable slide, or one without
    microns-per-pixel (neither in its metadata nor ``slide_mpp``), stops `mstar predict` before its output
    folder exists (the re-run with the fix then starts cleanly instead of meeting "other settings")."""
    from mstar.slide.reader import open_slide

    reader_log = logging.getLogger("mstar.slide.reader")
    quiet, reader_log.disabled = reader_log.disabled, True  # its µm/px warnings come once, when tiling
    try:
        for path in paths:
            with open_slide(path, slide_mpp, only_if_missing=True):
                pass
    finally:
        reader_log.disabled = quiet


def embed_slides(inputs: list[str], work: Path, run: RunModels, encoder, slide_mpp: float | None,
                 batch_size: int, skip_errors: bool) -> tuple[dict[str, Path], list]:
    """Tile ``inputs`` as the run's training slides were tiled and embed them with its ``encoder``
    (:func:`run_encoder`) into ``work/`` (resumable: slides done before are reused); ``({slide_id: feature
    file}, error rows)``."""
    from mstar.features.extract import extract_features
    from mstar.slide.batch import tile_many
    from mstar.slide.tiling import TileParams

    ident = run.identity
    params = TileParams(target_mpp=float(ident["target_mpp"]), tile_px=int(ident.get("tile_px", 256)),
                        overlap_px=int(ident.get("overlap_px", 0)),
                        min_tissue=float(ident.get("min_tissue", 0.25)), slide_mpp=slide_mpp,
                        tissue=tissue_params(ident, run.run))
    # as the training features were made (fp16 was a GPU's choice: auto here)
    precision = ident.get("precision") if ident.get("precision") != "fp16" else None
    tiled = tile_many(inputs, work, params, skip_errors=skip_errors)
    if not (tiled["status"] == "ok").any():  # every slide failed (--skip-errors): their reasons as rows
        return {}, [{"slide": r["slide"], "status": "error", "error": r["error"] or r["status"]}
                    for r in tiled.to_dict("records")]
    summary = extract_features(work, encoder, batch_size=batch_size, skip_errors=skip_errors,
                               precision=precision,
                               show_progress=True)
    errors = [{"slide": r["slide"], "status": "error", "error": r["error"] or r["status"]}
              for t in (tiled, summary) for r in t.to_dict("records") if r.get("status") not in ("ok", None)]
    folder = work / "features" / encoder.folder_name
    done = {r["slide"] for r in summary.to_dict("records") if r.get("status") == "ok"}
    if run.context:  # the low-power pass the run's context came from, then the context files
        from mstar.features.context import low_power_pass, write_context_folder

        mpp = float(ident.get("context_mpp", 2.0))
        low = low_power_pass(work, encoder, mpp, batch_size=batch_size, skip_errors=skip_errors,
                             precision=precision)
        folder = work / "features" / f"{encoder.folder_name}-ctx{mpp:g}"
        write_context_folder(work / "features" / encoder.folder_name, low, folder)
        for slide in sorted(done):  # a slide whose low-power pass failed has no context file: an error row
            if feature_file(folder, slide) is None:
                errors.append({"slide": slide, "status": "error",
                               "error": f"no low-power context at {mpp:g} µm/px (see {low}/summary.csv)"})
    files = {s: feature_file(folder, s) for s in sorted(done)}
    return {s: f for s, f in files.items() if f is not None}, errors
