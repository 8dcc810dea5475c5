#!/usr/bin/env bash
# The packaging tier: README's install commands, offline (--no-index), in fresh venvs of every
# CPython 3.8+ this machine has (as tools/pythons.sh finds them), with a table of what ran:
#
#   pip install --no-index .                          (build isolation: tools/build_backend.py needs nothing)
#   pip install --no-index --no-build-isolation .     (3.12+ venvs have no setuptools; 3.11's has no wheel)
#   pip install --no-index -e .                       (PEP 660 editable; on python3's version)
#   pip install --no-index dmr_client-*.tar.gz        (the sdist builds again; on python3's version)
#
# each checked by running `dmr-client --version` and importing dmr_client from outside the tree.
# Then, if PyPI can be reached, the wheel is compared with the one setuptools builds from the same
# setup.cfg (file list, METADATA, entry_points.txt); without PyPI that comparison says SKIPPED.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree as committed plus what is not ignored (a clean clone is the same), never build/ or caches.
mkdir -p "$work/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -f "{}" && echo "{}"' |
  tar -c -T - | tar -x -C "$work/src"
version=$(python3 -c 'import ast, sys
for node in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
        print(ast.literal_eval(node.value))' "$work/src/dmr_client.py")

declare -A found   # as tools/pythons.sh looks: pyenv-style version folders, then PATH; each must run
for minor in 8 9 10 11 12 13; do
  for python in "${PYENV_ROOT:-/nonexistent}"/versions/3."$minor".*/bin/python3 "$HOME"/.pyenv/versions/3."$minor".*/bin/python3 \
                "$(command -v "python3.$minor" 2>/dev/null || true)"; do
    [ -n "$python" ] && [ -x "$python" ] && [ -z "${found[3.$minor]:-}" ] || continue
    [ "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "3.$minor" ] && found[3.$minor]=$python
  done
done
default=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')

check() {   # check VENV WHAT: the command and the module work, from outside the source tree
  local out
  out=$(cd "$work" && "$1/bin/dmr-client" --version 2>&1 && "$1/bin/python" -c \
        'import dmr_client, os; assert not dmr_client.__file__.startswith(os.environ["SRC"] + "/") or os.environ["EDITABLE"]; print(dmr_client.__version__)' 2>&1)
  [ "$out" = "dmr-client $version"$'\n'"$version" ] || { echo "$2: $out"; return 1; }
}

status=0
rows=()
for minor in 8 9 10 11 12 13; do
  python=${found[3.$minor]:-}
  if [ -z "$python" ]; then rows+=("3.$minor|skipped: not on this machine|"); continue; fi
  started=$(date +%s)
  result=passed
  log="$work/3.$minor.log"
  modes="isolated no-build-isolation"
  [ "3.$minor" = "$default" ] && modes="$modes editable sdist"   # the same pip code on every version: once
  for mode in $modes; do
    venv="$work/venv-3.$minor-$mode"
    "$python" -m venv "$venv" >>"$log" 2>&1 || { result="FAILED: venv"; break; }
    case $mode in
      isolated) args=("$work/src") ;;
      no-build-isolation) args=(--no-build-isolation "$work/src") ;;
      editable) args=(-e "$work/src") ;;
      sdist) mkdir -p "$work/sdist-3.$minor"
             (cd "$work/src" && "$python" -c 'import sys; sys.path.insert(0, "tools"); import build_backend
print(build_backend.build_sdist(sys.argv[1]))' "$work/sdist-3.$minor") >>"$log" 2>&1 || { result="FAILED: sdist"; break; }
             args=("$work/sdist-3.$minor/dmr_client-$version.tar.gz") ;;
    esac
    if ! "$venv/bin/pip" install --no-index "${args[@]}" >>"$log" 2>&1; then result="FAILED: pip install $mode"; break; fi
    if grep -qiE "^(WARNING|DEPRECATION)" "$log"; then result="FAILED: pip warns ($mode)"; break; fi
    SRC="$work/src" EDITABLE=$([ $mode = editable ] && echo 1) check "$venv" "3.$minor $mode" >>"$log" 2>&1 \
      || { result="FAILED: $mode does not run"; break; }
  done
  [ "$result" = passed ] || { status=1; echo "== 3.$minor"; tail -n 30 "$log"; }
  rows+=("3.$minor|$result in $(( $(date +%s) - started )) s (${modes// /, })|$python")
done
echo "Python | pip install --no-index, fresh venv | interpreter"
echo "---|---|---"
for row in "${rows[@]}"; do echo "$row" | sed 's/|/ | /g'; done

# The same setup.cfg through setuptools (needs PyPI): the wheels must hold the same files and metadata.
mkdir -p "$work/st/src" "$work/st/dist" "$work/ours"
cp -r "$work/src/." "$work/st/src/"
printf '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n' > "$work/st/src/pyproject.toml"
python3 -m venv "$work/st/venv"
if "$work/st/venv/bin/pip" -q wheel --no-deps -w "$work/st/dist" "$work/st/src" >"$work/st/pip.log" 2>&1; then
  (cd "$work/src" && python3 -c 'import sys; sys.path.insert(0, "tools"); import build_backend
build_backend.build_wheel(sys.argv[1])' "$work/ours") || status=1
  python3 - "$work/ours"/*.whl "$work/st/dist"/*.whl <<'EOF' || status=1
import sys, zipfile
ours, theirs = (zipfile.ZipFile(path) for path in sys.argv[1:])
def contents(wheel):
    files = {}
    for name in wheel.namelist():
        data = wheel.read(name)
        if name.endswith("/METADATA"):   # setuptools marks a license file from setup.cfg as dynamic
            data = data.replace(b"Dynamic: license-file\n", b"")
        if not name.endswith(("/RECORD", "/WHEEL")):   # RECORD: hashes of the above; WHEEL: Generator
            files[name] = data
    return files
mine, setuptools = contents(ours), contents(theirs)
differ = sorted(name for name in set(mine) | set(setuptools) if mine.get(name) != setuptools.get(name))
print("compared with setuptools' wheel (%s): %s" % (sys.argv[2].rsplit("/", 1)[1],
      "the same files and metadata" if not differ else "DIFFERENT: " + ", ".join(differ)))
sys.exit(1 if differ else 0)
EOF
elif grep -qiE "connection|network|resolve|proxy|timed out|no matching distribution" "$work/st/pip.log"; then
  echo "comparison with setuptools' wheel SKIPPED: PyPI could not be reached"
else
  cat "$work/st/pip.log"; status=1
fi
exit $status
