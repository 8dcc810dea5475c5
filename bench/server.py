"""A fast loopback fake of DMR's chat route for benchmarks (development only).

One asyncio process (uvloop when installed) answering every POST with either
a llama.cpp-shaped ``chat.completion`` (Content-Length, keep-alive) or, when
the body asks for ``"stream": true``, ``max_tokens`` chunks of llama.cpp's SSE
framing -- one HTTP chunk per event, ``data: [DONE]``, chunked terminator.

Like a real server (DMR's Go front puts a ``Date`` on every answer), heads and
bodies are not byte-identical from one request to the next: every head has a
``Date`` that changes each second, every answer has its own id and ``created``
time, and the words (so the JSON's length, the Content-Length and the chunk
sizes) vary per request.  A client that remembers what it parsed gets no free
win from a server that repeats itself.

Two ways of writing a stream (``--write``):
  burst  the whole response in one write (a proxy, a buffer or a fast server
         does that; a client then reads many events in one recv())
  token  the head, then one write per SSE event with a yield to the event
         loop between writes (llama.cpp writes each token as it is made)

    python bench/server.py [--port 0] [--write burst|token]   # prints the base URL, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import json
import re
import sys
import time

MODEL = "ai/smollm2"
WORDS = ["Hello", " from", " a", " tiny", " GGUF", " test", " model", "!", " It", " streams",
         " tokens", " of", " different", " lengths", ",", " one", " by", " one", "."]
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
BODY_MB = re.compile(rb'"bench_body_mb"\s*:\s*(\d+)')

_date = [0, b""]   # (second, its HTTP date), formatted once a second


def http_date():
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, email.utils.formatdate(now, usegmt=True).encode()
    return _date[1]


#: llama.cpp's ids are "chatcmpl-" and 32 random characters: a thousand made up front, one per answer in turn.
IDS = ["chatcmpl-" + "".join(ID_CHARS[(n * 7919 + i * 104729) % len(ID_CHARS)] for i in range(32))
       for n in range(1000)]
CHAT_TEMPLATE = (b'{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":%s}}],'
                 b'"created":%d,"model":"' + MODEL.encode() + b'","system_fingerprint":"b0-unknown",'
                 b'"object":"chat.completion","usage":{"completion_tokens":%d,"prompt_tokens":27,'
                 b'"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0}},"id":"%s",'
                 b'"timings":{"prompt_n":27,"prompt_ms":%.3f,"predicted_n":%d,"predicted_ms":%.3f}}')
_count = [0]


def variety():
    """What differs from one answer to the next: (a counter that drives the words, an id, a time)."""
    _count[0] += 1
    n = _count[0]
    return n, IDS[n % len(IDS)], int(time.time())


def chat_response():
    n, ident, created = variety()
    # 1 to 97 words: Content-Length takes more values in a row than dmr_client remembers heads (64),
    # so a repeated head is never what a chat measures (a real model's answers vary as much).
    words = [WORDS[(n + i) % len(WORDS)] for i in range(1 + n % 97)]
    content = json.dumps("".join(words).lstrip()).encode()
    body = CHAT_TEMPLATE % (content, created, len(words), 27 + len(words), ident.encode(),
                            1.479 + n % 97 / 1000, len(words), 1.48 + n % 89 / 1000)
    return (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Date: %s\r\nContent-Length: %d\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n%s"
            % (http_date(), len(body), body))


def stream_head():
    return (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nX-Accel-Buffering: no\r\nContent-Type: text/event-stream\r\n"
            b"Date: %s\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n" % http_date())


#: Each word's delta, JSON-encoded once: a stream is assembled from pieces, cheaply enough that
#: the server stays far faster than any client.
DELTAS = [b'{"content":%s}' % json.dumps(word).encode() for word in WORDS]


def chunked(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


DONE = chunked(b"data: [DONE]\n\n")
END = b"0\r\n\r\n"


#: Where the time and the id go in a cached stream: as long as they are (a time.time() in seconds,
#: llama.cpp's id), so the chunk sizes hold when they are filled in.
MARK = b'@' * 10 + b',"id":"chatcmpl-' + b"#" * 32
_events = {}


def stream_events(count, one_by_one):
    """The HTTP chunks of a stream of *count* chunks (role chunk, count-2 tokens, finish chunk):
    a list of them (*one_by_one*), or a list of one bytes that holds them all.

    The words start at a place that moves with each request; the chunks for each place are made
    once, split where the time and id go, and joined with this answer's own per request: the
    server stays far faster than any client.
    """
    n, ident, created = variety()
    key = (count, n % len(DELTAS))
    events = _events.get(key)
    if events is None:
        before = b'data: {"choices":[{"finish_reason":'
        after = (b',"created":%s","model":"%s","system_fingerprint":"b0-unknown",'
                 b'"object":"chat.completion.chunk"}\n\n' % (MARK, MODEL.encode()))
        token = before + b'null,"index":0,"delta":'
        close = b'}]' + after
        events = [token + b'{"role":"assistant","content":null}' + close]
        events += [token + DELTAS[(key[1] + i) % len(DELTAS)] + close for i in range(max(0, count - 2))]
        events.append(before + b'"stop","index":0,"delta":{}}]' + after)
        events = [chunked(event) for event in events]
        events = _events[key] = ([event.split(MARK) for event in events], b"".join(events).split(MARK))
    fill = b'%d,"id":"%s' % (created, ident.encode())
    if one_by_one:
        return [fill.join(parts) for parts in events[0]]
    return [fill.join(events[1])]


_big = {}


def big_response(megabytes):
    """A chat.completion whose content is *megabytes* MB of text (for peak-memory measurements)."""
    body = _big.get(megabytes)
    if body is None:
        body = _big[megabytes] = json.dumps({
            "choices": [{"finish_reason": "stop", "index": 0,
                         "message": {"role": "assistant", "content": "x" * (megabytes * 1000 * 1000)}}],
            "created": 1795347033, "model": MODEL, "object": "chat.completion", "id": "chatcmpl-big"},
            separators=(",", ":")).encode()
    return (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Date: %s\r\nContent-Length: %d\r\n\r\n" % (http_date(), len(body))) + body


class HTTP(asyncio.Protocol):
    token_writes = False

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.queue = collections.deque()   # answers waiting for a token-by-token stream to be written
        self.writer = None

    def connection_lost(self, exc):
        if self.writer is not None:
            self.writer.cancel()

    def data_received(self, data):
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4:end + 4 + length]
            buffer = buffer[end + 4 + length:]
            if b'"stream":true' in body or b'"stream": true' in body:
                found = MAX_TOKENS.search(body)
                pieces = stream_events(int(found.group(1)) if found else 10, self.token_writes)
                if self.token_writes:
                    self.send([stream_head()] + pieces + [DONE, END], True)
                else:
                    self.send([stream_head() + pieces[0] + DONE + END], False)
            elif b"bench_body_mb" in body:
                self.send([big_response(int(BODY_MB.search(body).group(1)))], False)
            else:
                self.send([chat_response()], False)
        self.buffer = buffer

    def send(self, pieces, one_by_one):
        if self.writer is None and not one_by_one:
            self.transport.write(pieces[0])
            return
        self.queue.append((pieces, one_by_one))
        if self.writer is None:
            self.writer = asyncio.ensure_future(self.write_queue())

    async def write_queue(self):
        """Answers in order; a token-by-token stream is written one event per write, with a
        yield to the event loop between writes (each becomes a send() of its own)."""
        try:
            while self.queue:
                pieces, one_by_one = self.queue.popleft()
                for piece in pieces:
                    if self.transport.is_closing():
                        return
                    self.transport.write(piece)
                    if one_by_one:
                        await asyncio.sleep(0)
        finally:
            self.writer = None


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTP, "127.0.0.1", port, backlog=1024)
    print("http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--write", choices=("burst", "token"), default="burst",
                        help="a stream in one write (burst) or one write per event (token)")
    args = parser.parse_args()
    HTTP.token_writes = args.write == "token"
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
