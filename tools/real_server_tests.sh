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
log=$(mktemp)
trap '"$py" tools/llama_server.py stop --all; rm -f "$log"' EXIT

status=0
for layout in dmr plain; do
  flag=""
  [ "$layout" = plain ] && flag=--plain
  if ! url=$("$py" tools/llama_server.py start $flag 2>"$log"); then
    cat "$log" >&2
    if grep -q "could not install" "$log"; then
      echo "real-server tier SKIPPED: the pinned PyPI packages could not be installed (no PyPI?)"
      exit 0
    fi
    echo "real-server tier FAILED: the llama.cpp server did not start" >&2
    exit 1
  fi
  if ! tools_url=$("$py" tools/llama_server.py start $flag --model tools 2>"$log"); then
    cat "$log" >&2
    echo "real-server tier FAILED: the llama.cpp server with the tools model did not start" >&2
    exit 1
  fi
  echo "== real-server tier, $layout layout: DMR_TEST_BASE_URL=$url DMR_TEST_TOOLS_BASE_URL=$tools_url"
  DMR_TEST_BASE_URL="$url" DMR_TEST_TOOLS_BASE_URL="$tools_url" \
    "$py" -m unittest -v test_dmr_client.TestRealServer test_dmr_client.TestRealServerAsync || status=1
done
exit $status
