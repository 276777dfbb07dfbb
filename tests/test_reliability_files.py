"""Data integrity and failure handling (issue 18), files and runs: each case a hostile but realistic user
hit, reproduced. The process-level cases (signals, umask, usage, a full disk on writing) are in
``test_reliability.py``.

Each test fails on the code before the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.test_reliability import ENV, _mstar


def test_nan_features_name_the_file_when_loaded(tmp_path):
    import numpy as np

    from mstar.data.bags import BagStore
    from mstar.errors import MstarError
    from tests.tasks._bags import write_bag

    feats = np.ones((6, 4), np.float32)
    write_bag(tmp_path / "ok.h5", feats)
    feats[2, 1] = np.nan
    write_bag(tmp_path / "bad.h5", feats)
    with pytest.raises(MstarError, match=r"bad\.h5: 1 of 6 patch features are NaN or infinite; re-extract"):
        BagStore(tmp_path, ["ok", "bad"], [["ok"], ["bad"]], cache=True)


def test_skip_errors_is_not_success_when_every_slide_failed_and_paths_are_printed_once(tmp_path):
    slides = tmp_path / "slides"
    slides.mkdir()
    for name in ("a", "b"):
        (slides / f"{name}.svs").write_text("not a slide")
    out = _mstar("tile", slides, "--out", tmp_path / "w", "--skip-errors")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    first = slides / "a.svs"
    assert line.startswith(f"error: every slide failed (2), the first: {first}: cannot read this slide")
    assert line.count(str(slides / "a.svs")) == 1
    assert line.endswith(f"see {tmp_path / 'w'}/tiles/summary.csv")


def test_tiles_know_their_slide_another_file_with_that_id_is_refused_and_a_changed_one_retiled(
        tmp_path, tiny_cohort):
    import shutil

    from mstar.errors import MstarError
    from mstar.slide.batch import tile_many
    from mstar.slide.tiles_file import read_tiles
    from mstar.slide.tiling import TileParams

    src = sorted((tiny_cohort / "slides").iterdir())
    (tmp_path / "batch1").mkdir()
    (tmp_path / "batch2").mkdir()
    one = shutil.copy(src[0], tmp_path / "batch1" / "slide.svs")
    two = shutil.copy(src[1], tmp_path / "batch2" / "slide.svs")  # another slide, the same id
    work = tmp_path / "w"
    tile_many([one], work, show_progress=False)
    with pytest.raises(MstarError, match=r"batch2/slide\.svs: slide id 'slide' is already tiled in .* from "
                                         r"another file \(.*batch1/slide\.svs\); pass --overwrite"):
        tile_many([two], work, show_progress=False)
    summary = tile_many([two], work, show_progress=False, skip_errors=True)
    assert summary["status"].tolist() == ["error"]
    assert read_tiles(work / "tiles" / "slide.h5")[1]["slide_path"] == str(one.resolve())  # untouched
    changed = r"was tiled with other settings \(tile_px 256 -> 128\); pass --overwrite"
    with pytest.raises(MstarError, match=changed):
        tile_many([one], work, TileParams(tile_px=128), show_progress=False)
    shutil.copy(src[1], one)  # the same file changed in place: tiled again, no error
    tile_many([one], work, show_progress=False)
    attrs = read_tiles(work / "tiles" / "slide.h5")[1]
    assert (attrs["slide_size"], attrs["slide_mtime_ns"]) == (one.stat().st_size, one.stat().st_mtime_ns)
    tile_many([two], work, show_progress=False, overwrite=True)
    assert read_tiles(work / "tiles" / "slide.h5")[1]["slide_path"] == str(two.resolve())


def test_extract_redoes_features_of_a_slide_tiled_again_and_of_a_truncated_file(work):
    import h5py
    import numpy as np

    from mstar.features.extract import extract_features
    from tests.conftest import truncate_tiles

    enc = "timm:test_vit"
    extract_features(work, enc, batch_size=4, show_progress=False)
    tiles = sorted((work / "tiles").glob("*.h5"))
    feats = work / "features" / "timm-test_vit"
    first, second = feats / f"{tiles[0].stem}.h5", feats / f"{tiles[1].stem}.h5"
    truncate_tiles(tiles[0], tiles[0], 3)  # tiled again (here: fewer tiles) after extraction
    second.write_bytes(second.read_bytes()[:200])  # a truncated features file (not written by mstar)
    extract_features(work, enc, batch_size=4, show_progress=False, skip_errors=True)
    with h5py.File(first) as f, h5py.File(tiles[0]) as t:
        assert f["features"].shape[0] == 3 and np.array_equal(f["coords"][:], t["coords"][:])
    with h5py.File(second) as f:
        assert f["features"].shape[0] == 5  # extracted again, complete


def test_an_empty_val_column_in_a_folds_file_is_named_not_blamed_on_the_case_ids(tmp_path):
    import pandas as pd

    from mstar.data.cohort_tables import apply_folds, read_fold_dir
    from mstar.data.manifest import Manifest
    from mstar.errors import MstarError

    table = pd.DataFrame({"case": [f"P{i}" for i in range(6)], "slides": [[f"S{i}"] for i in range(6)]})
    manifest = Manifest(path=tmp_path / "m.csv", kind="survival", table=table, folds=[])
    (tmp_path / "folds").mkdir()
    pd.DataFrame({"train": ["P0", "P1", "P2"], "val": [None, None, None]}).to_csv(
        tmp_path / "folds" / "splits_0.csv", index=False)
    with pytest.raises(MstarError) as err:
        apply_folds(manifest, read_fold_dir(tmp_path / "folds"))
    assert str(err.value) == "--folds fold0: its 'val' column is empty; every fold needs evaluation cases"
    pd.DataFrame({"train": ["P0", "P1"], "val": ["X9", "X8"]}).to_csv(tmp_path / "folds" / "splits_0.csv",
                                                                      index=False)
    with pytest.raises(MstarError, match=r"none of its 2 'val' cases is in .*e\.g\. 'X9'.*such as 'P0'"):
        apply_folds(manifest, read_fold_dir(tmp_path / "folds"))


def test_from_upstream_reads_upstreams_own_saved_checkpoints(tmp_path):
    import torch

    from mstar.models import create_mil_model
    from mstar.models.upstream import from_upstream, mil_to_upstream

    torch.manual_seed(0)
    sd = mil_to_upstream(create_mil_model("abmil", task="classification", n_classes=3, in_dim=16, dim=8))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 7}, tmp_path / "best.pth")
    model = from_upstream(tmp_path / "best.pth", task="classification")
    torch.testing.assert_close(model.head.fc.weight, sd["classifier.0.weight"])


def test_train_and_pretrain_refuse_to_pass_off_a_finished_run_after_their_inputs_changed(tmp_path):
    import pandas as pd

    from mstar.errors import MstarError
    from mstar.pretrain.stage1_config import Stage1Config
    from mstar.pretrain.stage1_train import pretrain
    from mstar.tasks.config import TrainConfig
    from mstar.tasks.runner import train_task
    from tests.pretrain._cohort import TINY, stage1_cohort
    from tests.tasks._bags import classification_cohort

    manifest, features = classification_cohort(tmp_path / "c", n_cases=24)
    cfg = dict(task="classify", manifest=str(manifest), features=str(features), out=str(tmp_path / "runs"),
               name="same", epochs=1, bootstrap=0, model_args={"dim": 8, "attn_dim": 8})
    train_task(TrainConfig(**cfg), progress=False)
    table = pd.read_csv(manifest)
    table["label"] = table["label"].iloc[::-1].to_numpy()  # relabelled
    table.to_csv(manifest, index=False)
    with pytest.raises(MstarError, match="this run was made from other settings or inputs"):
        train_task(TrainConfig(**cfg), progress=False)
    with pytest.raises(MstarError, match=r"other settings or inputs \(.*epochs"):
        train_task(TrainConfig(**{**cfg, "epochs": 2}), progress=False)

    paths = stage1_cohort(tmp_path / "s")
    s1 = dict(manifest=str(paths["manifest"]), features=str(paths["features"]), reports=str(paths["reports"]),
              rna=str(paths["rna"]), out=str(tmp_path / "runs"), name="same", epochs=1, **TINY)
    pretrain(Stage1Config(**s1), progress=False)
    (paths["reports"]).write_text((paths["reports"]).read_text().replace("grade", "Grade"))
    with pytest.raises(MstarError, match="this run was made from other settings or inputs"):
        pretrain(Stage1Config(**s1), progress=False)


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_during_extraction_is_an_error_row_and_one_line_not_an_ok_row_or_a_crash(work):
    import resource
    import signal

    import pandas as pd

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))  # a features file is ~16 kB

    out = _mstar("extract", work, "--encoder", "timm:test_vit", preexec_fn=small_disk)
    assert out.returncode == 1 and "Traceback" not in out.stderr  # not a crash (was exit 139)
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {work}/features/timm-test_vit/") and "file too large" in line.lower()
    summary = pd.read_csv(work / "features" / "timm-test_vit" / "summary.csv", keep_default_na=False)
    on_disk = {p.stem for p in (work / "features" / "timm-test_vit").glob("*.h5")}
    assert (summary["status"] == "ok").sum() == len(on_disk)  # "ok" only where the file exists
    errors = summary.loc[summary["status"] == "error", "error"]
    assert len(errors) and errors.str.startswith("features were not written").all()


RECORDING_EXTRACT = textwrap.dedent("""
    import sys
    import mstar.features.extract as ex
    real = ex._extract_slides

    def recording(todo, *args, **kwargs):
        with open(sys.argv[2], "a") as f:
            f.writelines(t.slide_id + "\\n" for _, t in todo)
        return real(todo, *args, **kwargs)

    ex._extract_slides = recording
    ex.extract_features(sys.argv[1], "timm:test_vit", batch_size=2, show_progress=False)
