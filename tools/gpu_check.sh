#!/usr/bin/env bash
# The GPU check: bf16 throughput and MFU of the 150M preset and a short DiLoCo at the paper's
# configuration on one GPU, written to papers/results/gpu-check.json (about 4-7 minutes on an H100/H200).
# Without a GPU it says so in one line and exits 0, writing nothing.
# Arguments go to `python -m lowcomm.gpu_check`: e.g. `--cpu-smoke OUT.json` runs the same path on the CPU, tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  # a GPU machine's own python with a CUDA torch (the .venv's pinned torch may be a CPU build, and such
  # machines may have no registry to install from): use it as it is, with lowcomm from this checkout
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  PY=python3
else
  source tools/env.sh   # .venv with lowcomm installed
  PY=python
fi
PYTHONUNBUFFERED=1 exec "$PY" -m lowcomm.gpu_check "$@"
