"""Run folders that know their inputs: finished runs are reported, changed inputs stop with a clear line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import ClassVar

import pytest
import yaml

from mstar.errors import MstarError
from mstar.run.config import RunConfig
from mstar.run.fingerprint import differences, fingerprint, path_digest
from mstar.run.folder import open_run


@dataclass
class Job(RunConfig):
    table: str = ""
    folder: str = ""
    epochs: int = 3
    workers: int = 0
    out: str = "runs"
    name: str | None = "job"

    KIND: ClassVar[str] = "job"
    INPUTS: ClassVar[tuple[str, ...]] = ("table", "folder")
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "workers")


@pytest.fixture
def job(tmp_path) -> Job:
    (tmp_path / "table.csv").write_text("case,label\na,1\n")
    (tmp_path / "feats").mkdir()
    for s in ("s1", "s2"):
        (tmp_path / "feats" / f"{s}.h5").write_bytes(s.encode())
    return Job(table=str(tmp_path / "table.csv"), folder=str(tmp_path / "feats"),
               out=str(tmp_path / "runs")).validate()


def _finish(cfg: Job, overwrite: bool = False):
    folder = open_run(cfg, overwrite)
    if not folder.finished:
        folder.start(cfg)
        (folder.path / "metrics.json").write_text("{}")
        folder.finish()
    return folder


def test_a_new_run_writes_config_and_record_only_when_started(job):
    folder = open_run(job)
    assert not folder.finished and not folder.path.exists()  # nothing written before the inputs loaded
    folder.start(job)
    assert yaml.safe_load((folder.path / "config.yaml").read_text()) == job.to_dict()
    record = json.loads((folder.path / "run.json").read_text())
    assert record["status"] == "running" and set(record["fingerprint"]["inputs"]) == {"table", "folder"}
    folder.finish()
    assert json.loads((folder.path / "run.json").read_text())["status"] == "finished"


def test_same_inputs_are_finished_and_runtime_settings_do_not_matter(job):
    _finish(job)
    job.workers = 8  # how it runs, not what it computes
    assert open_run(job).finished


@pytest.mark.parametrize("change, named", [
    (lambda c, p: setattr(c, "epochs", 4), r"epochs 3 -> 4"),
    (lambda c, p: (p / "table.csv").write_text("case,label\na,2\n"), r"input 'table' changed"),
    (lambda c, p: os.utime(p / "feats" / "s1.h5", ns=(1, 1)), r"input 'folder' changed"),
    (lambda c, p: (p / "feats" / "s3.h5").write_bytes(b"x"), r"input 'folder' changed"),
])
def test_changed_settings_or_inputs_stop_with_what_changed(job, tmp_path, change, named):
    _finish(job)
    change(job, tmp_path)
    with pytest.raises(MstarError, match=rf"runs/job/job: this run was made from other settings or inputs "
                                         rf"\({named}"
                                         r".*\); pass --overwrite to redo it, or --name to start a new run "
                                         r"beside it"):
        open_run(job)
    folder = _finish(job, overwrite=True)  # --overwrite replaces it
    assert json.loads((folder.path / "run.json").read_text())["status"] == "finished"


def test_moved_inputs_with_the_same_content_keep_the_run(job, tmp_path):
    _finish(job)
    moved = tmp_path / "moved.csv"
    moved.write_text((tmp_path / "table.csv").read_text())
    job.table = str(moved)
    assert open_run(job).finished


def test_a_folder_that_is_not_a_run_and_a_file_as_out_are_one_line_errors(job, tmp_path):
    job.run_dir().mkdir(parents=True)
    (job.run_dir() / "stray.txt").write_text("x")
    with pytest.raises(MstarError, match="holds files but no run.json"):
        open_run(job)
    (tmp_path / "afile").write_text("x")
    job.out = str(tmp_path / "afile")
    with pytest.raises(MstarError, match="cannot write the run folder"):
        open_run(job).start(job)


def test_digests_of_files_lists_and_large_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1" * 10)
    b.write_bytes(b"1" * 10)
    assert path_digest(a) == path_digest(b) and path_digest(tmp_path / "none").startswith("absent")
    assert path_digest([a]) != path_digest([a, b])
    old, new = fingerprint({"x": 1}, {"f": a}), fingerprint({"x": 2}, {"f": None})
    assert differences(old, new) == ["x 1 -> 2", "input 'f' added or removed"]
    wide = {f"key_{i}": i for i in range(12)}  # a long mapping: the changed entry is named, not cut off
    old, new = fingerprint({"model_args": wide}, {}), fingerprint({"model_args": {**wide, "key_11": 64}}, {})
    assert differences(old, new) == ["model_args.key_11 11 -> 64"]
    old = fingerprint({"model_args": {"max_len": None, "d": 1}}, {})
    new = fingerprint({"model_args": {"d": 1}}, {})
    assert differences(old, new) == ["model_args.max_len null -> (unset)"]  # a key set to null is a change


def test_a_runs_config_re_runs_from_any_folder(tmp_path, monkeypatch):
    """config.yaml keeps paths as typed (relative to where the command ran); run.json records that folder."""
    (tmp_path / "project" / "feats").mkdir(parents=True)
    (tmp_path / "project" / "table.csv").write_text("case,label\na,1\n")
    (tmp_path / "project" / "feats" / "s1.h5").write_bytes(b"s1")
    monkeypatch.chdir(tmp_path / "project")
    cfg = Job(table="table.csv", folder="feats", out="runs").validate()
    folder = _finish(cfg)
    assert json.loads((folder.path / "run.json").read_text())["cwd"] == str(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "runs").mkdir(parents=True)  # a runs folder here too: the config still means the project's
    monkeypatch.chdir(elsewhere)
    config = tmp_path / "project" / "runs" / "job" / "job" / "config.yaml"
    again = Job.load(config)
    assert (again.table, again.folder, again.out) == (str(tmp_path / "project" / "table.csv"),
                                                      str(tmp_path / "project" / "feats"),
                                                      str(tmp_path / "project" / "runs"))
    assert _finish(again).finished  # the same run, reported as finished, not a new one here
    assert not any((elsewhere / "runs").iterdir())
    values = {"table": ["table.csv", "missing.csv", "slides/*.svs"], "epochs": 3}
    listed = Job._from_run_folder(config, values)
    project = tmp_path / "project"
    assert listed == {"table": [str(project / "table.csv"), "missing.csv", str(project / "slides/*.svs")],
                      "epochs": 3}


def test_a_default_runs_folder_is_the_one_the_run_is_in(tmp_path, monkeypatch):
    """(`mstar embed` keeps out: null; re-run from elsewhere it made a new run there.)"""
    from pathlib import Path

    @dataclass
    class Unset(Job):
        out: str | None = None  # None: runs/ of the working folder

        def run_dir(self) -> Path:
            return Path(self.out or "runs") / self.group() / (self.name or "job")

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "table.csv").write_text("case,label\na,1\n")
    monkeypatch.chdir(tmp_path / "project")
    folder = _finish(Unset(table="table.csv", folder="table.csv").validate())
    monkeypatch.chdir(tmp_path)
    again = Unset.load(tmp_path / "project" / folder.path / "config.yaml")
    assert again.out == str(tmp_path / "project" / "runs") and _finish(again).finished


def test_a_models_content_digest_survives_a_copy_that_its_file_digest_does_not(tmp_path, monkeypatch):
    """(A byte-identical copy of a 91 MB stage1.pt was 'another stage-1 model'.)"""
    import shutil
    import time

    from mstar.run import fingerprint as fp

    monkeypatch.setattr(fp, "LARGE_BYTES", 1024)  # the small file below counts as large
    monkeypatch.setattr(fp, "EDGE_BYTES", 256)
    model = tmp_path / "stage1.pt"
    model.write_bytes(os.urandom(4096))
    time.sleep(0.01)
    (tmp_path / "moved").mkdir()
    copy = shutil.copy(model, tmp_path / "moved" / "stage1-copy.pt")
    assert fp.file_digest(model) != fp.file_digest(copy)  # keyed by name and time above LARGE_BYTES
    assert fp.content_digest(model) == fp.content_digest(copy) == fp.content_digest(model)
    copy.write_bytes(model.read_bytes()[:-1] + b"x")
    assert fp.content_digest(model) != fp.content_digest(copy)
