#!/usr/bin/env bash
# Differential fuzzing of the pure decoders against h11 and an SSE spec model, with pinned
# hypothesis and h11 in .cache/fuzz/venv (development and CI only), bounded in time.
# If PyPI cannot be reached the step is reported as SKIPPED, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
tools="h11==0.16.0 hypothesis==6.170.17"
. tools/venv.sh
dev_venv fuzz "$tools" fuzz
exec timeout $((${seconds%.*} * 2 + 60)) "$venv/bin/python" tools/fuzz_decoders.py "$seconds"
