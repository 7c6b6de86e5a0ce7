# Sourced by tools/demo.sh and tools/test.sh: makes .venv (once) and installs lowcomm into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import lowcomm" || { echo "lowcomm failed to install into .venv" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
