"""benchmarks/_cli.py: the shared data folder's resolution, the output-folder guards and the main wrapper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _cli  # noqa: E402
from mstar.errors import MstarError  # noqa: E402

SLIDE = "slides/CMU-1-Small-Region.svs"


def test_environment_variable_is_honoured_and_searched_alone(tmp_path, monkeypatch):
    (tmp_path / "slides").mkdir()
    (tmp_path / SLIDE).write_bytes(b"x")
    monkeypatch.setenv("MSTAR_SHARED_DATA", str(tmp_path))
    assert _cli.data_candidates() == [tmp_path]
    assert _cli.shared_data(SLIDE) == tmp_path / SLIDE
    assert _cli.shared_data() == tmp_path


def test_default_folders_are_the_repo_copy_then_the_one_beside_it(monkeypatch):
    monkeypatch.delenv("MSTAR_SHARED_DATA", raising=False)
    root = BENCHMARKS.parent
    assert _cli.data_candidates() == [root / "shared" / "data", root.parent / "shared" / "data"]


def test_missing_default_says_where_it_looked_and_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MSTAR_SHARED_DATA", str(tmp_path))
    with pytest.raises(MstarError) as err:
        _cli.shared_data(SLIDE, option="--slide")
    assert str(err.value) == (f"{SLIDE} not found (looked in {tmp_path / SLIDE}); pass --slide PATH or set "
                              "MSTAR_SHARED_DATA to the shared data folder")


def test_an_explicit_path_wins_and_a_missing_one_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MSTAR_SHARED_DATA", str(tmp_path / "elsewhere"))
    given = tmp_path / "mine.svs"
    given.write_bytes(b"x")
    assert _cli.shared_data(SLIDE, given, "--slide") == given
    with pytest.raises(MstarError, match=r"^--real .*nope\.svs: no such file or folder$"):
        _cli.shared_data(SLIDE, tmp_path / "nope.svs", "--real")


def test_new_folder_refuses_a_non_empty_one_and_names_it(tmp_path):
    assert _cli.new_folder(tmp_path / "a" / "b").is_dir()
    assert _cli.new_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"  # empty: accepted
    (tmp_path / "a" / "b" / "run").mkdir()
    with pytest.raises(MstarError, match=r"^--out .*b: exists and is not empty"):
        _cli.new_folder(tmp_path / "a" / "b")


def test_own_folder_accepts_only_its_own_earlier_output(tmp_path):
    work = _cli.own_folder(tmp_path / "w", "x.py", "--work")
    (work / "result.csv").write_text("1")
    assert _cli.own_folder(work, "x.py", "--work") == work  # a re-run of the same script
    with pytest.raises(MstarError, match="not an earlier output of y.py"):
        _cli.own_folder(work, "y.py", "--work")
    other = tmp_path / "other"
    other.mkdir()
    (other / "someone-elses").write_text("")
    with pytest.raises(MstarError, match=r"^--out .*other: not empty"):
        _cli.own_folder(other, "x.py", "--out")
    assert not (other / _cli.MARKER).exists()


@pytest.mark.parametrize("exc", [MstarError("bad\n  input"), FileNotFoundError(2, "No such file", "f.csv"),
                                 ValueError("bad value")])
def test_wrapper_turns_expected_errors_into_one_line_and_status_1(exc, capsys):
    def main():
        raise exc

    with pytest.raises(SystemExit) as done:
        _cli.run(main)
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    if isinstance(exc, MstarError):
        assert err == "error: bad input\n"


def test_wrapper_passes_the_status_of_main_through():
    for returned, status in ((None, 0), (0, 0), (3, 3)):
        with pytest.raises(SystemExit) as done:
            _cli.run(lambda value=returned: value)
        assert done.value.code == status


def test_run_child_shows_the_childs_stderr_tail_on_failure(capsys):
    assert _cli.run_child([sys.executable, "-c", "print('ok')"], "child") == "ok\n"
    code = "import sys; print('first'); print('the real cause', file=sys.stderr); sys.exit(3)"
    with pytest.raises(MstarError, match=r"^the child failed \(exit status 3"):
        _cli.run_child([sys.executable, "-c", code], "the child")
    assert capsys.readouterr().err == "the real cause\n"


def _script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_scripts_stop_with_one_line_before_writing_anything(tmp_path):
    out = tmp_path / "out"
    cases = [("extract.py", "--repeats", "0"),
             ("extract.py", "--slide", str(tmp_path / "nope.svs")),
             ("stage1_cpu_bf16.py", "--sizes", "64"),
             ("multimodal_synth.py", "--root", str(out), "--models", "bogus"),
             ("scan.py", "--cohort", str(tmp_path), "--work", str(tmp_path), "--out", str(out)),
             ("generalise.py", "--work", str(out), "--table"),
             ("generalise.py", "--work", str(out), "--cohort", str(tmp_path), "--kind", "synth"),
             ("tcga_omics.py", "--data", str(tmp_path), "--out", str(out)),
             ("pretrain.py", "--steps", "0"),
             ("tile.py", "--cases", "0")]
    for case in cases:
        proc = _script(*case)
        assert proc.returncode == 1, (case, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, (case, proc.stderr)
        assert not out.exists(), case
