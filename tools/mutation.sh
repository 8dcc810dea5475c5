#!/usr/bin/env bash
# Mutation testing of chosen functions with pinned mutmut (development only; minutes, not CI).
#
#   bash tools/mutation.sh [-k TESTS] retry_wait ChunkedDecoder.pieces parse_response_head ...
#
# Each argument is a function or Class.method of dmr_client.py.  The project is copied to
# .cache/mutation/work; mutmut plants one small defect at a time in those functions and runs the
# unit tests that reach them (-k: only the tests pytest's -k expression selects, e.g. the table
# tests of pure rules; never the CLI or real-server tiers, which start other processes).
# Prints every surviving mutant's diff and the score.  SKIPPED when PyPI cannot be reached.
set -uo pipefail
cd "$(dirname "$0")/.."
select="not TestCLI and not TestRealServer and not Async and not TestModuleMap and not idna"   # the map test reads the source, which mutmut rewrites; the idna test what it imports
if [ "${1:-}" = "-k" ]; then select="($2) and $select"; shift 2; fi
[ $# -gt 0 ] || { echo "usage: bash tools/mutation.sh [-k TESTS] FUNCTION|Class.method ..."; exit 2; }
root=$(pwd)
tools="mutmut==3.8.1 pytest==9.2.0"
. tools/venv.sh
dev_venv mutation "$tools" "mutation testing"
work=.cache/mutation/work
rm -rf "$work" && mkdir -p "$work"
cp -r dmr_client.py test_dmr_client.py testdata README.md setup.cfg pyproject.toml "$work"/
cat >> "$work/setup.cfg" <<CFG

[mutmut]
source_paths = dmr_client.py
also_copy =
    testdata
    README.md
# A mutant that hangs in a socket read burns no CPU: mutmut's wall bound is this many times the
# tests' own time (its default, 15, lets each hang cost minutes)
timeout_multiplier = 3
pytest_add_cli_args =
    -k
    $select
CFG
patterns=()
for name in "$@"; do
  if [[ "$name" == *.* ]]; then
    patterns+=("dmr_client.xǁ${name%%.*}ǁ${name#*.}__mutmut_*")
  else
    patterns+=("dmr_client.x_${name}__mutmut_*")
  fi
done
cd "$work" || exit 1
"$root/$venv/bin/mutmut" run "${patterns[@]}" >mutmut.log 2>&1
status=$?
"$root/$venv/bin/mutmut" results --all true >results.txt 2>&1
for pattern in "${patterns[@]}"; do
  grep -F "${pattern%\*}" results.txt
done | sort -u >selected.txt
for mutant in $(grep -E ": (survived|suspicious|no tests)" selected.txt | cut -d: -f1); do
  echo "---- $mutant"
  "$root/$venv/bin/mutmut" show "$mutant" 2>/dev/null | sed -n '1,40p'
done >survivors.txt
total=$(wc -l <selected.txt)
killed=$(grep -c ": killed" selected.txt)
echo "mutation: mutmut counts $killed of $total mutants killed in: $*"
grep -oE ": [a-z ]+$" selected.txt | sort | uniq -c
[ $status -eq 0 ] || { tail -n 20 mutmut.log; exit $status; }
# mutmut tries a mutant only on the tests its first pass saw reaching the function; run the
# survivors again directly, each planted in a copy, against the same test selection.
"$root/$venv/bin/python" "$root/tools/mutation_recheck.py" . "$select"
