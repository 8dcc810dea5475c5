#!/usr/bin/env bash
# The compat tier: tools/compat.py's programs, written for openai-python, run with the pinned
# openai-python (the control) and with only the import changed to dmr_client, sync and async,
# against the fake DMR and then against llama.cpp's own server (tools/llama_server.py, both URL
# layouts).  SKIPPED when PyPI cannot be reached.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
dev_venv compat "openai==3.57.0" "compat tier"
py=${PYTHON:-python3}
trap '"$py" tools/llama_server.py stop --all >/dev/null 2>&1' EXIT
status=0
echo "== compat tier: the fake DMR"
"$venv/bin/python" tools/compat.py || status=1
for layout in dmr plain; do
  flag=""
  [ "$layout" = plain ] && flag=--plain
  llama_start "compat tier on llama.cpp" $flag || exit $status
  # openai-python takes the base URL as given: DMR's layout is written out, as Docker's docs do
  [ "$layout" = dmr ] && url="$url/engines/llama.cpp/v1"
  echo "== compat tier: llama.cpp's server, $layout layout ($url)"
  "$venv/bin/python" tools/compat.py --base-url "$url" --model ai/tiny || status=1
  "$py" tools/llama_server.py stop --all >/dev/null 2>&1
done
exit $status
