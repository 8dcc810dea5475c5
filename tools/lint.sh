#!/usr/bin/env bash
# Type-check and lint with pinned tools in .cache/lint/venv (development and CI only).
# If PyPI cannot be reached, the step is reported as SKIPPED, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
# The sync/async twins read the same apart from async/await (standard library: runs even offline).
python3 tools/twins.py || exit 1
tools="mypy==2.4.1 ruff==0.17.6"
. tools/venv.sh
dev_venv lint "$tools" lint
status=0
"$venv/bin/mypy" dmr_client.py || status=1
"$venv/bin/ruff" check --select E,F,W,B --ignore E501,B905 dmr_client.py test_dmr_client.py tools bench || status=1
exit $status
