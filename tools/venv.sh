# Sourced by the development tiers: `dev_venv NAME "pkg==v ..." WHAT` makes .cache/NAME/venv with
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
