#!/usr/bin/env bash
# Refresh requirements/constraints.txt: a new venv with the newest releases setup.cfg allows, the test
# suite run in it, and the exact versions written only if the suite passed.
#   bash requirements/refresh.sh            (about 2 minutes of install, then the suite)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
"$venv/bin/python" -m pip install --quiet -e '.[dev]'
"$venv/bin/python" -m pytest -q
"$venv/bin/python" -m pip freeze --exclude-editable \
  | sed '1i # Exact versions the test suite last passed with (made by: bash requirements/refresh.sh).' \
  > requirements/constraints.txt
echo "wrote requirements/constraints.txt"
