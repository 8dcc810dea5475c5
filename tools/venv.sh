# Sourced by the development tiers.  `dev_venv NAME "pkg==v ..." WHAT` makes .cache/NAME/venv with
# exactly those pinned packages (reusing it while the pins are unchanged) and sets $venv.  When
# PyPI cannot be reached it prints "WHAT SKIPPED" and exits the calling script with 0: a skipped
# tier is reported as skipped, never as passed.
dev_venv() {
  venv=.cache/$1/venv
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$2" ]; then
    python3 -m venv --clear "$venv" || exit 1
    # shellcheck disable=SC2086  # the pins are words on purpose
    if ! "$venv/bin/pip" install -q --disable-pip-version-check $2 >"$venv/pip.log" 2>&1; then
      tail -n 3 "$venv/pip.log"
      echo "$3 SKIPPED: could not install $2 (no PyPI?)"
      exit 0
    fi
    echo "$2" > "$venv/.installed"
  fi
}

# `llama_start WHAT [start options]`: start a tools/llama_server.py server and put its base URL in
# $url.  When its pinned packages cannot be installed it prints "WHAT SKIPPED" and returns 2, for
# the caller to end its tier as skipped; a server that does not start fails the calling script.
llama_start() {
  local what=$1 log
  shift
  log=$(mktemp)
  if url=$("${py:-python3}" tools/llama_server.py start "$@" 2>"$log"); then
    rm -f "$log"
    return 0
  fi
  cat "$log" >&2
  if grep -q "could not install" "$log"; then
    rm -f "$log"
    echo "$what SKIPPED: the pinned PyPI packages could not be installed (no PyPI?)"
    return 2
  fi
  rm -f "$log"
  echo "$what FAILED: the llama.cpp server did not start ($*)" >&2
  exit 1
}
