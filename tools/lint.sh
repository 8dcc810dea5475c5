#!/usr/bin/env bash
# Type-check and lint with pinned tools in .cache/lint/venv (development and CI only).
# If PyPI cannot be reached, the step is reported as SKIPPED, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=.cache/lint/venv
tools="mypy==2.4.1 ruff==0.17.6"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$tools" ]; then
  python3 -m venv --clear "$venv" || exit 1
  if ! "$venv/bin/pip" install -q --disable-pip-version-check $tools >"$venv/pip.log" 2>&1; then
    tail -n 3 "$venv/pip.log"
    echo "lint SKIPPED: could not install $tools (no PyPI?)"
    exit 0
  fi
  echo "$tools" > "$venv/.installed"
fi
status=0
"$venv/bin/mypy" dmr_client.py || status=1
"$venv/bin/ruff" check --select E,F,W,B --ignore E501,B905 dmr_client.py test_dmr_client.py tools bench || status=1
exit $status
