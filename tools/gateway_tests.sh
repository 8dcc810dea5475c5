#!/usr/bin/env bash
# The gateway tier: LiteLLM's proxy router (pinned, in .cache/gateway) on 127.0.0.1 with a master
# key, in front of two llama.cpp servers in DMR's URL layout as two deployments of one model, and
# a backend that cuts its answers short (tools/gateway.py).  Runs TestGateway (Client) and
# TestGatewayAsync (AsyncClient) through it, then times the first chunk direct and through the
# proxy.  Everything started is stopped by PID whatever happens.  If PyPI cannot be reached the
# tier is reported as SKIPPED.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
# shellcheck source=tools/venv.sh
source tools/venv.sh
# prisma: without it LiteLLM 1.106.2 answers a request with no key with a 500 (its error
# handler imports prisma), not the 401 it means.
dev_venv gateway "litellm[proxy]==1.106.2 prisma==0.15.0" "gateway tier"

log=$(mktemp)
trap '"$py" tools/gateway.py stop; rm -f "$log"' EXIT
if ! settings=$("$py" tools/gateway.py start --venv .cache/gateway/venv 2>"$log"); then
  cat "$log" >&2
  if grep -q "could not install" "$log"; then
    echo "gateway tier SKIPPED: the pinned PyPI packages for llama.cpp could not be installed (no PyPI?)"
    exit 0
  fi
  tail -n 40 .cache/gateway/proxy.log >&2 2>/dev/null
  echo "gateway tier FAILED: the proxy or a backend did not start" >&2
  exit 1
fi
echo "$settings"
# shellcheck disable=SC2046  # NAME=VALUE words on purpose
export $settings

status=0
"$py" -m unittest -v test_dmr_client.TestGateway test_dmr_client.TestGatewayAsync || status=1
echo "== time to first chunk, direct to one backend and through the proxy"
"$py" tools/gateway.py measure || status=1
exit $status
