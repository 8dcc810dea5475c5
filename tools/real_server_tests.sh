#!/usr/bin/env bash
# The real-server tier: start llama.cpp's own server with the tiny model in both URL layouts
# (DMR's /engines/llama.cpp/v1 and a plain /v1), and beside each a second server with the tiny
# tool-calling model (DMR_TEST_TOOLS_BASE_URL: it calls get_weather, then answers
# DMR_TEST_TOOLS_ANSWER after the tool result); run TestRealServer (Client) and TestRealServerAsync
# (AsyncClient) against each layout, and stop the servers whatever happens. If PyPI cannot be
# reached the tier is reported as SKIPPED.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export DMR_TEST_MODEL=ai/tiny
export DMR_TEST_PHRASE="Hello from a tiny GGUF test model!"
export DMR_TEST_TOOLS_MODEL=ai/tiny
export DMR_TEST_TOOLS_ANSWER="It is sunny in Paris."
. tools/venv.sh   # llama_start
trap '"$py" tools/llama_server.py stop --all' EXIT

status=0
for layout in dmr plain; do
  flag=""
  [ "$layout" = plain ] && flag=--plain
  llama_start "real-server tier" $flag --model tools || exit 0
  tools_url=$url
  llama_start "real-server tier" $flag || exit 0
  echo "== real-server tier, $layout layout: DMR_TEST_BASE_URL=$url DMR_TEST_TOOLS_BASE_URL=$tools_url"
  DMR_TEST_BASE_URL="$url" DMR_TEST_TOOLS_BASE_URL="$tools_url" \
    "$py" -m unittest -v test_dmr_client.TestRealServer test_dmr_client.TestRealServerAsync || status=1
done
exit $status
