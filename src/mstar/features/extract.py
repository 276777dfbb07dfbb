"""``mstar extract``: tiles -> ``features/<encoder>/<slide>.h5`` (+ ``pt_files/<encoder>/<slide>.pt``).

The fast path: DataLoader workers read whole batches of one slide with their own handles; the batch is
resized and normalised as one tensor op (in the workers on CPU; on the GPU after a pinned, non-blocking
copy of the uint8 tiles when on CUDA); the encoder runs under ``inference_mode`` in the chosen precision
(:mod:`mstar.features.forward`: autocast on a GPU, bf16 weights on the CPU, optionally compiled); features
stay on the device until the slide is complete, then a background thread writes the files atomically.
Completed slides (the h5 exists) are skipped, so a killed run resumes where it stopped.
Under ``torchrun`` each rank takes its own slides and rank 0 writes the one ``summary.csv``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from mstar.errors import MstarError
from mstar.features.dataset import SlideTiles, TileBatches, make_loader
from mstar.features.distributed import (
    DistInfo,
    barrier,
    finish,
    gather_rows,
    init_distributed,
    resolve_device,
    shard,
)
from mstar.features.encoders import Encoder, create_encoder
from mstar.features.extract_outputs import (
    STATUS_EMPTY,
    STATUS_ERROR,
    STATUS_OK,
    SUMMARY_COLUMNS,
    check_existing,
    feature_attrs,
    summary_row,
    unwritten_as_errors,
    write_summary,
)
from mstar.features.forward import check_compile_mode, encoder_forward
from mstar.features.io import features_path, load_features, pt_path
from mstar.features.precision import resolve_precision
from mstar.features.preprocess import preprocess_batch
from mstar.features.writer import FeatureWriter, WriteJob, write_pt_file
from mstar.slide.reader import SLIDE_SUFFIXES
from mstar.slide.tiles_file import read_tiles
from mstar.utils.atomic import finished_files, remove_stale_parts
from mstar.utils.claims import Claim, try_claim, wait_claim
from mstar.utils.progress import progress_bar

log = logging.getLogger(__name__)

MPP_WARN_TOLERANCE = 0.10


def tiles_files(root: Path) -> list[Path]:
    """``root/tiles/*.h5`` (temporaries of killed runs excluded), sorted."""
    folder = root / "tiles"
    files = finished_files(folder, (".h5",))
    if not files:
        raise MstarError(f"{folder}: no tiles files; run `mstar tile SLIDES --out {root}` first")
    return files


def _find_slide(attrs: dict, tiles_file: Path, slides_dir: Path | None) -> Path:
    sid = attrs["slide_id"]
    candidates = []
    if slides_dir is not None:
        candidates += [slides_dir / f"{sid}{suffix}" for suffix in sorted(SLIDE_SUFFIXES)]
        candidates += sorted(p for p in slides_dir.glob(f"{sid}.*") if p.suffix.lower() in SLIDE_SUFFIXES)
    if attrs.get("slide_path"):
        candidates.append(Path(attrs["slide_path"]))
    for c in candidates:
        if c.is_file():
            return c
    where = attrs.get("slide_path") or f"{sid}.<ext>"
    raise MstarError(f"{tiles_file}: slide {where} not found; "
                     f"pass --slides FOLDER holding {sid}.svs/.tif/...")


def load_slide_tiles(tiles_file: Path, slides_dir: Path | None = None) -> SlideTiles:
    """A tiles file as a :class:`SlideTiles` (slide located, mpp override kept)."""
    coords, attrs = read_tiles(tiles_file)
    path = _find_slide(attrs, tiles_file, slides_dir)
    override = attrs.get("mpp_source") == "override" and "mpp_level0" in attrs
    mpp = float(attrs["mpp_level0"]) if override else None
    return SlideTiles(str(attrs["slide_id"]), str(path), coords, int(attrs["read_level"]),
                      int(attrs["read_px"]), mpp, attrs)


def _batches(loader, device: torch.device) -> Iterator[dict]:
    for batch in loader:
        if not batch["error"] and device.type != "cpu":
            batch["images"] = batch["images"].to(device, non_blocking=True)
        yield batch


def default_workers(device: torch.device) -> int:
    """DataLoader workers when not given: up to 8 on GPU; on CPU 0 with <= 4 cores, else 2.

    On a small CPU the forward already uses every core: a reading worker preempts one of its OpenMP threads
    and the forward's barriers wait for it (measured on 2 cores: test_vit's forward 1.4 -> 4.6 ms/tile with
    one worker), while reading costs ~3 % of a ViT forward. Light encoders do better with ``threads=1,
    workers=1`` (BENCHMARKS.md).
    """
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cores)
    return 0 if cores <= 4 else 2


def extract_features(root: str | os.PathLike, encoder: str | Encoder, *,
                     checkpoint: str | os.PathLike | None = None, batch_size: int = 64,
                     workers: int | None = None, precision: str | None = None, device: str | None = None,
                     save_pt: bool = False, overwrite: bool = False, skip_errors: bool = False,
                     slides_dir: str | os.PathLike | None = None, threads: int | None = None,
                     preprocess_on: str = "auto", show_progress: bool = True,
                     compile_mode: str = "auto") -> pd.DataFrame:
    """Extract patch features for every ``root/tiles/*.h5`` into ``root/features/<encoder>/``.

    Args:
        root: the work folder holding ``tiles/``.
        encoder: an encoder name (see :func:`~mstar.features.encoders.create_encoder`) or a built encoder.
        checkpoint: local weights for ``encoder`` (when given by name).
        batch_size: tiles per forward pass.
        workers: DataLoader worker processes reading tiles (0: read in this process; None: see
            :func:`default_workers`).
        precision: ``auto`` (default; see :func:`resolve_precision`), ``fp32``, ``bf16`` or ``fp16``.
        device: ``cpu``, ``cuda`` or None (CUDA when available). Under torchrun: ``cuda:<LOCAL_RANK>``.
        save_pt: also write ``root/pt_files/<encoder>/<slide>.pt`` (upstream mSTAR / CLAM layout).
        overwrite: redo slides whose features already exist.
        skip_errors: record unreadable slides in the summary and go on (else the first one stops the run).
        slides_dir: folder to find slides in when the tiles files' ``slide_path`` moved (or CLAM files).
        threads: torch intra-op threads of this process during the run (CPU forward); None: unchanged.
        preprocess_on: ``worker``, ``device`` or ``auto`` (workers on CPU, the device on GPU).
        show_progress: draw a progress bar (rank 0 only).
        compile_mode: ``auto`` (default), ``on`` or ``off``: ``torch.compile`` the encoder (see
            :func:`mstar.features.forward.should_compile`; ``auto`` only for long bf16 runs on the CPU).

    Returns:
        The summary (merged over ranks on rank 0; this rank's slides elsewhere), also written to
        ``root/features/<encoder>/summary.csv``.
    """
    root = Path(root)
    slides_dir = Path(slides_dir) if slides_dir is not None else None
    check_compile_mode(compile_mode)
    if batch_size < 1 or (workers is not None and workers < 0) or (threads is not None and threads < 1):
        raise MstarError(f"--batch-size {batch_size}, --threads {threads}, --workers {workers}: batch size "
                         "and threads must be >= 1, workers >= 0")
    files = tiles_files(root)
    info = init_distributed()
    threads_before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        enc = encoder if isinstance(encoder, Encoder) else create_encoder(encoder, checkpoint)
        dev = resolve_device(device, info)
        prec = resolve_precision(precision, enc, dev)
        workers = default_workers(dev) if workers is None else workers
        out_dir = root / "features" / enc.folder_name
        pt_dir = root / "pt_files" / enc.folder_name
        if info.rank == 0:
            remove_stale_parts(out_dir)
            remove_stale_parts(pt_dir)
        barrier(info)  # no rank starts writing before stale temporaries are gone
        mine = files
        if info.active:
            weights = []
            for p in files:
                try:
                    with h5py.File(p, "r") as f:
                        weights.append(int(f["coords"].shape[0]))
                except Exception:  # noqa: BLE001 - the owner reports it
                    weights.append(0)
            mine = [files[i] for i in shard(weights, info.rank, info.world_size)]
        show = show_progress and info.rank == 0
        rows, error = _run_rank(mine, root, enc, dev, prec, batch_size, workers, save_pt, overwrite,
                                skip_errors, slides_dir, preprocess_on, show, info, compile_mode)
        unwritten_as_errors(rows, root, enc.folder_name, error)
        all_rows = gather_rows(rows, info)
        if all_rows is not None:
            write_summary(out_dir, all_rows, files)
        barrier(info)
    finally:
        torch.set_num_threads(threads_before)
        finish(info)
    if error is not None:
        raise error
    return pd.DataFrame(all_rows if all_rows is not None else rows,
                        columns=SUMMARY_COLUMNS).sort_values("slide").reset_index(drop=True)


def _run_rank(files: list[Path], root: Path, enc: Encoder, dev: torch.device, prec: str, batch_size: int,
              workers: int, save_pt: bool, overwrite: bool, skip_errors: bool, slides_dir: Path | None,
              preprocess_on: str, show_progress: bool, info: DistInfo,
              compile_mode: str = "off") -> tuple[list[dict], BaseException | None]:
    """This rank's slides: returns its summary rows and the error that stopped it (raised after the merge)."""
    rows: list[dict] = []
    failed: list[dict] = []
    todo: list[tuple[Path, SlideTiles]] = []
    deferred: list[tuple[Path, SlideTiles]] = []  # claimed by another process working on this folder
    claims: list[Claim] = []

    def settle(tf: Path, t: SlideTiles, writer: FeatureWriter, redo: bool) -> bool:
        """Record a finished (or empty) slide and return True, or return False: it needs extracting."""
        h5 = features_path(root, enc.folder_name, t.slide_id)
        pt = pt_path(root, enc.folder_name, t.slide_id) if save_pt else None
        n = check_existing(h5, enc, t, prec) if h5.exists() and not redo else None
        if n is not None:
            if pt is not None and not pt.exists():  # --save-pt added later: mirror, no re-extraction
                write_pt_file(pt, load_features(h5)[0])
            rows.append(summary_row(t.slide_id, tf, t.slide_path, info.rank, n, enc.dim,
                                    status=STATUS_OK if n else STATUS_EMPTY))
            return True
        if len(t.coords) == 0:
            writer.submit(WriteJob(h5, np.zeros((0, enc.dim), np.float32), t.coords,
                                   feature_attrs(t, enc, prec, tf), pt))
            rows.append(summary_row(t.slide_id, tf, t.slide_path, info.rank, 0, enc.dim, 0.0, STATUS_EMPTY))
            return True
        return False

    def extract(batch: list[tuple[Path, SlideTiles]], writer: FeatureWriter) -> None:
        if batch and (skip_errors or not failed):
            _warn_mpp([t for _, t in batch], enc)
            _extract_slides(batch, root, enc, dev, prec, batch_size, workers, save_pt, skip_errors,
                            preprocess_on, show_progress, info, writer, rows, failed, compile_mode)

    try:
        with FeatureWriter() as writer:
            for tf in files:
                try:
                    t = load_slide_tiles(tf, slides_dir)
                except MstarError as exc:
                    row = summary_row(tf.stem.removesuffix("_patches"), tf, "", info.rank,
                                      status=STATUS_ERROR, error=str(exc))
                    rows.append(row)
                    failed.append(row)
                    if not skip_errors:
                        break
                    continue
                if not overwrite and settle(tf, t, writer, redo=False):
                    continue
                claim = try_claim(features_path(root, enc.folder_name, t.slide_id))
                if claim is None:  # another process is extracting it: its result is waited for below
                    deferred.append((tf, t))
                    continue
                claims.append(claim)
                if not settle(tf, t, writer, redo=overwrite):  # it may have finished it just before
                    todo.append((tf, t))
            extract(todo, writer)
        for claim in claims:  # our slides are on disk now
            claim.release()
        if deferred and (skip_errors or not failed):
            with FeatureWriter() as writer:
                rest = []
                for tf, t in deferred:  # wait until the other process finished (or died), then use its file
                    claims.append(wait_claim(features_path(root, enc.folder_name, t.slide_id)))
                    if not settle(tf, t, writer, redo=False):
                        rest.append((tf, t))
                extract(rest, writer)
    except BaseException as exc:  # noqa: BLE001 - re-raised after every rank has merged its rows
        return rows, exc
    finally:
        for claim in claims:
            claim.release()
    if failed and not skip_errors:
        row = failed[0]
        where = row["slide_path"] or row["tiles_file"]
        return rows, MstarError(f"{where}: {row['error']} (use --skip-errors to keep going past bad slides)")
    return rows, None


def _warn_mpp(slides: list[SlideTiles], enc: Encoder) -> None:
    want = enc.preprocess.target_mpp
    off = [t.slide_id for t in slides
           if "tile_mpp" in t.attrs and abs(float(t.attrs["tile_mpp"]) / want - 1) > MPP_WARN_TOLERANCE]
    if off:
        log.warning("%d slide(s) were tiled at a resolution other than %s's %.2f µm/px (e.g. %s); re-tile "
                    "with --target-mpp %.2f to match the encoder", len(off), enc.name, want, off[0], want)


def _extract_slides(todo: list[tuple[Path, SlideTiles]], root: Path, enc: Encoder, dev: torch.device,
                    prec: str, batch_size: int, workers: int, save_pt: bool, skip_errors: bool,
                    preprocess_on: str, show_progress: bool, info: DistInfo, writer: FeatureWriter,
                    rows: list[dict], failed: list[dict], compile_mode: str = "off") -> None:
    """The loop: read (workers) -> preprocess -> forward -> hand complete slides to the writer."""
    if preprocess_on not in ("auto", "worker", "device"):
        raise MstarError(f"preprocess_on={preprocess_on!r}: expected auto, worker or device")
    on_worker = preprocess_on == "worker" or (preprocess_on == "auto" and dev.type == "cpu")
    slides = [t for _, t in todo]
    dataset = TileBatches(slides, batch_size, enc.preprocess if on_worker else None)
    loader = make_loader(dataset, workers, pin_memory=dev.type == "cuda")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)  # pinning and kernels on this rank's GPU
    total = sum(len(t.coords) for t in slides)
    forward = encoder_forward(enc, dev, prec, compile_mode, total, batch_size)
    pending: dict[int, list[torch.Tensor]] = {}
    started: dict[int, float] = {}
    bad: set[int] = set()
    done = 0
    with progress_bar(transient=False) as bar:
        task = bar.add_task(f"extract {enc.name}", total=total, rate="", visible=show_progress)
        start = time.perf_counter()
        batches = _batches(loader, dev)
        with torch.inference_mode(), contextlib.closing(batches):  # closing: workers stop on an early break
            for batch in batches:
                s, stop = batch["slide"], batch["stop"]
                t = slides[s]
                started.setdefault(s, time.perf_counter())
                if batch["error"] or s in bad:
                    if s not in bad:
                        bad.add(s)
                        pending.pop(s, None)
                        row = summary_row(t.slide_id, todo[s][0], t.slide_path, info.rank, len(t.coords),
                                          status=STATUS_ERROR, error=batch["error"])
                        rows.append(row)
                        failed.append(row)
                        if not skip_errors:
                            break
                    continue
                x = batch["images"]
                if not on_worker:
                    x = preprocess_batch(x, enc.preprocess)  # (B, 3, S, S) on the device
                y = forward(x)  # (B, D) float32
                if y.ndim != 2 or y.shape[1] != enc.dim:
                    raise MstarError(f"encoder {enc.name} returned shape {tuple(y.shape)}, expected "
                                     f"(B, {enc.dim}); is it built with num_classes=0?")
                pending.setdefault(s, []).append(y)
                done += stop - batch["start"]
                if stop == len(t.coords):
                    feats = torch.cat(pending.pop(s)).cpu().numpy()  # (N, D) float32
                    seconds = time.perf_counter() - started[s]
                    pt = pt_path(root, enc.folder_name, t.slide_id) if save_pt else None
                    attrs = {**feature_attrs(t, enc, prec, todo[s][0]), "encoder_forward": forward.mode}
                    writer.submit(WriteJob(features_path(root, enc.folder_name, t.slide_id), feats, t.coords,
                                           attrs, pt))
                    rows.append(summary_row(t.slide_id, todo[s][0], t.slide_path, info.rank, len(feats),
                                            enc.dim, seconds))
                elapsed = time.perf_counter() - start
                bar.update(task, completed=done, rate=f"{done / max(elapsed, 1e-9):.1f} tiles/s")
    dataset.close()