""")


def test_two_concurrent_extracts_on_one_folder_share_the_slides_and_finish_complete_and_identical(
        work, tmp_path):
    import shutil

    from mstar.features.extract import extract_features

    single = tmp_path / "single"
    shutil.copytree(work, single)
    extract_features(single, "timm:test_vit", batch_size=2, show_progress=False)
    script = tmp_path / "rec.py"
    script.write_text(RECORDING_EXTRACT)
    procs = [subprocess.Popen([sys.executable, str(script), str(work), str(tmp_path / f"did{i}.txt")],
                              env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    logs = [tmp_path / f"did{i}.txt" for i in range(2)]
    did = [set(f.read_text().split()) if f.exists() else set() for f in logs]
    slides = {p.stem for p in (work / "tiles").glob("*.h5")}
    assert did[0] | did[1] == slides and not did[0] & did[1]  # every slide extracted once, by one of them
    import h5py
    import numpy as np

    folder, ref = work / "features" / "timm-test_vit", single / "features" / "timm-test_vit"
    for s in slides:  # the same arrays as one process alone (the files name their own folder's paths)
        with h5py.File(folder / f"{s}.h5") as a, h5py.File(ref / f"{s}.h5") as b:
            assert np.array_equal(a["features"][:], b["features"][:])
            assert np.array_equal(a["coords"][:], b["coords"][:])


def test_a_killed_process_leaves_no_claim_stuck(work, tmp_path):
    import signal

    from mstar.features.extract import extract_features

    slide = sorted((work / "tiles").glob("*.h5"))[0].stem
    target = work / "features" / "timm-test_vit" / f"{slide}.h5"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from mstar.utils.claims import try_claim
        claim = try_claim({str(target)!r})
        print("held" if claim else "busy", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    from mstar.utils.claims import is_claimed

    assert is_claimed(target)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not is_claimed(target)  # the OS dropped it with the process
    summary = extract_features(work, "timm:test_vit", batch_size=2, show_progress=False)
    assert (summary["status"] == "ok").all() and target.exists()


def test_a_failed_model_save_is_one_line_naming_the_file_and_leaves_nothing_half_written(tmp_path,
                                                                                        monkeypatch):
    import torch

    from mstar.errors import MstarError
    from mstar.run.checkpoint import save_checkpoint

    def full_disk(obj, f, *args, **kwargs):
        open(f, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(MstarError, match=r"model\.pt: could not be written \(\[enforce.*free disk space"):
        save_checkpoint(tmp_path / "model.pt", {"w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_removed_but_not_one_a_live_process_is_writing(tmp_path):
    from mstar.utils.atomic import remove_stale_parts
    from mstar.utils.claims import try_claim

    (tmp_path / ".a.part-x1.h5").write_bytes(b"left by a killed run")
    (tmp_path / ".b.part-y2.h5").write_bytes(b"being written")
    claim = try_claim(tmp_path / "b.h5")  # a live process is writing b.h5
    assert remove_stale_parts(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [".b.part-y2.h5"]
    claim.release()
    assert remove_stale_parts(tmp_path) == 1
