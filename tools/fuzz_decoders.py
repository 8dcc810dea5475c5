#!/usr/bin/env python3
"""Differential fuzzing of dmr_client's pure decoders (a development and CI tier).

    bash tools/fuzz.sh [SECONDS]    # installs pinned h11 and hypothesis in .cache/fuzz

Two properties, each tried on inputs that hypothesis generates and splits at
random points:

* HTTP/1.1 response framing: the bytes of a response (interim 1xx heads,
  Content-Length, chunked with extensions and trailers, or close-delimited,
  CRLF or bare-LF heads, sometimes with one byte changed, added or dropped)
  go through parse_response_head, body_framing and the body decoders, and
  through h11 0.16, an independent strict implementation.  Both must accept
  the same responses with the same status, headers and body, or both refuse.
* Server-Sent Events: iter_sse over random splits must give exactly the
  events of spec_events(), a direct transcription of the WHATWG rules.

Known, deliberate differences from h11 (the generator knows them and the
comparison allows them): a chunk size followed by spaces with no extension
("1a \\r\\n", which h11 accepts and the RFC does not), chunk sizes of
17 to 20 hex digits (h11 takes up to 20; we refuse more than 16, 2**64 bytes
being no size at all), a folded field line (we unfold it to one space, h11
keeps the blanks that began the next line: both are what RFC 9112 5.2
allows), and a status line whose version is not HTTP/1.0 or
HTTP/1.1 (h11 takes any digit.digit, HTTP/0.1 included; we refuse an answer
that is not HTTP/1.x, which one changed byte of "HTTP/1.1" can make).
"""

from __future__ import annotations

import os
import re
import sys
import time

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dmr_client  # noqa: E402

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~", min_size=1,
                max_size=12)
VALUE = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128))
HEX_CASE = st.sampled_from(["%x", "%X"])


@st.composite
def responses(draw):
    """(raw bytes of one response, how it was framed)."""
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    raw = b""
    for _ in range(draw(st.integers(0, 2))):
        status = draw(st.sampled_from([100, 102, 103]))
        fields = draw(st.lists(st.tuples(TOKEN, VALUE), max_size=2))
        raw += b"HTTP/1.1 %d Info" % status + eol + b"".join(
            n.encode() + b": " + v + eol for n, v in fields) + eol
    status = draw(st.sampled_from([200, 201, 404, 500]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    fields = [(n.encode(), v) for n, v in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=4))
              if n.lower() not in ("content-length", "transfer-encoding", "connection")]
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        fields.append((b"Content-Length", str(len(body)).encode()))
        payload = body
    elif framing == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)]) if b > a]
        payload = b""
        for piece in pieces:
            size = (draw(HEX_CASE) % len(piece)).encode()
            size = b"0" * draw(st.integers(0, 16 - len(size))) + size
            ext = draw(st.sampled_from([b"", b";a", b";a=b", b';name="quoted"']))
            payload += size + ext + b"\r\n" + piece + b"\r\n"
        trailer = b"".join(n.encode() + b": " + v + b"\r\n" for n, v in draw(st.lists(st.tuples(TOKEN, VALUE),
                                                                                       max_size=2)))
        payload += b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n" + trailer + b"\r\n"
    else:
        payload = body
    head = version + b" %d Reason" % status + eol + b"".join(n + b": " + v + eol for n, v in fields) + eol
    raw += head + payload
    if draw(st.booleans()):   # one byte changed, added or dropped, anywhere
        position = draw(st.integers(0, max(0, len(raw) - 1)))
        byte = bytes([draw(st.sampled_from(b"\r\n :;0aZ-\x00\t\xff"))])
        operation = draw(st.sampled_from(["change", "add", "drop"]))
        raw = raw[:position] + (byte if operation != "drop" else b"") + raw[position + (operation != "add"):]
    return raw


def splits(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)]) if b > a]


def ours(pieces):
    """("ok", status, headers, body, complete) through dmr_client's pure pieces, or ("error",)."""
    buffer, head, decoder, body = b"", None, None, []
    try:
        for piece in pieces:
            if decoder is None:
                buffer += piece
                while True:
                    parsed = dmr_client.parse_response_head(buffer)
                    if parsed is None:
                        break
                    head, end = parsed
                    buffer = buffer[end:]
                    if head.status == 101:
                        return ("error",)
                    if not 100 <= head.status < 200:
                        decoder, _ = dmr_client.body_framing(head, "GET")
                        piece = buffer
                        break
                if decoder is None:
                    continue
            if not decoder.done:
                body.append(decoder.feed(piece))
        if decoder is None:
            return ("error",)
        complete = decoder.done or decoder.complete_at_eof()
    except dmr_client.ProtocolError:
        return ("error",)
    fields = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in head.headers.items()]
    return ("ok", head.status, fields, b"".join(body), complete)


