#!/usr/bin/env python3
"""Re-run each mutant that mutmut reported as surviving, outside mutmut (development only).

    python3 tools/mutation_recheck.py WORKDIR "PYTEST -k EXPRESSION"

mutmut runs a mutant only against the tests its first pass saw calling the
function, and that pass misses some generator methods, so "survived" can mean
"never tried".  For every surviving mutant in WORKDIR/survivors.txt (the
output of `mutmut show`), this plants the same change in a copy of
dmr_client.py (in the named function, where its removed lines are) and runs
the selected unit tests with a time limit: a failing or hanging run kills it.
Prints the mutants that still survive, split into those that only change an
error message's wording and the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

COSMETIC = re.compile(r"XX|\(None\)|ASCII|UTF-8|LATIN-1|[A-Z]{4,} [A-Z]{2,}")


def blocks(text):
    for block in re.split(r"^---- ", text, flags=re.M)[1:]:
        name = block.split("\n", 1)[0].strip()
        lines = block.splitlines()
        minus = [line[1:] for line in lines if line.startswith("-") and not line.startswith("---")]
        plus = [line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")]
        if minus or plus:
            yield name, minus, plus


def function_span(source, name):
    """(start, end) of the function or method that mutant *name* belongs to."""
    mangled = name.split(".", 1)[1].rsplit("__mutmut_", 1)[0]
    parts = [p for p in re.split("ǁ", mangled[1:]) if p] if mangled.startswith("xǁ") else [mangled[2:]]
    if len(parts) == 2:
        start = source.index("\nclass %s" % parts[0])
        start = source.index("    def %s(" % parts[1], start)
    else:
        start = source.index("\ndef %s(" % parts[0])
    following = re.search(r"\n(?=\S|    def |    @)", source[start + 5:])
    return start, start + 5 + (following.start() if following else len(source))


def plant(source, name, minus, plus):
    start, end = function_span(source, name)
    old, new = "\n".join(minus), "\n".join(plus)
    body = source[start:end]
    if old not in body:
        return None
    return source[:start] + body.replace(old, new, 1) + source[end:]


def main():
    work, selection = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = open(os.path.join(root, "dmr_client.py"), encoding="utf-8").read()
    survivors = list(blocks(open(os.path.join(work, "survivors.txt"), encoding="utf-8").read()))
    killed, cosmetic, alive, unplanted = 0, [], [], []
    scratch = tempfile.mkdtemp(prefix="mutants-")
    try:
        for entry in ("test_dmr_client.py", "testdata", "README.md"):   # TestReadme reads README.md
            (shutil.copytree if os.path.isdir(os.path.join(root, entry)) else shutil.copy)(
                os.path.join(root, entry), os.path.join(scratch, entry))
        for name, minus, plus in survivors:
            mutated = plant(source, name, minus, plus)
            if mutated is None:
                unplanted.append(name)
                continue
            with open(os.path.join(scratch, "dmr_client.py"), "w", encoding="utf-8") as f:
                f.write(mutated)
            try:
                run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k",
                                      selection, "test_dmr_client.py"], cwd=scratch, capture_output=True, timeout=120)
                survived = run.returncode == 0
            except subprocess.TimeoutExpired:
                survived = False
            if not survived:
                killed += 1
            elif all(COSMETIC.search(line) for line in plus):
                cosmetic.append(name)
            else:
                alive.append((name, minus, plus))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, minus, plus in alive:
        print("survives:", name)
        for line in minus:
            print("   -", line.strip()[:140])
        for line in plus:
            print("   +", line.strip()[:140])
    print("recheck: of %d reported survivors, %d are killed when run directly, %d only change an error "
          "message's wording, %d survive, %d could not be planted"
          % (len(survivors), killed, len(cosmetic), len(alive), len(unplanted)))


if __name__ == "__main__":
    main()
