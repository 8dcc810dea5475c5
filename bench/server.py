"""A fast loopback fake of DMR's chat route for benchmarks (development only).

One asyncio process (uvloop when installed) answering every POST with either
a llama.cpp-shaped ``chat.completion`` (Content-Length, keep-alive) or, when
the body asks for ``"stream": true``, ``max_tokens`` chunks of llama.cpp's SSE
framing -- one HTTP chunk per event, ``data: [DONE]``, chunked terminator --
written at once so the client, not the server, is what gets measured.

    python bench/server.py [--port 0]      # prints the base URL, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

CREATED = 1795347033
CHUNK_ID = "chatcmpl-AjrwQLbn136T7j1cBDfV3wchxknP9Otr"
WORDS = ["Hello", " from", " a", " tiny", " GGUF", " test", " model", "!"]
CHAT = json.dumps({
    "choices": [{"finish_reason": "stop", "index": 0,
                 "message": {"role": "assistant", "content": "Hello from a tiny GGUF test model!"}}],
    "created": CREATED, "model": "ai/smollm2", "system_fingerprint": "b0-unknown", "object": "chat.completion",
    "usage": {"completion_tokens": 9, "prompt_tokens": 27, "total_tokens": 36, "prompt_tokens_details": {"cached_tokens": 0}},
    "id": CHUNK_ID, "timings": {"prompt_n": 27, "prompt_ms": 1.479, "predicted_n": 9, "predicted_ms": 1.48},
}, separators=(",", ":")).encode()
CHAT_RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nContent-Type: application/json; charset=utf-8\r\n"
                 b"Content-Length: %d\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n" % len(CHAT)) + CHAT
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nServer: llama.cpp\r\nX-Accel-Buffering: no\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100000\r\n\r\n")
MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
BODY_MB = re.compile(rb'"bench_body_mb"\s*:\s*(\d+)')


def event(delta, finish=None):
    payload = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta}], "created": CREATED,
               "id": CHUNK_ID, "model": "ai/smollm2", "system_fingerprint": "b0-unknown",
               "object": "chat.completion.chunk"}
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def chunked(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


_streams = {}
_big = {}


def big_response(megabytes):
    """A chat.completion whose content is *megabytes* MB of text (for peak-memory measurements)."""
    response = _big.get(megabytes)
    if response is None:
        body = CHAT.replace(b"Hello from a tiny GGUF test model!", b"x" * (megabytes * 1000 * 1000))
        response = _big[megabytes] = CHAT_RESPONSE.split(b"Content-Length")[0] + (
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    return response


def stream_response(n):
    """The whole response for a stream of n chunks (role chunk, n-2 tokens, finish chunk), cached."""
    body = _streams.get(n)
    if body is None:
        parts = [STREAM_HEAD, chunked(event({"role": "assistant", "content": None}))]
        parts += [chunked(event({"content": WORDS[i % len(WORDS)]})) for i in range(max(0, n - 2))]
        parts += [chunked(event({}, "stop")), chunked(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
        body = _streams[n] = b"".join(parts)
    return body


class HTTP(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

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
                self.transport.write(stream_response(int(found.group(1)) if found else 10))
            elif b"bench_body_mb" in body:
                self.transport.write(big_response(int(BODY_MB.search(body).group(1))))
            else:
                self.transport.write(CHAT_RESPONSE)
        self.buffer = buffer


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTP, "127.0.0.1", port, backlog=1024)
    print("http://127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
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