def theirs(pieces):
    """The same through h11."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    response, body, complete = None, [], False
    try:
        for piece in pieces + [b""]:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                    break
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    complete = True   # what follows is another message's (or garbage): not this one's
                    break
            if complete:
                break
    except h11.ProtocolError:   # Remote, or Local where h11 builds an event it then refuses (status 0xx)
        return ("error",)
    if response is None:
        return ("error",)
    fields = [(bytes(n), bytes(v)) for n, v in response.headers]
    return ("ok", response.status_code, fields, b"".join(body), complete)


def known_difference(raw):
    """Inputs where dmr_client is deliberately stricter than h11 (see the module docstring)."""
    return bool(re.search(rb"(?m)^[0-9A-Fa-f]+(;[^\r\n]*)?[ \t]+\r$", raw)
                or re.search(rb"(?m)^[0-9A-Fa-f]{17,20}(;[^\r\n]*)?[ \t]*\r$", raw)
                or re.search(rb"(?m)^HTTP/(?!1\.[01] )[0-9]\.[0-9] ", raw))


def unfolded_alike(raw, mine, h11s):
    """A folded field line (obs-fold: OWS CRLF RWS) becomes one space here and CRLF -> space in
    h11; RFC 9112 5.2 allows "one or more SP", so the two agree up to runs of blanks."""
    if not re.search(rb"\n[ \t]", raw):
        return False

    def blanks(result):
        return result[:2] + ([(n, re.sub(rb"[ \t]+", b" ", v)) for n, v in result[2]],) + result[3:]
    return blanks(mine) == blanks(h11s)


BATCH = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@BATCH
@given(responses(), st.lists(st.integers(0, 10 ** 4), max_size=6))
def check_framing(raw, cuts):
    COUNT["framing"] += 1
    pieces = splits(raw, cuts)
    # A body cut short at the end of the input is a failure for both: never an answer.
    mine, h11s = [result if result[-1] is True else ("error",) for result in (ours(pieces), theirs(pieces))]
    if mine[0] == "ok" and h11s[0] == "ok":
        assert mine == h11s or unfolded_alike(raw, mine, h11s), (raw, mine, h11s)
    elif mine[0] != h11s[0] and not (mine[0] == "error" and known_difference(raw)):
        raise AssertionError("dmr_client %s, h11 %s: %r" % (mine[:2], h11s[:2], raw))


def spec_events(data):
    """The WHATWG event-stream rules, transcribed line by line over the whole input (no splits)."""
    text = data.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)
    complete = lines[:-1]   # the last piece has no line end: never processed
    events, data_buffer, event_type, last_id, retry = [], "", "", "", None
    for line in complete:
        if line == "":
            if data_buffer:
                events.append(dmr_client.SSEEvent(event_type or "message", data_buffer[:-1], last_id, retry))
            data_buffer, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data_buffer += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry":
            if value and all(c in "0123456789" for c in value):
                retry = int(value)
    return events


SSE_PIECES = st.sampled_from([b"data", b"data:", b"data: ", b"event:", b"id:", b"retry:", b":", b" ", b"\r", b"\n",
                              b"\r\n", b"x", b"{}", b"5", b"+5", b"\x00", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\xc3",
                              b"\xa9", b"[DONE]", b"Data:", b"ping"])


@BATCH
@given(st.lists(SSE_PIECES, max_size=40), st.lists(st.integers(0, 10 ** 4), max_size=6))
def check_sse(parts, cuts):
    COUNT["sse"] += 1
    data = b"".join(parts)
    got = list(dmr_client.iter_sse(splits(data, cuts)))
    assert got == spec_events(data), (data, got, spec_events(data))


COUNT = {"framing": 0, "sse": 0}

if __name__ == "__main__":
    for check in (check_framing, check_sse):
        stop = time.monotonic() + SECONDS / 2
        while time.monotonic() < stop:   # batches with fresh random seeds until the time is up
            check()
    print("fuzz: %d framings against h11 %s and %d SSE streams against the spec model, in %.0f s: "
          "no difference" % (COUNT["framing"], h11.__version__, COUNT["sse"], SECONDS))
