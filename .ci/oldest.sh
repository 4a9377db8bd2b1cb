#!/usr/bin/env bash
# The dependency floors, proved: a fresh virtualenv with the OLDEST versions pyproject.toml
# allows (each ">=X" floor of [project] dependencies installed as "==X"), then the tests of
# the fixtures, markers, clients, exchange and gate. About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${OLDEST_VENV:-.venv-oldest}
rm -rf "$venv"
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q --upgrade pip

# "pytest>=8.2" -> "pytest==8.2"; read from pyproject.toml so the floors and this job agree.
mapfile -t floors < <(python - <<'PY'
import re

# Not tomllib: it is Python 3.11+, and the floors must be testable on 3.10 too.
text = open("pyproject.toml", encoding="utf-8").read()
block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S)
if block is None:
    raise SystemExit("pyproject.toml: no [project] dependencies list")
for dep in re.findall(r'^\s*"([^"]+)"', block.group(1), re.M):
    match = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", dep)
    if match is None:
        raise SystemExit(f"no '>=' floor in dependency {dep!r}")
    print(f"{match.group(1)}=={match.group(2)}")
PY
)
echo "--- oldest: ${floors[*]}"
# pytest-xdist 3.5 (its own floor of pytest 7) for the per-worker exchange test.
python -m pip install -q -e . "${floors[@]}" "pytest-xdist==3.5.0"
python -m pip list 2>/dev/null | grep -iE '^(pytest|pytest-asyncio|aiohttp|websockets|psutil|pluggy) '

python -m pytest -p no:cacheprovider -q \
    tests/test_lazy.py tests/test_budgets.py tests/test_client.py tests/test_websocket.py \
    tests/test_exchange.py tests/test_gating.py
