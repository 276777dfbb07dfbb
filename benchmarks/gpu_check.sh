#!/usr/bin/env bash
# One prepared GPU check (issue 20): extraction, MIL training, stage-1 and stage-2 steps, 1-GPU DDP.
# Writes $OUT/gpu_check.json and $OUT/gpu_check.md (the BENCHMARKS.md table). Fails at once without CUDA.
# Python: $PY, else the project's .venv, else the active virtual environment ($VIRTUAL_ENV).
#   bash benchmarks/gpu_check.sh                 # OUT=gpu_check_out (git-ignored)
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh --only extract mil
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PY=.venv/bin/python
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PY="$VIRTUAL_ENV/bin/python"
    else
        echo "gpu_check: no .venv: run \`make test\` first or set PY=/path/to/python" >&2
        exit 2
    fi
fi
exec "$PY" benchmarks/gpu_check.py --out "${OUT:-gpu_check_out}" "$@"
