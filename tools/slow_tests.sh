#!/usr/bin/env bash
# The slow tier of the unit suite (tens of seconds of waiting): the command line run as a
# subprocess, stalls waited out (TLS handshakes, uploads too), early answers to 11 MiB uploads, 50 MB transfers'
# memory, for both clients.  The
# README's `python3 -m unittest` skips these (under a minute on 2 cores); .ci/run runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
DMR_SLOW_TESTS=1 "${PYTHON:-python3}" -m unittest -v test_dmr_client.TestCLI test_dmr_client.TestCLIInteractive \
  test_dmr_client.TestHostileTiming test_dmr_client.TestHostileTimingAsync \
  test_dmr_client.TestEarlyAnswers test_dmr_client.TestEarlyAnswersAsync \
  test_dmr_client.TestTLSStalls test_dmr_client.TestTLSStallsAsync \
  test_dmr_client.TestTransferStalls test_dmr_client.TestTransferStallsAsync test_dmr_client.TestTransferMemory
