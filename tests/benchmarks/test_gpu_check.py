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
    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert table[0] == "| check | figure | detail |" and len(table) == 8 and "FAILED" not in "".join(table)
