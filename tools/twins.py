"""Check that dmr_client.py's sync/async twins stay twins (development and CI; standard library).

Where the blocking and the asyncio transport must each have their own function, the two are
written to read the same: the async one is the sync one plus ``async``/``await``.  This check
strips ``async ``, ``await `` and ``# type: ignore[...]`` from each pair listed in TWINS,
ignores docstrings, and fails when any other line differs, apart from the lines ALLOWED names
for that pair (the reason is beside each).  A function that has no twin any more is an error
too: take it out of TWINS.

    python3 tools/twins.py [dmr_client.py]
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import sys

#: (sync, async) pairs that must read the same.
TWINS = [
    ("Client._call", "AsyncClient._call"),
    ("Client._run", "AsyncClient._run"),
    ("Client._send", "AsyncClient._send"),
    ("Client._exchange", "AsyncClient._exchange"),
    ("Client._error_body", "AsyncClient._error_body"),
    ("_Exchange.begin", "_AsyncExchange.begin"),
    ("_Exchange.read_some", "_AsyncExchange.read_some"),
    ("_Exchange.read_body", "_AsyncExchange.read_body"),
    ("_Exchange.drain", "_AsyncExchange.drain"),
]

#: Lines (after stripping) that may differ, per pair: the transport's own read or write call.
ALLOWED = {
    "Client._exchange": [
        r"conn, reused = pool\.take\(\)",                     # the blocking pool hands out a socket
        r"conn = pool\.idle\(\)", r"reused = conn is not None",   # an asyncio pool: idle, else connect
        r"if conn is None:", r"conn = pool\.connect\(\)",
        r"exchange = _(Async)?Exchange\(pool, conn, url, timeout\)",
        r"conn\.sock\.sendall\(message\)",                    # one write of head and body
        r"if conn\.write\(message\):.*", r"conn\.drained\(exchange\.timeout\)",
        r"conn\.sock\.sendall\(piece\)", r"if conn\.write\(piece\):",   # each piece of an upload
        r"asyncio\.sleep\(0\)",   # asyncio: the loop reads what arrived before the next piece is written
        r"if exchange\.answered_before_end\((_has_input\(conn\.sock\)|conn\.has_input\(\))\):",
        r"exchange\.answered_early\(exc, (_has_input\(conn\.sock\)|conn\.has_input\(\)), upload\)",
        r"exchange\.discard\(\)(   # cancelled.*)?",
    ],
    "_Exchange.begin": [
        r"recv = self\.sock\.recv", r"recv, timeout = self\.conn\.recv, self\.timeout",
        r"chunk = recv\((READ_CHUNK|timeout)\)",
        r"except \(ConnectionResetError, ConnectionAbortedError(, BrokenPipeError)?\):",
    ],
    "_Exchange.read_some": [
        r"data = self\._decoded\((self\.sock\.recv\(READ_CHUNK\)|self\.conn\.recv\(self\.timeout\))\)",
    ],
    "_Exchange.read_body": [
        r"declared = self\._declared_too_big\(limit, truncate\)", r"self\._declared_too_big\(limit, truncate\)",
        r"if declared is not None and declared > _BIG_BODY and not truncate:",   # blocking: straight into
        r"return self\._read_length\(declared\)",                                # one buffer (recv_into)
    ],
    "_Exchange.drain": [
        r"sock, decoder = self\.sock, self\.decoder", r"sock\.settimeout\(remaining\)",
        r"raw = sock\.recv\(READ_CHUNK\)", r"raw = self\.conn\.recv\(remaining\)",
        r"while not (self\.)?decoder\.done and budget > 0:",
        r"finally:", r"if not self\.settled:", r"sock\.settimeout\(self\.timeout\)",
        r"except BaseException:", r"self\.discard\(\)", r"raise",
    ],
}


def functions(tree: ast.Module) -> dict:
    """{"Class.method" or "function": node} of the module's top level and its classes."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found["%s.%s" % (node.name, item.name)] = item
    return found


def body_lines(source: str, node: ast.AST) -> list:
    """The function's lines without its docstring, each stripped of async, await and type: ignore."""
    body = node.body
    if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str) and len(body) > 1:
        body = body[1:]   # the docstring: each says which twin it is
    # From the first statement: the signature's names and annotations differ by design.
    lines = source.splitlines()[body[0].lineno - 1:node.end_lineno]
    cleaned = []
    for line in lines:
        line = re.sub(r"\basync ", "", line)
        line = re.sub(r"\bawait ", "", line)
        line = re.sub(r"\s*# type: ignore\[[^\]]*\]", "", line)
        line = line.strip()
        if line:
            cleaned.append(line)
    return cleaned


def check(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    found = functions(ast.parse(source))
    failures = 0
    for sync, asynchronous in TWINS:
        if sync not in found or asynchronous not in found:
            print("twins: %s / %s: not found (take the pair out of TWINS)" % (sync, asynchronous))
            failures += 1
            continue
        allowed = [re.compile(pattern + r"$") for pattern in ALLOWED.get(sync, [])]
        left, right = body_lines(source, found[sync]), body_lines(source, found[asynchronous])
        unexpected = [line for line in difflib.ndiff(left, right)
                      if line[:2] in ("- ", "+ ") and not any(rule.match(line[2:]) for rule in allowed)]
        if unexpected:
            failures += 1
            print("twins: %s and %s differ beyond async/await:" % (sync, asynchronous))
            for line in unexpected:
                print("    " + line)
    if failures:
        print("twins: %d of %d pairs differ (tools/twins.py lists what may)" % (failures, len(TWINS)))
        return 1
    print("twins: %d sync/async pairs read the same apart from async/await" % len(TWINS))
    return 0


if __name__ == "__main__":
    sys.exit(check(sys.argv[1] if len(sys.argv) > 1 else
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dmr_client.py")))
