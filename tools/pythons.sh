#!/usr/bin/env bash
# Run the unit suite on every CPython 3.8+ this machine has, and print a table of what ran.
#
#   bash tools/pythons.sh                 # each minor version found once; exit 1 if any run fails
#   bash tools/pythons.sh --skip-default  # not python3's own version (CI ran it already, verbosely)
#
# Looks on PATH (python3.X), in pyenv-style version folders ($PYENV_ROOT/versions, ~/.pyenv/versions)
# and through a `py` launcher; a version the machine lacks is reported as skipped, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
mkdir -p .cache
default=""
if [ "${1:-}" = "--skip-default" ]; then
  default=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi
declare -A found
candidates=()
for minor in 8 9 10 11 12 13; do
  candidates+=("$(command -v "python3.$minor" 2>/dev/null || true)")
done
for folder in "${PYENV_ROOT:-}" "$HOME/.pyenv"; do
  [ -n "$folder" ] && [ -d "$folder/versions" ] || continue
  for python in "$folder"/versions/3.*/bin/python3; do candidates+=("$python"); done
done
if command -v py >/dev/null 2>&1; then
  for minor in 8 9 10 11 12 13; do
    candidates+=("$(py -3.$minor -c 'import sys; print(sys.executable)' 2>/dev/null || true)")
  done
fi
for python in "${candidates[@]}"; do
  [ -n "$python" ] && [ -x "$python" ] || continue
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  [ -z "${found[$version]:-}" ] && found[$version]=$python
done
status=0
rows=()
for minor in 8 9 10 11 12 13; do
  version="3.$minor"
  python=${found[$version]:-}
  if [ -z "$python" ]; then
    rows+=("$version|skipped: not on this machine|")
    continue
  fi
  if [ "$version" = "$default" ]; then
    rows+=("$version|ran above, as python3|$python")
    continue
  fi
  started=$(date +%s)
  if "$python" -m unittest >".cache/pythons-$version.log" 2>&1; then
    result="passed"
  else
    result="FAILED (log: .cache/pythons-$version.log)"
    status=1
  fi
  summary=$(grep -E "^(Ran|OK|FAILED)" ".cache/pythons-$version.log" | tr '\n' ' ')
  rows+=("$version|$result in $(( $(date +%s) - started )) s: $summary|$python")
done
echo "Python | unit suite | interpreter"
echo "---|---|---"
for row in "${rows[@]}"; do echo "$row" | sed 's/|/ | /g'; done
for log in .cache/pythons-*.log; do
  grep -q "FAILED" "$log" 2>/dev/null && { echo "== $log"; tail -n 40 "$log"; }
done
exit $status
