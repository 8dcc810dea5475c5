#!/usr/bin/env bash
# Differential fuzzing of the pure decoders against h11 and an SSE spec model, with pinned
# hypothesis and h11 in .cache/fuzz/venv (development and CI only), bounded in time.
# If PyPI cannot be reached the step is reported as SKIPPED, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
venv=.cache/fuzz/venv
tools="h11==0.16.0 hypothesis==6.170.17"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$tools" ]; then
  python3 -m venv --clear "$venv" || exit 1
  if ! "$venv/bin/pip" install -q --disable-pip-version-check $tools >"$venv/pip.log" 2>&1; then
    tail -n 3 "$venv/pip.log"
    echo "fuzz SKIPPED: could not install $tools (no PyPI?)"
    exit 0
  fi
  echo "$tools" > "$venv/.installed"
fi
exec timeout $((${seconds%.*} * 2 + 60)) "$venv/bin/python" tools/fuzz_decoders.py "$seconds"
