#!/usr/bin/env bash
# The test command: install, check lowcomm/ is what nbs/ exports, run the notebook tests,
# run the integration tests, build the docs site offline.
source "$(dirname "$0")/env.sh"
python -m ipykernel install --sys-prefix --name python3 >/dev/null

echo "== 1/5 lowcomm/ must be exactly what nbs/ exports"
nbdev_export
if [ -n "$(git status --porcelain -- lowcomm)" ]; then
  git status --short -- lowcomm; git --no-pager diff --stat -- lowcomm
  echo "FAIL: lowcomm/ differs from what nbs/ exports. lowcomm/ is generated: edit the notebooks," \
       "run 'nbdev_export' and commit the result." >&2
  exit 1
fi

echo "== 2/5 notebooks must be clean"
nbdev_clean
if [ -n "$(git status --porcelain -- nbs)" ]; then
  git status --short -- nbs
  echo "FAIL: notebooks carry outputs or metadata that nbdev_clean strips: run 'nbdev_clean' and commit." >&2
  exit 1
fi

echo "== 3/5 notebook tests (nbdev_test)"
OMP_NUM_THREADS=1 nbdev_test --n_workers 2   # two notebooks at once, one thread each

echo "== 4/5 integration tests (pytest tests/)"
if [ ! -x /usr/bin/chromium ]; then   # the browser tests drive Debian's chromium (Playwright's download is not used)
  echo "installing chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "WARNING: could not install chromium: the browser tests need it" >&2
fi
python -m pytest -q tests

echo "== 5/5 docs site (offline)"
lowcomm docs --out _docs
