"""benchmarks/gpu_check.sh: fails clearly without CUDA; every check runs at toy sizes on the CPU (--smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_stops_at_once_with_one_line():
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PY": sys.executable})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gpu_check: no CUDA device is visible")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_smoke_run_on_the_cpu_exercises_every_check(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSTAR_CPU_BF16": "0"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--device", "cpu", "--out",
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    e = result["extract"]
    assert e["tiles"] == 24 and e["ours_tiles_per_s"] > 0 and e["upstream_tiles_per_s"] > 0
    assert e["cosine_min"] > 0.999  # fp32 here: our pipeline's features are the upstream loop's
    assert result["mil"]["ours_s_per_epoch"] > 0 and result["mil"]["upstream_s_per_epoch"] > 0
    assert result["stage1"]["ours"]["max_abs_diff"] < 1e-4 and result["stage1"]["ours_over_naive"] > 0
    assert result["stage2"]["patches_per_s"] > 0
    assert result["ddp"]["ok"], result["ddp"]
    assert e["slide"].startswith("CMU-1-Small-Region.svs") or "(synthetic: " in e["slide"]
    assert "checkpoint" not in result["ddp"] and result["ddp"]["checkpoint_written"]
    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert table[0] == "| check | figure | detail |" and len(table) == 8 and "FAILED" not in "".join(table)
    assert table[-1].startswith("| stage-1 DDP, 1 process, cpu | ok |")


def test_each_check_is_written_as_it_ends_and_a_failure_does_not_stop_the_next(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    seen = {}

    def extract(device, size, work):
        return {"encoder": "e", "precision": "fp32", "tiles": 4, "ours_tiles_per_s": 2.0}

    def mil(device, size, work):
        seen["json"] = json.loads((tmp_path / "gpu_check.json").read_text())  # extract is already there
        raise RuntimeError("out of | memory")

    def stage1(device, size):
        return {"ours": {"slides_per_s": 1.5}, "naive": {"slides_per_s": 1.0}, "shape": "2 x 3 x 4"}

    monkeypatch.setattr(gpu_check, "check_extract", extract)
    monkeypatch.setattr(gpu_check, "check_mil", mil)
    monkeypatch.setattr(gpu_check, "check_stage1", stage1)
    code = gpu_check.main(["--smoke", "--device", "cpu", "--out", str(tmp_path), "--only", "extract", "mil",
                           "stage1"])
    assert code == 1
    assert seen["json"]["extract"]["tiles"] == 4 and "mil" not in seen["json"]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["mil"]["error"] == "RuntimeError: out of | memory"
    assert result["stage1"]["ours"]["slides_per_s"] == 1.5 and result["device_type"] == "cpu"
    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| device", "| extraction, ours",
                                                          "| MIL epoch, ours", "| stage-1 step, ours"]
    assert table[4] == "| MIL epoch, ours | FAILED | RuntimeError: out of / memory |"
    assert table[5].startswith("| stage-1 step, ours | 1.5 slides/s | 2 x 3 x 4; looped 1.0 slides/s")
    assert "failed: mil" in capsys.readouterr().err


def test_ddp_row_is_labelled_by_device():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_check import markdown

    for device_type, label in (("cuda", "stage-1 DDP, 1 GPU"), ("cpu", "stage-1 DDP, 1 process, cpu")):
        md = markdown({"device": "x", "device_type": device_type, "ddp": {"ok": True, "seconds": 3.0}})
        assert md.splitlines()[3] == f"| {label} | ok | 3 s |"
        assert len(md.splitlines()) == 4  # header, rule, device, ddp: checks not run have no row


def test_without_a_virtual_environment_the_wrapper_says_so(tmp_path):
    copy = tmp_path / "repo"
    (copy / "benchmarks").mkdir(parents=True)
    (copy / "benchmarks" / "gpu_check.sh").write_text((ROOT / "benchmarks" / "gpu_check.sh").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("PY", "VIRTUAL_ENV")}
    proc = subprocess.run(["bash", str(copy / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr == "gpu_check: no .venv: run `make test` first or set PY=/path/to/python\n"
