#!/usr/bin/env bash
# One prepared GPU check (issue 20): extraction, MIL training, stage-1 and stage-2 steps, 1-GPU DDP.
# Writes $OUT/gpu_check.json and $OUT/gpu_check.md (the BENCHMARKS.md table). Fails at once without CUDA.
#   bash benchmarks/gpu_check.sh                 # OUT=gpu_check_out
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh --only extract mil
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
