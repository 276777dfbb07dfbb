"""Data integrity and failure handling (issue 18): each case a hostile but realistic user hit, reproduced.

Each test fails on the code before the fix; together they are the project's reliability suite.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _mode_under_umask(tmp_path, umask: int) -> int:
    code = textwrap.dedent(f"""
        import os
        os.umask({umask:#o})
        from mstar.utils.atomic import atomic_path, write_text_atomic
        write_text_atomic({str(tmp_path / "a.txt")!r}, "x")
        import h5py
        with atomic_path({str(tmp_path / "b.h5")!r}) as tmp:
            with h5py.File(tmp, "w") as f:
                f["x"] = [1]
    """)
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    modes = {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.txt", "b.h5")}
    assert len(modes) == 1
    return modes.pop()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_outputs_follow_the_users_umask_not_mkstemps_0600(tmp_path):
    (tmp_path / "group").mkdir()
    (tmp_path / "private").mkdir()
    assert _mode_under_umask(tmp_path / "group", 0o002) == 0o664  # a shared work folder stays readable
    assert _mode_under_umask(tmp_path / "private", 0o077) == 0o600


MSTAR = [sys.executable, "-m", "mstar.cli"]


def _mstar(*args, preexec_fn=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*MSTAR, *map(str, args)], capture_output=True, text=True, env=ENV,
                          preexec_fn=preexec_fn, timeout=timeout)


def test_version_and_usage_errors():
    from mstar import __version__

    out = _mstar("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mstar {__version__}"
    bad = _mstar("tile", "--bogus")
    assert bad.returncode == 2 and "No such option: --bogus" in bad.stderr and "Traceback" not in bad.stderr


def test_out_pointing_at_a_file_is_one_line_naming_the_path(tmp_path, tiny_cohort):
    synth_slide = sorted((tiny_cohort / "slides").iterdir())[0]
    afile = tmp_path / "afile"
    afile.write_text("")
    out = _mstar("tile", synth_slide, "--out", afile)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (f"error: {afile}/tiles: Not a directory (a path component "
                                                  "is a file, not a folder; give a folder)")


def test_a_folder_given_as_an_output_file_is_one_line_naming_it(tmp_path):
    from mstar.cli import os_error_line
    from mstar.utils.atomic import write_text_atomic

    (tmp_path / "out.json").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        write_text_atomic(tmp_path / "out.json", "{}")
    said = f"{tmp_path / 'out.json'}: Is a directory (a folder was given where a file is expected)"
    assert os_error_line(err.value) == said  # the target, never the temporary beside it
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    from mstar.errors import MstarError
    from mstar.run.checkpoint import save_checkpoint

    with pytest.raises(MstarError, match=r"out.json: is a folder; a model file cannot be written there$"):
        save_checkpoint(tmp_path / "out.json", {})  # not "free disk space"


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_partial_output(tmp_path):
    import resource
    import signal

    def small_disk():  # writes past 100 kB fail with EFBIG, as a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = _mstar("synth", "--out", tmp_path / "c", "--cases", "3", preexec_fn=small_disk)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path / 'c' / 'slides'}/SYN-0001-DX1.svs: File too large")
    assert not list((tmp_path / "c" / "slides").iterdir())  # no truncated slide under a final name


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ctrl_c_says_what_is_kept_and_exits_130(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([*MSTAR, "synth", "--out", str(tmp_path / "c"), "--cases", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 60
    while not (tmp_path / "c" / "slides").is_dir() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted; finished outputs are kept and a re-run resumes"


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_kill_9_of_tile_with_workers_leaves_no_worker_behind(tmp_path, tiny_cohort):
    import signal
    import time

    proc = subprocess.Popen([*MSTAR, "tile", str(tiny_cohort / "slides"), "--out", str(tmp_path / "w"),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline, kids = time.time() + 60, set()
    while len(kids) < 2 and time.time() < deadline:  # the pool's workers (and multiprocessing's helpers)
        kids = _children(proc.pid)
        time.sleep(0.05)
    assert len(kids) >= 2, "the pool never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while any(_alive(k) for k in kids) and time.time() < deadline:
        time.sleep(0.2)
    assert not [k for k in kids if _alive(k)]  # each worker noticed its parent was gone and exited


def test_an_interrupted_tile_run_writes_the_summary_of_what_it_did(tmp_path, tiny_cohort, monkeypatch):
    import pandas as pd

    from mstar.slide import batch

    real, calls = batch._safe_tile, []

    def interrupted_on_the_third(*args):
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(batch, "_safe_tile", interrupted_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        batch.tile_many([tiny_cohort / "slides"], tmp_path, show_progress=False)
    summary = pd.read_csv(tmp_path / "tiles" / "summary.csv").set_index("slide")
    done = sorted(p.stem for p in calls[:2])
    assert sorted(summary.index[summary["status"] == "ok"]) == done
    assert (summary.drop(index=done)["status"] == "pending").all()  # the slides it never reached
