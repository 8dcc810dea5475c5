"""Tests for dmr_client, grouped by the module's layers.

Everything runs against real sockets: FakeDMR is an in-process Docker Model
Runner on 127.0.0.1 (port 0) that answers like DMR (plain-text errors) and
like llama.cpp behind it (JSON errors, SSE framing copied from
testdata/wire/, captured from a real llama.cpp server), and that can stall,
cut, split bytes and hold events back on command.

Run: python3 -m unittest -v
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import gc
import html
import http.client
import http.server
import json
import logging
import os
import pickle
import asyncio
import atexit
import base64
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import typing
import unittest
import warnings
import urllib.parse
from typing import Any, Dict, List, Literal, NamedTuple, Optional, Tuple, TypedDict, Union
from unittest import mock

import dmr_client
from dmr_client import (AttrDict, Client, SSEDecoder, SSEEvent, iter_sse, normalize_base_url,
                        parse_error_body, parse_retry_after, split_model)

HERE = os.path.dirname(os.path.abspath(__file__))
WIRE = os.path.join(HERE, "testdata", "wire")
MEDIA = os.path.join(HERE, "testdata", "media")   # tiny pictures and sounds, made by its make.py
PHRASE = "Hello from a tiny GGUF test model!"
HI = [{"role": "user", "content": "Hi"}]


def _png(width, height):
    """A real PNG of *width* x *height* black pixels."""
    import zlib

    def block(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + block(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + block(b"IDAT", zlib.compress(rows)) + block(b"IEND", b""))


#: What the fake diffusers engine draws.
TINY_PNG = _png(2, 2)


def load_capture(name: str):
    """(status, headers dict, body bytes) of a raw HTTP capture in testdata/wire."""
    with open(os.path.join(WIRE, name), "rb") as f:
        raw = f.read()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in lines[1:])
    return status, headers, body


def sse_events(name: str):
    """The SSE events of a streamed capture, each as its own bytes ending in a blank line."""
    body = load_capture(name)[2]
    return [part + b"\n\n" for part in body.split(b"\n\n") if part.strip()]


# ---------------------------------------------------------------------------
# Fixtures: the fake DMR
# ---------------------------------------------------------------------------


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


def write_response(handler, status, body=b"", content_type="application/json; charset=utf-8",
                   headers=(), close=False):
    lines = ["HTTP/1.1 %d %s" % (status, http.server.BaseHTTPRequestHandler.responses.get(status, ("X",))[0]),
             "Content-Type: " + content_type, "Content-Length: %d" % len(body)]
    lines += ["%s: %s" % pair for pair in headers]
    if close:
        lines.append("Connection: close")
        handler.close_connection = True
    handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def json_reply(status, obj, headers=(), close=False):
    def respond(handler, request):
        write_response(handler, status, json.dumps(obj).encode(), headers=headers, close=close)
    return respond


def empty_reply(status):
    """DMR's bodiless successes (202 from _configure, 200 to X-Preload-Only)."""
    def respond(handler, request):
        write_response(handler, status, b"", "text/plain; charset=utf-8")
    return respond


def text_reply(status, text, headers=()):
    """DMR's own errors: Go's http.Error, plain text plus a newline."""
    def respond(handler, request):
        write_response(handler, status, (text + "\n").encode(), "text/plain; charset=utf-8",
                       headers=[("X-Content-Type-Options", "nosniff")] + list(headers))
    return respond


def raw_reply(data: bytes, close=True):
    def respond(handler, request):
        handler.wfile.write(data)
        handler.close_connection = close
    return respond


def sse_reply(events, *, chunked=True, piece=None, end="done", gate=None, gate_after=1, delay=0.0,
              before=0.0):
    """Stream *events* (bytes each).

    chunked: HTTP chunked framing, else Connection: close framing.  piece: split
    the body into HTTP chunks of this many bytes.  end: "done" ends the body
    properly, "cut" closes the socket mid-body.  gate: after gate_after events,
    wait until the test sets this threading.Event.  before: seconds before the
    headers (a model load).
    """
    def respond(handler, request):
        if before:
            handler.server.fake.stop.wait(before)
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "X-Accel-Buffering: no"]
        head.append("Transfer-Encoding: chunked" if chunked else "Connection: close")
        handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
        handler.close_connection = not chunked or end != "done"
        for number, event in enumerate(events):
            if gate is not None and number == gate_after:
                gate.wait(10)
            if delay:
                time.sleep(delay)
            pieces = [event] if piece is None else [event[i:i + piece] for i in range(0, len(event), piece)]
            for part in pieces:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked and end == "done":
            handler.wfile.write(b"0\r\n\r\n")
    return respond


def stall(seconds, then=None):
    """Say nothing for *seconds* (a model load), then answer with *then*."""
    def respond(handler, request):
        handler.server.fake.stop.wait(seconds)
        if then is not None:
            then(handler, request)
        else:
            handler.close_connection = True
    return respond


def fitting(schema, root=None, depth=0):
    """The smallest JSON value that fits *schema* (what the fake DMR answers for a schema, as a
    grammar-constrained model would): its const, first enum value or default, its first anyOf /
    oneOf / allOf form, an object of its required properties, minItems items, a string of
    minLength "x"s, a number at its minimum (else 0), false, null; {} (any value) gives null."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 50:
        return None
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#").split("/")[1:]:
            target = target[part]
        return fitting(target, root, depth + 1)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return fitting(schema[key][0], root, depth + 1)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: fitting(properties.get(name, {}), root, depth + 1) for name in schema.get("required") or ()}
    if kind == "array":
        prefix = schema.get("prefixItems") or []
        items = [fitting(sub, root, depth + 1) for sub in prefix]
        while len(items) < (schema.get("minItems") or 0):
            items.append(fitting(schema.get("items") or {}, root, depth + 1))
        return items
    if kind == "string":
        return "x" * (schema.get("minLength") or 0)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return low if kind == "number" else int(low)
    return False if kind == "boolean" else None


def typed_turn(body):
    """(message, finish_reason) of the fake model's turn for a chat body with tools or a schema,
    or None for a plain chat (the fixed phrase).  Tools offered (tool_choice not "none") and no
    ``role: tool`` message yet: one call of each function tool, in one turn, its arguments
    fitting() its parameters (ids ``call_1``, ``call_2`` ...).  Otherwise a schema as llama.cpp
    reads it (``response_format.json_schema.schema``; ``json_object`` with ``schema``): the
    fitting() value as JSON text.  Once a tool message is there (and no schema), the phrase."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    tools = [tool.get("function") for tool in body.get("tools") or () if isinstance(tool, dict)]
    tools = [function for function in tools if isinstance(function, dict) and function.get("name")]
    answered = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
    if tools and not answered and body.get("tool_choice") != "none":
        calls = [{"id": "call_%d" % number, "type": "function",
                  "function": {"name": function["name"],
                               "arguments": json.dumps(fitting(function.get("parameters") or {}) or {})}}
                 for number, function in enumerate(tools, 1)]
        return {"role": "assistant", "content": "", "tool_calls": calls}, "tool_calls"
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    schema = None
    if response_format.get("type") == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
    elif response_format.get("type") == "json_object":
        schema = response_format.get("schema", {"type": "object"})
    if not isinstance(schema, dict):
        return None
    return {"role": "assistant", "content": json.dumps(fitting(schema))}, "stop"


def chat_chunks(model, message, finish, usage):
    """*message* streamed as llama.cpp streams it: a role chunk, the content in pieces of 8
    characters, each tool call in one delta, the finish chunk, usage if asked, [DONE]."""
    def event(delta=None, finish_reason=None, **extra):
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        return b"data: %s\n\n" % json.dumps(dict({"id": "chatcmpl-typed", "created": 1795347033, "model": model,
                                                    "object": "chat.completion.chunk", "choices": choices},
                                                   **extra)).encode()
    content = message.get("content") or ""
    events = [event({"role": "assistant", "content": None})]
    events += [event({"content": content[i:i + 8]}) for i in range(0, len(content), 8)]
    events += [event({"tool_calls": [dict(call, index=index)]})
               for index, call in enumerate(message.get("tool_calls") or ())]
    events.append(event({}, finish))
    if usage:
        events.append(event(usage={"completion_tokens": 9, "prompt_tokens": 27, "total_tokens": 36}))
    return events + [b"data: [DONE]\n\n"]


class _Counting:
    """Counts accepted connections; stays quiet about clients that hang up early."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # clients that hang up early are part of the tests

    def get_request(self):
        conn, addr = super().get_request()
        with self.fake.lock:
            self.fake.connections += 1
        return conn, addr


class _Server(_Counting, http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 256   # concurrency tests connect hundreds at once


class _UnixServer(_Counting, socketserver.ThreadingUnixStreamServer):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.endswith("/models/load"):   # DMR reads a loaded tar as it comes: so does the fake
            return self.server.fake.handle(self, Request(self.command, self.path, self.headers, b""))
        body = self.rfile.read(length) if length else b""
        self.server.fake.handle(self, Request(self.command, self.path, self.headers, body))

    do_GET = do_POST = do_DELETE = _any


STORE = {
    "ai/smollm2": {"id": "sha256:" + "1" * 64, "tags": ["docker.io/ai/smollm2:latest"], "created": 1742816981,
                   "config": {"format": "gguf", "quantization": "Q4_K_M", "parameters": "361.82 M",
                              "architecture": "llama", "size": "256.35 MiB", "context_size": 8192}},
    "ai/mxbai-embed-large": {"id": "sha256:" + "2" * 64, "tags": ["docker.io/ai/mxbai-embed-large:latest"],
                             "created": 1742816982, "config": {"format": "gguf", "size": "638.85 MiB"}},
}
SHARED_ID = "sha256:" + "3" * 64   # an ID two tags point to: deleting it by ID needs force
#: Models in the registry (inspect_model(remote=True)).
REGISTRY = {"ai/gemma3": {"id": "sha256:" + "4" * 64, "tags": ["docker.io/ai/gemma3:latest"], "created": 1742816983,
                          "config": {"format": "gguf", "size": "2.31 GiB"}}}


def model_tar(blob_size=4096, name="ai/smollm2"):
    """An exported model as DMR's tarball target writes it: blobs/sha256/<digest> for the
    weights and the config, then manifest.json, whose sha256 is the model's ID."""
    import hashlib
    import io
    import tarfile

    weights = ((name.encode() + b"\0\x01") * (blob_size // len(name) + 1))[:blob_size]   # as binary as GGUF
    config = json.dumps({"config": {"format": "gguf"}, "name": name}).encode()
    digest = {part: hashlib.sha256(part).hexdigest() for part in (weights, config)}
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + digest[config]},
                           "layers": [{"digest": "sha256:" + digest[weights], "size": blob_size}]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for folder in ("blobs", "blobs/sha256"):
            archive.addfile(_dir_info(folder))
        for part in (weights, config, manifest):
            info = tarfile.TarInfo("manifest.json" if part is manifest else "blobs/sha256/" + digest[part])
            info.size = len(part)
            archive.addfile(info, io.BytesIO(part))
    data = out.getvalue().rstrip(b"\0")
    data += bytes(-len(data) % 512) + bytes(1024)   # Go's archive/tar: two zero blocks, no padding to 10 KiB
    return data, "sha256:" + hashlib.sha256(manifest).hexdigest()


def _dir_info(name):
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


class FakeDMR:
    """Docker Model Runner on 127.0.0.1 (or a Unix socket): DMR's routing and
    plain-text errors in front of llama.cpp's JSON and SSE, plus DMR's own
    model-management API.  Chat answers a fixed phrase, except with tools (a
    call of each tool first) or a json_schema response_format (the smallest JSON
    that fits): see typed_turn().  script(path, r1, r2, ...) makes the next requests to
    *path* get r1, r2, ... (the last one repeats).  *prefix* is stripped from
    request paths first (Docker Desktop's socket serves DMR under /exp/vDD4.40)."""

    INFERENCE = re.compile(r"^(?:/engines(?:/([^/]+))?)?/v1/(chat/completions|completions|embeddings|images/generations|"
                           r"messages/count_tokens|models(?:/(.+))?)$")
    CONFIGURE = re.compile(r"^/engines(?:/([^/]+))?/_configure$")
    #: What DMR's /metrics serves (llama.cpp's counters, relabelled per model).
    METRICS = ('# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n'
               '# TYPE llamacpp:prompt_tokens_total counter\n'
               'llamacpp:prompt_tokens_total{backend="llama.cpp",model="ai/smollm2"} 1234\n'
               'llamacpp:predicted_tokens_seconds{backend="llama.cpp",model="ai/smollm2"} 57.5\n'
               'go_goroutines 42\n')
    RERANK = re.compile(r"^(?:/engines(?:/([^/]+))?)?/rerank$")
    #: DMR's releases (up to v1.2.6) serve the Responses API only here; /engines/.../responses is 404.
    RESPONSES = re.compile(r"^(?:/v1)?/responses(?:/([^/]+)(/input_items)?)?$")

    def __init__(self, models=("ai/smollm2", "ai/mxbai-embed-large"), unix_socket=None, prefix=""):
        self.models = set(models)
        self.prefix = prefix
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.scripts = {}
        self.configs = {}                      # model -> what _configure set
        self.runners = {"ai/smollm2": 0}      # loaded model -> /engines/ps polls left while "loading"
        self.responses = {}                    # id -> (the stored Response, its input items)
        self.diffusers = True                  # the image engine is installed
        self.load_polls = 2                    # polls a new load reports "loading" for
        self.export_size = 4096                # bytes of weights in an exported model's tar
        self.export_fault = None               # "cut" (the body ends mid-way), "error" (DMR's text after it)
        self.load_fault = None                 # "disk full": /models/load fails after 2 MiB, closing
        self.loaded = []                       # (model ID, bytes) of each tar loaded
        if unix_socket:
            self.server = _UnixServer(unix_socket, _Handler)
            self.url = "http://localhost"
        else:
            self.server = _Server(("127.0.0.1", 0), _Handler)
            self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def script(self, path, *responders):
        self.scripts[path] = list(responders)

    def handle(self, handler, request):
        with self.lock:
            self.requests.append(request)
            queue = self.scripts.get(request.path)
            responder = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
        (responder or self.route)(handler, request)

    def route(self, handler, request):
        path = request.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return text_reply(404, "page not found")(handler, request)
            path = path[len(self.prefix):]
        query = ""
        if "?" in path:
            path, query = path.split("?", 1)
        responses = self.RESPONSES.match(path)
        if responses:
            return self.responses_api(handler, request, responses.group(1), responses.group(2))
        inference, rerank = self.INFERENCE.match(path), self.RERANK.match(path)
        if inference or rerank:
            engine = (inference or rerank).group(1)
            if engine is not None and engine not in dmr_client.KNOWN_ENGINES:
                return text_reply(404, "backend not found")(handler, request)
            if inference and inference.group(2).startswith("models"):
                return self.openai_models(handler, request, inference.group(3))
            return self.inference(handler, request, inference.group(2) if inference else "rerank")
        answer = self.management(request, path, query)
        if answer is None:
            known = path.startswith(("/engines/", "/models/"))   # DMR's sub-muxes answer "not found"
            answer = text_reply(404, "not found" if known else "404 page not found")
        answer(handler, request)

    # DMR's Responses API layer, onto the chat completions of llama.cpp

    def responses_api(self, handler, request, response_id, input_items):
        if response_id is not None:
            stored = self.responses.get(response_id)
            if stored is None:
                return json_reply(404, {"error": {"code": "not_found", "message": "response not found"}})(
                    handler, request)
            if request.method == "DELETE":
                del self.responses[response_id]
                return json_reply(200, {"id": response_id, "object": "response", "deleted": True})(handler, request)
            if input_items:
                return json_reply(200, {"object": "list", "data": stored[1]})(handler, request)
            return json_reply(200, stored[0])(handler, request)
        body = request.json if isinstance(request.json, dict) else {}
        model = body.get("model")
        if model not in self.models:
            return json_reply(404, {"error": {"code": "not_found", "message": "model %s not found" % model}})(
                handler, request)
        number = len(self.responses) + 1
        text = PHRASE
        message = {"type": "message", "id": "msg_%d" % number, "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}
        response = {"id": "resp_%d" % number, "object": "response", "created_at": 1795347033, "status": "completed",
                    "model": model, "output": [message],
                    "usage": {"input_tokens": 5, "output_tokens": 9, "total_tokens": 14}}
        items = body.get("input") if isinstance(body.get("input"), list) else [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": body.get("input")}]}]
        self.responses[response["id"]] = (response, items)
        if not body.get("stream"):
            return json_reply(200, response)(handler, request)
        started = dict(response, status="in_progress", output=[], usage=None)
        events = [("response.created", {"response": started}), ("response.in_progress", {"response": started}),
                  ("response.output_item.added", {"output_index": 0, "item": dict(message, content=[])})]
        events += [("response.output_text.delta", {"item_id": message["id"], "output_index": 0, "content_index": 0,
                                                   "delta": word}) for word in re.findall(r"\S+\s*", text)]
        events += [("response.output_text.done", {"item_id": message["id"], "output_index": 0, "content_index": 0,
                                                  "text": text}),
                   ("response.output_item.done", {"output_index": 0, "item": message}),
                   ("response.completed", {"response": response})]
        frames = [b"event: %s\ndata: %s\n\n" % (kind.encode(), json.dumps(dict(fields, type=kind, sequence_number=n))
                                                  .encode()) for n, (kind, fields) in enumerate(events)]
        return sse_reply(frames)(handler, request)

    # llama.cpp behind DMR

    def inference(self, handler, request, kind):
        body = request.json
        if request.method != "POST":
            return text_reply(404, "not found")(handler, request)
        if not isinstance(body, dict):
            return text_reply(400, "invalid request")(handler, request)
        model = body.get("model")
        if not model:
            return text_reply(400, "model is required")(handler, request)
        if model not in self.models:
            return text_reply(404, "error while getting model: get model '\"%s\"': model not found"
                              % model)(handler, request)
        if request.headers.get("X-Preload-Only") == "true":   # DMR: load, answer nothing
            self.runners[model] = 0
            return empty_reply(200)(handler, request)
        if kind == "messages/count_tokens":   # llama.cpp's answer (testdata/wire/count-tokens.http), counting words
            words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            words += len(str(body.get("system", "")).split())
            reply = json.loads(load_capture("count-tokens.http")[2])
            reply["input_tokens"] = words
            return json_reply(200, reply)(handler, request)
        if kind == "images/generations":
            if not self.diffusers:
                return text_reply(412, 'backend "diffusers" is not installed; run: docker model install-runner '
                                  '--backend diffusers')(handler, request)
            data = [{"b64_json": base64.b64encode(TINY_PNG).decode("ascii")} for _ in range(body.get("n") or 1)]
            return json_reply(200, {"created": 1795347033, "data": data})(handler, request)
        if kind == "embeddings":
            if "embed" not in model:
                return json_reply(400, {"error": {"code": 400, "type": "invalid_request_error", "message":
                                  "Pooling type 'none' is not OAI compatible. Please use a different pooling type"}})(handler, request)
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": [float(len(text)), float(i)]}
                    for i, text in enumerate(inputs)]
            if body.get("encoding_format") == "base64":   # as llama.cpp: little-endian float32s
                for item in data:
                    item["embedding"] = base64.b64encode(struct.pack("<%df" % len(item["embedding"]),
                                                                     *item["embedding"])).decode("ascii")
            return json_reply(200, {"object": "list", "model": model, "data": data[::-1],   # out of order
                                    "usage": {"prompt_tokens": 3, "total_tokens": 3}})(handler, request)
        if kind == "rerank":
            scores = [(-len(set(body["query"].split()) & set(d.split())), i) for i, d in enumerate(body["documents"])]
            results = [{"index": i, "relevance_score": float(-score)} for score, i in sorted(scores)]
            return json_reply(200, {"model": model, "object": "list",
                                    "results": results[: body.get("top_n") or len(results)]})(handler, request)
        if kind == "completions":
            reply = json.loads(load_capture("completions.http")[2])
            if body.get("stream"):
                words = ["Hello", " from", " a", " tiny"]
                events = [b"data: " + json.dumps({"choices": [{"text": w, "index": 0, "logprobs": None,
                          "finish_reason": None}], "id": "cmpl-1", "model": model, "object": "text_completion"}).encode()
                          + b"\n\n" for w in words]
                events.append(b"data: " + json.dumps({"choices": [{"text": "", "index": 0, "logprobs": None,
                              "finish_reason": "length"}], "id": "cmpl-1", "model": model,
                              "object": "text_completion"}).encode() + b"\n\n")
                return sse_reply(events + [b"data: [DONE]\n\n"])(handler, request)
            return json_reply(200, reply)(handler, request)
        usage = (body.get("stream_options") or {}).get("include_usage")
        typed = typed_turn(body)
        if typed is not None and body.get("stream"):
            return sse_reply(chat_chunks(model, *typed, usage))(handler, request)
        if body.get("stream"):
            events = sse_events("chat-stream.http" if usage else "chat-stream-no-usage.http")
            events = [e.replace(b'"ai/tiny"', json.dumps(model).encode()) for e in events]
            return sse_reply(events)(handler, request)
        reply = json.loads(load_capture("chat.http")[2])
        reply["model"] = model
        if typed is not None:
            reply["choices"] = [{"index": 0, "message": typed[0], "finish_reason": typed[1]}]
        return json_reply(200, reply)(handler, request)

    def openai_models(self, handler, request, name):
        listing = [{"id": STORE[m]["tags"][0], "object": "model", "created": 1, "owned_by": "docker"}
                   for m in sorted(self.models) if m in STORE]
        if name is None:
            return json_reply(200, {"object": "list", "data": listing})(handler, request)
        name = urllib.parse.unquote(name)
        for model in listing:
            if name in (model["id"], model["id"][len("docker.io/"):].rsplit(":", 1)[0]):
                return json_reply(200, model)(handler, request)
        return text_reply(404, "error while getting model: get model '\"%s\"': model not found" % name)(handler, request)

    # DMR's own API

    def management(self, request, path, query):
        method = request.method
        if path == "/" and method == "GET":
            return text_reply(200, "Docker Model Runner is running")
        if path == "/version" and method == "GET":
            return json_reply(200, {"version": "v1.2.6"})
        if path == "/engines/status" and method == "GET":
            return json_reply(200, {"llama.cpp": "Running: llama.cpp b9879", "vllm": "Not Installed: no GPU"})
        if path == "/engines/ps" and method == "GET":
            running = []
            for name, polls in sorted(self.runners.items()):
                entry = {"backend_name": "llama.cpp", "model_name": name, "mode": "completion"}
                if polls:
                    entry["loading"] = True
                    self.runners[name] = polls - 1
                if name in self.configs and "keep_alive" in self.configs[name]:
                    entry["keep_alive"] = self.configs[name]["keep_alive"]
                running.append(entry)
            return json_reply(200, running)
        if path == "/engines/unload" and method == "POST":
            if not isinstance(request.json, dict):
                return text_reply(400, "invalid request")
            names = request.json.get("models") or []
            for name in names:
                self.runners.pop(name, None)
            return json_reply(200, {"unloaded_runners": len(names) or 3})
        if path == "/engines/df" and method == "GET":
            return json_reply(200, {"models_disk_usage": 2684354560, "default_backend_disk_usage": 104857600})
        if path == "/metrics" and method == "GET":
            return text_reply(200, self.METRICS)
        if path == "/logs" and method == "GET":
            lines = [b"time=1 level=INFO msg=\"Listening\"\n", b"[llama.cpp] server is listening\r\n",
                     b"time=2 level=INFO msg=\"done\""]
            if "no-engines=true" in query:
                lines = [line for line in lines if b"llama.cpp" not in line]
            if "follow=true" in query:
                return sse_reply(lines)   # chunked text, a piece at a time
            return text_reply(200, b"".join(lines).decode())
        if path == "/engines/requests" and method == "GET":
            record = {"id": "r-1", "model": "ai/smollm2", "method": "POST", "url": "/v1/chat/completions",
                      "response_status": 200}
            if "text/event-stream" in (request.headers.get("Accept") or ""):
                return sse_reply([b"event: connected\ndata: {}\n\n",
                                  b"event: new_request\ndata: " + json.dumps(record).encode() + b"\n\n"])
            return json_reply(200, [record] if "model=ai/other" not in query else [])
        configure = self.CONFIGURE.match(path)
        if configure and method == "POST":
            body = request.json
            if not isinstance(body, dict) or not body.get("model"):
                return text_reply(400, "invalid request")
            if body["model"] not in self.models:
                return text_reply(404, "model not found")
            if body["model"] in self.runners:
                return text_reply(409, "runner already active")
            self.configs[body["model"]] = dict(body, backend=configure.group(1) or "llama.cpp")
            self.runners[body["model"]] = self.load_polls   # _configure starts loading in the background
            return empty_reply(202)
        if configure and method == "GET":
            wanted = urllib.parse.parse_qs(query).get("model", [None])[0]
            return json_reply(200, [{"Backend": config["backend"], "Model": name, "ModelID": "sha256:1", "Mode": 0,
                                     "Config": {key: value for key, value in config.items()
                                                if key in ("context-size", "runtime-flags", "llamacpp")}}
                                    for name, config in sorted(self.configs.items()) if wanted in (None, name)])
        if path == "/models" and method == "GET":
            return json_reply(200, [STORE[m] for m in sorted(self.models) if m in STORE])
        if path == "/models/create" and method == "POST":
            return pull_reply(["progress", "success"])
        if path == "/models/load" and method == "POST":
            return self.load
        if path in ("/engines/install-backend", "/engines/uninstall-backend") and method == "POST":
            backend = request.json.get("backend") if isinstance(request.json, dict) else None
            if not backend:
                return text_reply(400, "invalid request: backend is required")
            if backend not in dmr_client.KNOWN_ENGINES:
                return text_reply(404, "backend not found")
            if backend == "diffusers":
                self.diffusers = path.endswith("/install-backend")
            return empty_reply(200)
        if path == "/models/purge" and method == "DELETE":
            self.models.clear()
            return empty_reply(200)
        answer = self.model_action(request, path, query) if path.startswith("/models/") else None
        if answer is not None:
            return answer
        if path.startswith("/models/"):
            name = urllib.parse.unquote(path[len("/models/"):])
            force = query in ("force", "force=true")
            if method == "GET" and query == "remote=true":
                found = REGISTRY.get(name) or STORE.get(name)   # what was pulled came from the registry
                return json_reply(200, found) if found else text_reply(
                    404, "error while getting remote model: model not found")
            if method == "DELETE" and name == SHARED_ID and not force:
                return text_reply(409, "error while deleting model: unable to delete %r (must be forced) "
                                  "due to multiple tag references: resource conflict" % name[:19])
            if method == "DELETE" and name == SHARED_ID:
                return json_reply(200, [{"Untagged": "docker.io/ai/a:latest"}, {"Untagged": "docker.io/ai/b:latest"},
                                        {"Deleted": SHARED_ID}])
            if name not in self.models:
                return text_reply(404, "model not found")
            if method == "GET":
                return json_reply(200, STORE.get(name, {"id": name}))
            if method == "DELETE":
                self.models.discard(name)
                return json_reply(200, [{"Untagged": "docker.io/%s:latest" % name}, {"Deleted": "sha256:x"}])
        return None


    def model_action(self, request, path, query):
        """DMR's actions on a model: the last segment of its path (export, tag, push, repackage)."""
        name, _, action = urllib.parse.unquote(path[len("/models/"):]).rpartition("/")
        if request.method == "GET" and action == "export":
            return self.export(name) if name in self.models else text_reply(
                404, "get model '\"%s\"': model not found" % name)
        if request.method != "POST" or not name:
            return None
        if action not in ("tag", "push", "repackage"):
            return text_reply(404, 'unknown action "%s"' % action)
        if name not in self.models:
            return text_reply(404, "Model not found" if action == "push" else "model not found")
        if action == "tag":
            fields = urllib.parse.parse_qs(query)
            if not fields.get("repo") or not fields.get("tag"):
                return text_reply(400, "missing repo or tag query parameter")
            target = "%s:%s" % (fields["repo"][0], fields["tag"][0])
            self.models.add(target[:-len(":latest")] if target.endswith(":latest") else target)
            return json_reply(201, {"message": "Model tagged successfully with %s" % json.dumps(target),
                                    "target": target})
        if action == "push":
            return pull_reply(["progress", "progress", "success"], mode="push")
        body = request.json if isinstance(request.json, dict) else {}
        if not body.get("target"):
            return text_reply(400, "target is required")
        self.models.add(body["target"])
        return json_reply(201, {"message": "Model repackaged successfully as %s" % json.dumps(body["target"]),
                                "source": name, "target": body["target"]})

    def export(self, name):
        data, _ = model_tar(self.export_size, name)
        if self.export_fault == "error":   # DMR could not finish the tar: http.Error's text after its bytes
            data = data[:len(data) // 2] + b"export model: add layer entry: read: input/output error\n"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Disposition: attachment; "
                b"filename=\"%s.tar\"\r\nTransfer-Encoding: chunked\r\n\r\n" % name.encode())

        def respond(handler, request):
            handler.wfile.write(head)
            cut = len(data) // 2 if self.export_fault == "cut" else None
            try:
                for start in range(0, cut or len(data), 256 * 1024):
                    piece = data[start:min(start + 256 * 1024, cut or len(data))]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if cut:
                    handler.close_connection = True
                    return
                handler.wfile.write(b"0\r\n\r\n")
            except OSError:
                handler.close_connection = True
        return respond

    def load(self, handler, request):
        """POST /models/load: the tar read as it comes, the model named by its manifest's sha256;
        one success line, no Content-Type (as DMR)."""
        import hashlib
        import tarfile

        left = int(request.headers.get("Content-Length") or 0)

        class Body:
            def read(self, size=-1):
                nonlocal left
                data = handler.rfile.read(left if size < 0 else min(size, left)) if left else b""
                left -= len(data)
                return data
        digest, total = None, 0
        try:
            with tarfile.open(fileobj=Body(), mode="r|") as archive:
                for member in archive:
                    source = archive.extractfile(member) if member.isreg() else None
                    hasher = hashlib.sha256()
                    while source is not None:
                        piece = source.read(1 << 16)
                        if not piece:
                            break
                        total += len(piece)
                        hasher.update(piece)
                        if self.load_fault and total > 2 << 20:
                            handler.close_connection = True
                            return text_reply(500, "error while loading model: writing blob: %s"
                                              % self.load_fault)(handler, request)
                    if member.name == "manifest.json":
                        digest = "sha256:" + hasher.hexdigest()
        except tarfile.TarError:
            handler.close_connection = True
            return text_reply(500, "error while loading model: reading blob from stream: archive/tar: invalid "
                              "tar header")(handler, request)
        if digest is None:
            return text_reply(500, "error while loading model: read manifest: manifest not found")(handler, request)
        self.loaded.append((digest, total))
        self.models.add(digest)
        line = b'{"type":"success","message":"Model loaded successfully","total":0,"layer":{"size":0,"current":0},' \
               b'"mode":"pull"}\n'
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))


def pull_reply(kinds, *, escape=None, trailing=None, chunked=True, gate=None, cancelled=None, mode="pull"):
    """DMR's pull progress: one JSON line per entry of *kinds* (progress, warning,
    success, error).  DMR HTML-escapes lines unless the request said exactly
    Accept: application/json (escape=None follows that rule).  *trailing* is a
    plain-text line after the JSON ones; *cancelled* is set when the client hangs up."""
    def respond(handler, request):
        do_escape = escape if escape is not None else request.headers.get("Accept") != "application/json"
        lines = []
        total = 3 * 1024 * 1024
        for number, kind in enumerate(kinds):
            event = {"type": kind, "message": "", "total": total, "mode": mode,
                     "layer": {"id": "sha256:abc", "size": total, "current": min(total, (number + 1) * 1024 * 1024)}}
            if kind == "success":
                event.update(message="Model %sed successfully" % mode, total=0, layer={"size": 0, "current": 0})
            elif kind == "warning":
                event["message"] = "disk is \"almost\" full"
            elif kind == "error":
                event["message"] = "Error: registry said <no>"
            else:
                event["message"] = "Downloaded: %d.00 MB" % (number + 1)
            line = json.dumps(event)
            if do_escape:
                line = html.escape(line)
            lines.append(line.encode() + b"\n")
        if trailing:
            lines.append(trailing.encode() + b"\n")
        content_type = "text/plain; charset=utf-8" if do_escape else "application/json"
        head = ["HTTP/1.1 200 OK", "Content-Type: " + content_type, "Cache-Control: no-cache"]
        head.append("Transfer-Encoding: chunked" if chunked else "Connection: close")
        handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
        handler.close_connection = not chunked
        try:
            for line in lines:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line) if chunked else line)
            if gate is not None:   # keep reporting progress until the client hangs up
                for _ in range(200):
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(lines[0]), lines[0]))
                    time.sleep(0.01)
            elif chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            handler.close_connection = True
            if cancelled is not None:
                cancelled.set()
    return respond


class LoopThread:
    """An asyncio event loop running in a thread of its own, until close()."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, awaitable, timeout=120):
        async def wrapped():
            return await awaitable
        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def close(self):
        if self.loop.is_closed():
            return
        self.run(self.loop.shutdown_asyncgens())   # what asyncio.run() does: closes the pools' guards
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class BlockingAsyncClient:
    """An AsyncClient behind Client's blocking interface, on a LoopThread of its own.

    It lets every behaviour test run for both clients: each call is the
    AsyncClient's coroutine, run to its end on the loop; a stream becomes a
    BlockingAsyncStream.  Only the calling convention is translated.
    """

    def __init__(self, *args, **kwargs):
        self._runner = LoopThread()
        try:
            self._client = dmr_client.AsyncClient(*args, **kwargs)
        except BaseException:
            self._runner.close()
            raise

    def __getattr__(self, name):
        value = getattr(self._client, name)
        if name.startswith("_") or not callable(value):
            return value

        def call(*args, **kwargs):
            if self._runner.loop.is_closed():   # used after close(): on a loop of its own
                return asyncio.run(value(*args, **kwargs))
            result = self._runner.run(value(*args, **kwargs))
            if isinstance(result, dmr_client._AsyncStreamed):
                return BlockingAsyncStream(self._runner, result)
            return result
        return call

    def __setattr__(self, name, value):
        if name in ("_runner", "_client"):
            object.__setattr__(self, name, value)
        elif name == "_sleep":
            async def sleep(seconds):
                value(seconds)
            self._client._sleep = sleep
        else:
            setattr(self._client, name, value)

    def __repr__(self):
        return repr(self._client)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if not self._runner.loop.is_closed():
            self._runner.run(self._client.aclose())
            self._runner.close()


class BlockingAsyncStream:
    """An AsyncStream or AsyncPullStream behind the blocking stream interface."""

    def __init__(self, runner, stream):
        self._runner = runner
        self._stream = stream

    def __getattr__(self, name):
        value = getattr(self._stream, name)
        if name in ("final", "text", "wait"):
            return lambda: self._runner.run(value())
        return value

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._runner.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __repr__(self):
        return repr(self._stream)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._runner.run(self._stream.aclose())


class BlockingProxy:
    """An object of the asyncio surface (an AsyncOpenAI, its resources) behind the blocking one:
    a call whose result is awaitable is run to its end on the loop, streams become
    BlockingAsyncStream, and what a result holds is proxied the same way."""

    def __init__(self, runner, target):
        self._runner = runner
        self._target = target

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if callable(value) and not isinstance(value, type):
            def call(*args, **kwargs):
                result = value(*args, **kwargs)
                if hasattr(result, "__await__"):
                    result = self._runner.run(result)
                return blocking(self._runner, result)
            return call
        return blocking(self._runner, value)


def blocking(runner, value):
    if isinstance(value, dmr_client._AsyncStreamed):
        return BlockingAsyncStream(runner, value)
    if isinstance(value, (dmr_client._Resource, dmr_client._Chat, dmr_client._Beta, dmr_client.RawResponse)):
        return BlockingProxy(runner, value)
    return value


class BlockingAsyncOpenAI(BlockingProxy):
    """An AsyncOpenAI behind OpenAI's blocking interface, on a LoopThread of its own."""

    def __init__(self, runner=None, target=None, **kwargs):
        super().__init__(runner or LoopThread(), target)
        if target is None:
            try:
                self._target = dmr_client.AsyncOpenAI(**kwargs)
            except BaseException:
                self._runner.close()
                raise
        self._owner = runner is None

    def with_options(self, **kwargs):
        return BlockingAsyncOpenAI(self._runner, self._target.with_options(**kwargs))

    def close(self):
        if self._owner and not self._runner.loop.is_closed():
            self._runner.run(self._target.close())
            self._runner.close()


#: The slow tier (subprocesses, stalls waited out, 11 MiB uploads): tools/slow_tests.sh runs it, and
#: .ci/run runs that; the README's test command stays under a minute without it.
SLOW_TIER = unittest.skipUnless(os.environ.get("DMR_SLOW_TESTS") == "1",
                                "slow tier: bash tools/slow_tests.sh (DMR_SLOW_TESTS=1) runs it")


def for_both_clients(cls):
    """Run the test class for Client and, as <name>Async, for AsyncClient (BlockingAsyncClient;
    a class of OpenAI tests names its async stand-in as ``async_client``)."""
    name = cls.__name__ + "Async"
    variant = type(name, (cls,), {"make_client": cls.__dict__.get("async_client", BlockingAsyncClient),
                                  "__qualname__": name,
                                  "__doc__": (cls.__doc__ or "") + " (AsyncClient)"})
    variant.__module__ = cls.__module__
    globals()[name] = variant
    return cls


def sync_only(test):
    """A test of the blocking transport's own machinery, which AsyncClient does not have."""
    def run(self, *args, **kwargs):
        if self.make_client is not Client:
            self.skipTest("tests the blocking transport")
        return test(self, *args, **kwargs)
    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


class FakeDMRTestCase(unittest.TestCase):
    """A fresh FakeDMR per test, and a Client whose retry sleeps are recorded, not slept."""

    make_client = Client

    def setUp(self):
        self.fake = FakeDMR()
        self.addCleanup(self.fake.close)
        self.sleeps = []

    def client(self, base_url=None, **kwargs):
        client = self.make_client(self.fake.url if base_url is None else base_url, **kwargs)
        client._sleep = self.sleeps.append
        self.addCleanup(client.close)
        return client

    @property
    def last(self):
        return self.fake.requests[-1]


def in_threads(count, work):
    """Run work() in *count* threads at once; return the exceptions they raised."""
    errors = []

    def run():
        try:
            work()
        except Exception as exc:  # collected for the test to assert on
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return errors


def text_of(stream):
    return "".join(choice.delta.get("content") or "" for chunk in stream for choice in chunk.choices)


# ---------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------


class TestDefaults(unittest.TestCase):
    def test_all_names_exist(self):
        for name in dmr_client.__all__:
            self.assertTrue(hasattr(dmr_client, name), name)

    def test_documented_defaults(self):
        self.assertEqual(dmr_client.DEFAULT_BASE_URL, "http://localhost:12434")
        self.assertEqual(dmr_client.DEFAULT_ENGINE, "llama.cpp")
        self.assertEqual(dmr_client.DEFAULT_API_KEY, "dummy-key")
        self.assertEqual(set(dmr_client.KNOWN_ENGINES), {"llama.cpp", "vllm", "mlx", "sglang", "diffusers"})
        self.assertRegex(dmr_client.__version__, r"^\d+\.\d+\.\d+")

    def test_import_defers_http_client_and_logging(self):
        code = ("import sys, dmr_client\n"
                "assert 'logging' not in sys.modules, 'dmr_client imported logging'\n"
                "assert 'http.client' not in sys.modules, 'dmr_client imported http.client'\n"
                "assert 'ssl' not in sys.modules, 'dmr_client imported ssl'\n"
                "dmr_client.Client('http://127.0.0.1:9')\n"
                "assert 'http.client' in sys.modules, 'a Client needs http.client'\n"
                "import logging, io\n"
                "stream = io.StringIO()\n"
                "logging.basicConfig(level=logging.DEBUG, stream=stream)\n"
                "dmr_client._log.debug('found %s', 'late')\n"
                "assert 'found late' in stream.getvalue(), stream.getvalue()\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_user_agent_is_ours_not_the_docker_cli(self):
        self.assertTrue(dmr_client.USER_AGENT.startswith("dmr-client/"))
        self.assertNotIn("docker-model-cli", dmr_client.USER_AGENT)


def banners_of(path):
    """The section banners of a source file, in order: a line '# Name' between two rules."""
    with open(path, encoding="utf-8") as source:
        return re.findall(r"^# -{75}\n# (.+)\n# -{75}$", source.read(), re.M)


class TestModuleMap(unittest.TestCase):
    """The map at the top of dmr_client.py is the list of its section banners, and the
    sections and classes stay small enough to find one's way in."""

    MODULE = os.path.join(HERE, "dmr_client.py")

    def map_names(self):
        block = dmr_client.__doc__.split("in this order (a test holds the two together):\n\n", 1)[1]
        return re.findall(r"^    (\S.*?)(?: {2,}|$)", block.split("\n\n", 1)[0], re.M)

    def test_the_map_names_every_banner_in_order(self):
        self.assertEqual(self.map_names(), banners_of(self.MODULE))

    def test_sections_and_classes_keep_to_their_budget(self):
        import ast

        with open(self.MODULE, encoding="utf-8") as source:
            text = source.read()
        starts = [text[:match.start()].count("\n") for match in re.finditer(r"^# -{75}\n# .+\n# -{75}$", text, re.M)]
        ends = starts[1:] + [text.count("\n")]
        sizes = {name: end - start for name, start, end in zip(banners_of(self.MODULE), starts, ends)}
        self.assertEqual({name: size for name, size in sizes.items() if size > 750}, {})
        classes = {node.name: node.end_lineno - node.lineno + 1 for node in ast.parse(text).body
                   if isinstance(node, ast.ClassDef)}
        self.assertEqual({name: size for name, size in classes.items() if size > 450}, {})

    def test_the_test_file_follows_the_map(self):
        """Its banners are its fixtures, the module's sections in the module's order, then its tiers."""
        sections = banners_of(self.MODULE)
        mine = banners_of(__file__)
        fixtures = [name for name in mine if name.startswith("Fixtures")]
        tiers = [name for name in mine if " tier" in name]
        middle = [name for name in mine if name not in fixtures and name not in tiers]
        self.assertEqual(mine, fixtures + middle + tiers)
        self.assertEqual(middle, [name for name in sections if name in middle], "not the module's order")
        self.assertEqual([name for name in middle if name not in sections], [], "not a section of the module")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class TestErrorClasses(unittest.TestCase):
    def test_hierarchy(self):
        d = dmr_client
        for cls in (d.APIConnectionError, d.APIStatusError, d.StreamError, d.InvalidResponseError, d.SSEError):
            self.assertTrue(issubclass(cls, d.DMRError), cls)
        self.assertTrue(issubclass(d.APITimeoutError, d.APIConnectionError))
        for cls in (d.BadRequestError, d.AuthenticationError, d.PermissionDeniedError, d.NotFoundError,
                    d.ConflictError, d.UnprocessableEntityError, d.RateLimitError, d.InternalServerError):
            self.assertTrue(issubclass(cls, d.APIStatusError), cls)

    def test_openai_python_names(self):
        d = dmr_client
        self.assertIs(d.OpenAIError, d.DMRError)
        self.assertIs(d.APIResponseValidationError, d.InvalidResponseError)
        for cls in (d.APIConnectionError, d.APITimeoutError, d.ProtocolError, d.APIStatusError, d.StreamError,
                    d.InvalidResponseError, d.BadRequestError, d.InternalServerError):
            self.assertTrue(issubclass(cls, d.APIError), cls)
        for cls in (d.PullError, d.SSEError):
            self.assertFalse(issubclass(cls, d.APIError), cls)
        error = d.APIConnectionError("cut")
        self.assertEqual((error.message, error.body, error.code, error.type, error.param, error.request),
                         ("cut", None, None, None, None, None))

    def test_status_error_message_names_url_and_hint(self):
        error = dmr_client.NotFoundError("model not found", status_code=404, body="model not found\n",
                                         url="http://h/x", hint="pull it")
        self.assertEqual(error.message, "model not found")
        self.assertEqual(str(error), "HTTP 404 from http://h/x: model not found -- pull it")


# ---------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------


class TestAttrDict(unittest.TestCase):
    def setUp(self):
        self.reply = json.loads(load_capture("chat.http")[2], object_pairs_hook=AttrDict)

    def test_attribute_and_item_access_agree(self):
        self.assertEqual(self.reply.choices[0].message.content, PHRASE)
        self.assertEqual(self.reply["choices"][0]["message"]["content"], PHRASE)
        self.assertIsInstance(self.reply, dict)

    def test_missing_attribute_raises_attribute_error(self):
        with self.assertRaises(AttributeError) as caught:
            _ = self.reply.choices[0].message.tool_calls
        self.assertIn("tool_calls", str(caught.exception))
        self.assertIsNone(getattr(self.reply, "nope", None))

    def test_serialises_copies_and_pickles_as_a_dict(self):
        self.assertEqual(json.loads(json.dumps(self.reply)), self.reply)
        self.assertEqual(copy.deepcopy(self.reply), self.reply)
        again = pickle.loads(pickle.dumps(self.reply))
        self.assertEqual(again.choices[0].message.content, PHRASE)

    def test_dir_lists_keys(self):
        self.assertIn("choices", dir(self.reply))


RESULT_TYPES = [getattr(dmr_client, name) for name in (
    "ChatCompletion", "Choice", "ChatCompletionMessage", "ChatCompletionMessageToolCall", "FunctionCall",
    "ChoiceLogprobs", "ChatCompletionTokenLogprob", "TopLogprob", "CompletionUsage", "ChatCompletionChunk",
    "ChunkChoice", "ChoiceDelta", "ChoiceDeltaToolCall", "ChoiceDeltaFunctionCall", "TextCompletion",
    "TextCompletionChunk", "CompletionChoice", "CreateEmbeddingResponse", "Embedding", "EmbeddingUsage", "Model",
    "Response", "ResponseOutputItem", "ResponseOutputText", "ResponseUsage", "ResponseStreamEvent")]


class TestResultTypes(unittest.TestCase):
    """The typed results: openai-python's names, a declared field the server left out reads as
    None, anything else still raises; plain dicts of what was sent underneath."""

    def test_every_declared_field_absent_reads_as_none(self):
        for cls in RESULT_TYPES:
            with self.subTest(cls.__name__):
                value = cls()
                self.assertTrue(cls._fields)
                for name in cls._fields:
                    self.assertIsNone(getattr(value, name), name)
                with self.assertRaisesRegex(AttributeError, "%s has no key 'not_a_field'" % cls.__name__):
                    _ = value.not_a_field
                self.assertEqual(set(value.model_dump()), set(cls._fields))
                self.assertEqual(value.to_dict(), {})

    def test_children_are_typed_when_read(self):
        chunk = dmr_client._typed(dmr_client.loads(
            '{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,'
            '"function":{"name":"f"}}]}}],"timings":{"predicted_n":3}}'), dmr_client.ChatCompletionChunk)
        delta = chunk.choices[0].delta
        self.assertEqual((type(chunk.choices[0]).__name__, type(delta).__name__), ("ChunkChoice", "ChoiceDelta"))
        self.assertEqual((delta.content, delta.role, chunk.usage, chunk.choices[0].finish_reason),
                         (None, "assistant", None, None))
        call = delta.tool_calls[0]
        self.assertEqual((call.id, call.function.name, call.function.arguments), (None, "f", None))
        self.assertEqual(chunk.timings.predicted_n, 3)   # what the server adds stays readable
        with self.assertRaises(AttributeError):
            _ = chunk.timings.nope   # not a typed result: nothing is declared there

    def test_dumps_are_plain_json(self):
        reply = dmr_client.ChatCompletion(dmr_client.loads(
            '{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
            '"finish_reason":"stop"}]}'))
        plain = reply.to_dict()
        self.assertEqual(plain, {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                                         "finish_reason": "stop"}]})
        self.assertIs(type(plain["choices"][0]), dict)
        dumped = reply.model_dump()
        self.assertEqual((dumped["usage"], dumped["choices"][0]["message"]["tool_calls"],
                          dumped["choices"][0]["logprobs"]), (None, None, None))
        self.assertNotIn("usage", reply.model_dump(exclude_none=True))
        self.assertEqual(json.loads(reply.to_json()), plain)
        self.assertEqual(json.loads(reply.model_dump_json(indent=2)), dumped)
        self.assertEqual(json.loads(json.dumps(reply)), plain)

    def test_typed_results_copy_and_pickle_as_themselves(self):
        reply = dmr_client.ChatCompletion.timed(dmr_client.loads('{"choices":[{"index":0,"message":{}}]}'), 1.5)
        self.assertIsNone(reply.choices[0].message.content)   # typed on read
        for again in (pickle.loads(pickle.dumps(reply)), copy.deepcopy(reply), copy.copy(reply)):
            self.assertIs(type(again), dmr_client.ChatCompletion)
            self.assertEqual((again, again.elapsed, again.usage), (reply, 1.5, None))
            self.assertIsNone(again.choices[0].message.content)




# ---------------------------------------------------------------------------
# Pure rules: SSE
# ---------------------------------------------------------------------------


def parse_all(data: bytes, piece=None):
    chunks = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
    return list(iter_sse(chunks))


def ev(data, event="message", id="", retry=None):
    return SSEEvent(event, data, id, retry)


class TestSSERules(unittest.TestCase):
    """WHATWG HTML 9.2.6, case by case; every case also fed one byte at a time and in threes."""

    CASES = [
        ("simple", b"data: hello\n\n", [ev("hello")]),
        ("no space after colon", b"data:hello\n\n", [ev("hello")]),
        ("only one leading space removed", b"data:  two\n\n", [ev(" two")]),
        ("tab is kept", b"data:\tx\n\n", [ev("\tx")]),
        ("multi-line data joined with LF", b"data: a\ndata: b\n\n", [ev("a\nb")]),
        ("empty data lines kept", b"data\ndata:\ndata: x\n\n", [ev("\n\nx")]),
        ("data alone is an empty event", b"data\n\n", [ev("")]),
        ("event type", b"event: add\ndata: 1\n\n", [ev("1", event="add")]),
        ("empty event type means message", b"event:\ndata: 1\n\n", [ev("1")]),
        ("type does not carry over", b"event: a\ndata: 1\n\ndata: 2\n\n", [ev("1", event="a"), ev("2")]),
        ("comments ignored", b": keep-alive\ndata: x\n: again\n\n", [ev("x")]),
        ("comment-only frame dispatches nothing", b": ping\n\n", []),
        ("a comment between data lines never dispatches", b"data: a\n: ping\ndata: b\n\n", [ev("a\nb")]),
        ("a bare colon is a comment too", b"data: a\n:\ndata: b\n\n", [ev("a\nb")]),
        ("a comment keeps the event type", b"event: add\n: ping\ndata: 1\n\n", [ev("1", event="add")]),
        ("event without data dispatches nothing", b"event: ping\n\ndata: x\n\n", [ev("x")]),
        ("id persists across events", b"id: 7\ndata: a\n\ndata: b\n\n", [ev("a", id="7"), ev("b", id="7")]),
        ("id frame alone dispatches nothing but sets id", b"id: 3\n\ndata: a\n\n", [ev("a", id="3")]),
        ("empty id resets", b"id: 1\ndata: a\n\nid\ndata: b\n\n", [ev("a", id="1"), ev("b", id="")]),
        ("id with NUL ignored", b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [ev("a", id="1"), ev("b", id="1")]),
        ("retry digits", b"retry: 3000\ndata: a\n\n", [ev("a", retry=3000)]),
        ("retry leading zeros", b"retry: 007\ndata: a\n\n", [ev("a", retry=7)]),
        ("retry rejects sign, space, underscore, junk",
         b"retry: +5\nretry:  5\nretry: 1_0\nretry: 5x\nretry: -1\nretry: 1.5\nretry:\ndata: a\n\n", [ev("a")]),
        ("retry persists", b"retry: 5\ndata: a\n\ndata: b\n\n", [ev("a", retry=5), ev("b", retry=5)]),
        ("unknown and mis-cased fields ignored", b"Data: no\ndata : no\nfoo: bar\ndata: yes\n\n", [ev("yes")]),
        ("CRLF", b"data: a\r\ndata: b\r\n\r\n", [ev("a\nb")]),
        ("CR only", b"data: a\rdata: b\r\r", [ev("a\nb")]),
        ("mixed endings", b"data: a\r\n\rdata: b\n\r\n", [ev("a"), ev("b")]),
        ("BOM stripped once", b"\xef\xbb\xbfdata: a\n\n", [ev("a")]),
        ("second BOM is text", b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [ev("b")]),
        ("U+2028, U+2029 and NEL are not line ends",
         "data: a\u2028b\u2029c\u0085d\n\n".encode(), [ev("a\u2028b\u2029c\u0085d")]),
        ("multi-byte UTF-8", "data: Grüße 👋 你好\n\n".encode(), [ev("Grüße 👋 你好")]),
        ("invalid UTF-8 becomes U+FFFD", b"data: \xff\n\n", [ev("\ufffd")]),
        ("invalid UTF-8 in a type or an id too", b"event: a\xff\nid: \xfe1\ndata: x\n\n", [ev("x", event="a\ufffd", id="\ufffd1")]),
        ("incomplete event at EOF discarded", b"data: a\n\ndata: b\n", [ev("a")]),
        ("unterminated line at EOF discarded", b"data: a\n\ndata: b", [ev("a")]),
        ("blank lines between events", b"\n\n\ndata: a\n\n\n\n", [ev("a")]),
        ("JSON with escaped blank line", b'data: {"t":"a\\n\\nb"}\n\n', [ev('{"t":"a\\n\\nb"}')]),
    ]

    def test_cases_whole_and_split(self):
        for name, data, expected in self.CASES:
            for piece in (None, 1, 2, 3, 7):
                with self.subTest(name, piece=piece):
                    self.assertEqual(parse_all(data, piece), expected)

    def test_crlf_split_exactly_between_cr_and_lf(self):
        self.assertEqual(list(iter_sse([b"data: a\r", b"\n", b"\r", b"\ndata: b\r\n\r\n"])), [ev("a"), ev("b")])

    def test_captured_llama_cpp_stream(self):
        body = load_capture("chat-stream.http")[2]
        for piece in (None, 1, 64):
            events = parse_all(body, piece)
            self.assertEqual(len(events), 12)
            self.assertEqual(events[-1].data, "[DONE]")
            deltas = [json.loads(e.data)["choices"] for e in events[:-1]]
            self.assertEqual("".join(c[0]["delta"].get("content") or "" for c in deltas if c), PHRASE)

    def test_each_event_is_yielded_before_the_next_chunk_is_read(self):
        asked = []

        def chunks():
            for chunk in (b"data: one\n\n", b"data: two\n\n"):
                asked.append(chunk)
                yield chunk

        events = iter_sse(chunks())
        self.assertEqual(next(events).data, "one")
        self.assertEqual(len(asked), 1)

    def test_decoder_feed_returns_completed_events_only(self):
        decoder = SSEDecoder()
        self.assertEqual(decoder.feed(b"data: a"), [])
        self.assertEqual(decoder.feed(b"bc\n"), [])
        self.assertEqual(decoder.feed(b"\n"), [ev("abc")])

    def test_a_line_that_never_ends_is_bounded(self):
        decoder = SSEDecoder(max_event_bytes=1000)
        decoder.feed(b"data: " + b"x" * 900)
        with self.assertRaises(dmr_client.SSEError) as caught:
            decoder.feed(b"x" * 200)
        self.assertIn("1000 bytes", str(caught.exception))

    def test_the_limits_are_exact(self):
        decoder = SSEDecoder(max_event_bytes=100)   # an event's data counts its bytes and a newline per line
        self.assertEqual(decoder.feed(b"data: " + b"x" * 99 + b"\n\n" + b"data: " + b"y" * 99 + b"\n\n"),
                         [ev("x" * 99), ev("y" * 99)])
        self.assertEqual(decoder.feed(b"data: " + b"a" * 49 + b"\ndata:" + b"b" * 49 + b"\n\n"),
                         [ev("a" * 49 + "\n" + "b" * 49)])
        with self.assertRaises(dmr_client.SSEError):
            SSEDecoder(max_event_bytes=100).feed(b"data: " + b"x" * 100 + b"\n\n")
        with self.assertRaises(dmr_client.SSEError):
            SSEDecoder(max_event_bytes=100).feed(b"data: " + b"a" * 50 + b"\ndata: " + b"b" * 49 + b"\n\n")
        decoder = SSEDecoder(max_event_bytes=100)   # a line in pieces: its bytes so far, counted afresh per line
        self.assertEqual(decoder.feed(b"data: " + b"x" * 40), [])
        self.assertEqual(decoder.feed(b"x\n\n"), [ev("x" * 41)])
        self.assertEqual(decoder.feed(b"data: " + b"z" * 94), [])
        self.assertEqual(decoder.feed(b"\n\n"), [ev("z" * 94)])
        with self.assertRaises(dmr_client.SSEError):
            decoder.feed(b"data: " + b"z" * 95)

    def test_an_event_that_never_ends_is_bounded(self):
        decoder = SSEDecoder(max_event_bytes=1000)
        with self.assertRaises(dmr_client.SSEError):
            for _ in range(100):
                decoder.feed(b"data: " + b"x" * 50 + b"\n")

    def test_a_big_line_within_the_limit_parses(self):
        line = b"data: " + b"y" * (4 * 1024 * 1024) + b"\n\n"
        events = parse_all(line, 64 * 1024)
        self.assertEqual(len(events[0].data), 4 * 1024 * 1024)

    def test_str_input_is_refused_with_advice(self):
        with self.assertRaises(TypeError) as caught:
            list(iter_sse(["data: x\n\n"]))
        self.assertIn("encode", str(caught.exception))

    def test_extra_fields_report_llama_cpp_legacy_errors(self):
        decoder = SSEDecoder(extra_fields=("error",))
        self.assertEqual(decoder.feed(b'error: {"message":"boom"}\n'), [ev('{"message":"boom"}', event="error")])
        self.assertEqual(SSEDecoder().feed(b'error: {"message":"boom"}\n\n'), [])
        self.assertEqual(decoder.feed(b"error: \xffx\n"), [ev("\ufffdx", event="error")])


# ---------------------------------------------------------------------------
# Pure rules: framing
# ---------------------------------------------------------------------------


class TestChunkedDecoder(unittest.TestCase):
    BODY = (b"1ea\r\n" + b"x" * 0x1ea + b"\r\n" + b"5;ext=1\r\nhello\r\n" + b"3\r\nabc\r\n"
            + b"0\r\nX-Trailer: yes\r\n\r\n")

    def decode(self, data, piece=None):
        decoder = dmr_client.ChunkedDecoder()
        pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
        out = b"".join(decoder.feed(p) for p in pieces)
        return out, decoder.done

    def test_split_anywhere(self):
        for piece in (None, 1, 2, 3, 7, 100):
            with self.subTest(piece=piece):
                self.assertEqual(self.decode(self.BODY, piece), (b"x" * 0x1ea + b"helloabc", True))

    def test_captured_llama_cpp_stream(self):
        with open(os.path.join(WIRE, "chat-stream.raw"), "rb") as f:
            body = f.read().split(b"\r\n\r\n", 1)[1]
        for piece in (None, 1, 5):
            data, done = self.decode(body, piece)
            self.assertTrue(done)
            self.assertTrue(data.startswith(b"data: {") and data.endswith(b"data: [DONE]\n\n"))

    def test_unfinished_body_is_not_done(self):
        self.assertEqual(self.decode(b"5\r\nhel"), (b"hel", False))
        self.assertEqual(self.decode(b"5\r\nhello\r\n"), (b"hello", False))

    def test_malformed_framing(self):
        for body in (b"zz\r\nabc\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"1" * 5000):
            with self.subTest(body=body[:20]):
                with self.assertRaises(dmr_client.ProtocolError):
                    self.decode(body)


def head_of(raw):
    parsed = dmr_client.parse_response_head(raw)
    return None if parsed is None else parsed[0]


def framing(head_lines, method="POST"):
    raw = ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1")
    return dmr_client.body_framing(head_of(raw), method)


class TestResponseHead(unittest.TestCase):
    def test_heads_and_where_the_body_starts(self):
        for raw, status, reason, body in (
                (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, "OK", b"hi"),
                (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", 200, "OK", b"hi"),        # bare LF (RFC 9112 2.2)
                (b"HTTP/1.1 200 OK\r\nA: 1\n\r\nhi", 200, "OK", b"hi"),                # mixed
                (b"HTTP/1.0 404 Not Found\r\n\r\n", 404, "Not Found", b""),
                (b"HTTP/1.1 204\r\n\r\nrest", 204, "", b"rest"),                        # no reason phrase
                (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200", 103, "Early Hints",
                 b"HTTP/1.1 200")):
            with self.subTest(raw=raw):
                head, end = dmr_client.parse_response_head(raw)
                self.assertEqual((head.status, head.reason, raw[end:]), (status, reason, body))

    def test_the_first_blank_line_ends_the_head(self):
        for head, body in ((b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", b"x\n\ny\r\n\r\nz\n\r\n"),
                           (b"HTTP/1.1 200 OK\nA: b\n\n", b"x\r\n\r\ny\n\nz"),
                           (b"HTTP/1.1 200 OK\nA: b\n\r\n", b"\n\nx\n\r\n"),
                           (b"HTTP/1.1 200 OK\r\n\r\n", b"\n\n")):
            with self.subTest(head=head, body=body):
                self.assertEqual(dmr_client.parse_response_head(head + body)[1], len(head))

    def test_head_size_limit_is_exact(self):
        status = b"HTTP/1.1 200 OK\r\n"
        pad = dmr_client.MAX_HEAD_BYTES - len(status) - len(b"X: \r\n\r\n")
        exact = status + b"X: " + b"p" * pad + b"\r\n\r\n"
        self.assertEqual(len(exact), dmr_client.MAX_HEAD_BYTES)
        self.assertEqual(dmr_client.parse_response_head(exact + b"body")[1], len(exact))
        self.assertIsNone(dmr_client.parse_response_head(exact[:-1]))
        for over in (status + b"X: " + b"p" * (pad + 1) + b"\r\n\r\n", exact[:-2] + b"ppp"):
            with self.assertRaises(dmr_client.ProtocolError):
                dmr_client.parse_response_head(over)

    def test_header_fields(self):
        head = head_of(b"HTTP/1.1 200 OK\r\nX-B: XxX X\r\nX-C:\t X \r\n\r\n")   # only blanks are trimmed
        self.assertEqual((head.headers["x-b"], head.headers["x-c"]), ("XxX X", "X"))
        head = head_of(b"HTTP/1.1 200 OK\r\nX-A: one \r\nx-a:two\r\nSet-Cookie: \tc=1\r\nLink: <http://h:1/a>\r\n\r\n")
        self.assertEqual(head.headers["link"], "<http://h:1/a>")
        self.assertEqual(head.headers["X-A"], "one")
        self.assertEqual(head.headers.get("x-A"), "one")
        self.assertEqual(head.headers.get_all("X-a"), ["one", "two"])
        self.assertEqual(head.headers["set-cookie"], "c=1")
        self.assertIn("SET-COOKIE", head.headers)
        self.assertEqual(head.headers.get("missing", "d"), "d")
        self.assertEqual(len(head.headers), 3)

    def test_folded_lines_are_unfolded(self):
        head = head_of(b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree \r\nB: c\r\n\r\n")
        self.assertEqual((head.headers["x-a"], head.headers["b"]), ("one two three", "c"))

    def test_incomplete_heads_wait_for_more(self):
        for raw in (b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n\r"):
            self.assertIsNone(dmr_client.parse_response_head(raw))

    def test_malformed_heads(self):
        for raw in (b"\n\r\nHTTP/1.1 200 OK\r\n\r\n", b"\n\nHTTP/1.1 200 OK\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/2 200 OK\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n",
                    b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 20\r\n\r\n", b"HTTP/1.1 099 Low\r\n\r\n", b"HTTP/1.1 -20 OK\r\n\r\n", b"HTTP/1.1  200 OK\r\n\r\n",
                    b"http/1.1 200 OK\r\n\r\n", b"HTTP/1.1 200 O\x00K\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nA: b\rc\r\nB: d\n\r\n",   # as many CRs as LFs, not all paired
                    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", b"HTTP/1.1 200 OK\r\n folded: first\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nA\xc3: b\r\n\r\n", b"HTTP/1.1 200 OK\r\nA: b\nc\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * (dmr_client.MAX_HEADERS + 1) + b"\r\n",
                    b"HTTP/1.1 200 OK\r\nA: " + b"x" * dmr_client.MAX_HEAD_BYTES + b"\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nA: " + b"x" * (dmr_client.MAX_HEAD_BYTES + 1)):
            with self.subTest(raw=raw[:40]):
                with self.assertRaises(dmr_client.ProtocolError):
                    dmr_client.parse_response_head(raw)


    def test_only_http_1_0_and_1_1_status_lines_are_accepted(self):
        for version in (b"HTTP/1.1", b"HTTP/1.0"):
            for ending in (b"\r\n", b"\n"):   # the usual path and the general one
                with self.subTest(version=version, ending=ending):
                    head = head_of(version + b" 200 OK" + ending + b"A: b" + ending + ending)
                    self.assertEqual((head.version, head.status), (version.decode(), 200))
        for version in (b"HTTP/1.2", b"HTTP/1.9", b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9", b"HTTP/0.1",
                        b"HTTP/1.x", b"HTTP/11."):
            for ending in (b"\r\n", b"\n"):
                with self.subTest(version=version, ending=ending):
                    with self.assertRaises(dmr_client.ProtocolError) as caught:
                        dmr_client.parse_response_head(version + b" 200 OK" + ending + b"A: b" + ending + ending)
                    self.assertIn("HTTP/1.x status line", str(caught.exception))


class TestHeadReader(unittest.TestCase):
    """HeadReader: a head in any number of reads, split anywhere (found by mutation testing)."""

    HEAD = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Split: %d\r\n\r\nhi"

    def feed_all(self, pieces):
        reader = dmr_client.HeadReader()
        for number, piece in enumerate(pieces):
            parsed = reader.feed(piece)
            if parsed is not None:
                return parsed, b"".join(pieces[number + 1:])
        self.fail("the head never ended")

    def test_split_anywhere_and_dripped(self):
        for ending in (b"\r\n", b"\n"):
            raw = self.HEAD.replace(b"\r\n", ending) if ending == b"\n" else self.HEAD
            for cut in range(1, len(raw)):
                data = raw % cut if b"%d" in raw else raw
                with self.subTest(ending=ending, cut=cut):
                    (head, rest), after = self.feed_all([data[:cut], data[cut:]])
                    self.assertEqual((head.status, head.headers["x-split"], rest + after), (200, str(cut), b"hi"))
            data = raw % 0
            (head, rest), after = self.feed_all([data[i:i + 1] for i in range(len(data))])
            self.assertEqual((head.status, rest + after), (200, b"hi"))

    def test_a_head_that_never_ends_is_refused_across_reads(self):
        reader = dmr_client.HeadReader()
        with self.assertRaises(dmr_client.ProtocolError):
            for _ in range(dmr_client.MAX_HEAD_BYTES // 1000 + 2):
                reader.feed(b"X-Long: " + b"a" * 990 + b"\r\n")
        reader = dmr_client.HeadReader()
        self.assertIsNone(reader.feed(b"HTTP/1.1 200 OK\r\n"))
        self.assertIsInstance(reader.ended(), dmr_client.ProtocolError)
        self.assertIsInstance(dmr_client.HeadReader().ended(), dmr_client._NoAnswer)
        self.assertIsInstance(reader.ended(reset=True), dmr_client._Truncated)


    def test_interim_responses_are_counted_exactly(self):
        interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        most = dmr_client.MAX_INTERIM_RESPONSES
        for pieces in ([interim * most + final], [interim] * most + [final]):   # in one read, one a read
            (head, rest), after = self.feed_all(pieces)
            self.assertEqual((head.status, rest + after), (200, b"hi"))
        for pieces in ([interim * (most + 1) + final], [interim] * (most + 1) + [final]):
            reader = dmr_client.HeadReader()
            with self.assertRaises(dmr_client.ProtocolError) as caught:
                for piece in pieces:
                    reader.feed(piece)
            self.assertIn("more than %d interim" % most, str(caught.exception))
        with self.assertRaises(dmr_client.ProtocolError) as caught:
            dmr_client.HeadReader().feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
        self.assertIn("101", str(caught.exception))


class TestHeadMemory(unittest.TestCase):
    """parse_response_head() remembers heads it parsed: the same bytes, the same answer, bounded."""

    def test_same_bytes_same_head_and_faults_are_never_remembered(self):
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Test: memory\r\n\r\nhi"
        first, second = dmr_client.parse_response_head(raw), dmr_client.parse_response_head(raw + b"more")
        self.assertIs(first[0], second[0])
        self.assertEqual(first[1], second[1])
        bad = b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"
        for _ in range(2):
            with self.assertRaises(dmr_client.ProtocolError):
                dmr_client.parse_response_head(bad)
        for number in range(3 * dmr_client._HEADS_KEPT):
            dmr_client.parse_response_head(b"HTTP/1.1 200 OK\r\nX-N: %d\r\n\r\n" % number)
            self.assertLessEqual(len(dmr_client._HEADS_SEEN), dmr_client._HEADS_KEPT)
        big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * dmr_client._HEAD_KEPT_BYTES + b"\r\n\r\n"
        dmr_client.parse_response_head(big)
        self.assertNotIn(big, dmr_client._HEADS_SEEN)


class TestBodyFraming(unittest.TestCase):
    def test_table(self):
        Length, Chunked, Close = dmr_client.LengthDecoder, dmr_client.ChunkedDecoder, dmr_client.UntilCloseDecoder
        for lines, method, kind, length, keep in (
                (["HTTP/1.1 200 OK", "Content-Length: 5"], "POST", Length, 5, True),
                (["HTTP/1.1 200 OK", "Content-Length: 5", "content-length: 5"], "POST", Length, 5, True),
                (["HTTP/1.1 200 OK", "Content-Length: 5, 5"], "POST", Length, 5, True),
                (["HTTP/1.1 200 OK", "Content-Length:  007 "], "POST", Length, 7, True),
                (["HTTP/1.1 200 OK", "Content-Length: " + "9" * 19], "POST", Length, 10 ** 19 - 1, True),
                (["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"], "POST", Chunked, None, True),
                (["HTTP/1.1 200 OK", "Transfer-Encoding: Chunked"], "POST", Chunked, None, True),
                (["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 5"], "POST", Chunked, None,
                 False),
                (["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Connection: close"], "POST", Chunked, None,
                 False),
                (["HTTP/1.1 200 OK", "Content-Length: 5", "Connection: keep-alive, Close"], "POST", Length, 5,
                 False),
                (["HTTP/1.1 200 OK"], "POST", Close, None, False),
                (["HTTP/1.0 200 OK", "Content-Length: 5"], "POST", Length, 5, False),
                (["HTTP/1.0 200 OK", "Content-Length: 5", "Connection: keep-alive"], "POST", Length, 5, True),
                (["HTTP/1.1 200 OK", "Content-Length: 5"], "HEAD", Length, 0, True),
                (["HTTP/1.1 204 No Content", "Transfer-Encoding: chunked"], "POST", Length, 0, True),
                (["HTTP/1.1 304 Not Modified"], "GET", Length, 0, True),
                # 204 and 304 have no body, whatever Content-Length says (RFC 9112 6.3)
                (["HTTP/1.1 204 No Content", "Content-Length: 5"], "POST", Length, 0, True),
                (["HTTP/1.1 304 Not Modified", "Content-Length: 5"], "GET", Length, 0, True),
                (["HTTP/1.1 205 Reset Content", "Content-Length: 5"], "POST", Length, 5, True),
                (["HTTP/1.1 305 Use Proxy", "Content-Length: 5"], "POST", Length, 5, True),
                (["HTTP/1.1 200 OK", "Content-Length: " + "9" * 19, "Connection: keep-alive"], "POST", Length,
                 10 ** 19 - 1, True)):
            with self.subTest(lines=lines, method=method):
                decoder, keep_alive = framing(lines, method)
                self.assertIs(type(decoder), kind)
                self.assertEqual((decoder.length, keep_alive), (length, keep))

    def test_refused(self):
        for value in ("+5", "-1", "5 5", "0x10", "1_0", "5.0", "", "\xb3", "1" * 20, "1" * 5000):
            with self.subTest(content_length=value):
                with self.assertRaises(dmr_client.ProtocolError):
                    framing(["HTTP/1.1 200 OK", "Content-Length: " + value])
        for lines in (["HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"],
                      ["HTTP/1.1 200 OK", "Content-Length: 5, 6"],
                      ["HTTP/1.1 200 OK", "Transfer-Encoding: gzip"],
                      ["HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked"],
                      ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked"],
                      ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Transfer-Encoding: identity"],
                      ["HTTP/1.1 200 OK", "Transfer-Encoding: "]):
            with self.subTest(lines=lines):
                with self.assertRaises(dmr_client.ProtocolError):
                    framing(lines)


class TestBodyDecoders(unittest.TestCase):
    def chunked(self, data, piece=None):
        decoder = dmr_client.ChunkedDecoder()
        pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
        return b"".join(decoder.feed(p) for p in pieces), decoder

    def test_chunk_sizes(self):
        for size_line, payload in ((b"a", b"x" * 10), (b"A", b"x" * 10), (b"00a", b"x" * 10),
                                   (b"a;name=value", b"x" * 10), (b"a;", b"x" * 10),
                                   (b"0000000000000001", b"x"), (b"a;x=1;y=2", b"x" * 10),
                                   (b"a;" + b"e" * (4096 - 3), b"x" * 10)):   # the longest size line
            with self.subTest(size_line=size_line):
                body = size_line + b"\r\n" + payload + b"\r\n0\r\n\r\n"
                for piece in (None, 1):
                    data, decoder = self.chunked(body, piece)
                    self.assertEqual((data, decoder.done, decoder.leftover), (payload, True, b""))

    def test_bad_chunk_sizes(self):
        for size_line in (b"-5", b"0x1a", b"+1a", b"1_a", b" 1a", b"1a ", b"1a\t", b"", b"g",
                          b"1" * 17, b"\xd9\xa3", b"1a ;ext", b"1" * 5000, b"1a;" + b"e" * (4096 - 3),
                          b"1a;" + b"e" * 5000):
            with self.subTest(size_line=size_line[:20]):
                with self.assertRaises(dmr_client.ProtocolError):   # 26 bytes: what 1a would announce
                    self.chunked(size_line + b"\r\n" + b"x" * 26 + b"\r\n0\r\n\r\n")

    def test_line_ends_are_crlf_in_chunk_framing(self):
        for body in (b"3\nabc\r\n0\r\n\r\n",        # size line ended by a bare LF
                     b"3\r\nabc\n0\r\n\r\n",        # data not followed by CRLF
                     b"3\r\nabcd\r\n0\r\n\r\n",     # data longer than its size
                     b"3\r\nabc\r\r\n0\r\n\r\n",
                     b"0\n\r\n"):
            with self.subTest(body=body):
                for piece in (None, 1):
                    with self.assertRaises(dmr_client.ProtocolError):
                        self.chunked(body, piece)

    def test_trailers_are_read_to_their_blank_line(self):
        for trailer in (b"X-T: 1\r\n", b"X-T: 1\r\nY: 2\r\n", b"X-T: 1\n", b"X-Long: " + b"t" * 5000 + b"\r\n"):
            with self.subTest(trailer=trailer):
                for piece in (None, 1000):   # a long trailer line may arrive in pieces
                    data, decoder = self.chunked(b"3\r\nabc\r\n0\r\n" + trailer + b"\r\nNEXT", piece)
                    self.assertEqual((data, decoder.done, decoder.leftover), (b"abc", True, b"N"))
                _, decoder = self.chunked(b"3\r\nabc\r\n0\r\n" + trailer)
                self.assertFalse(decoder.done)   # the first trailer line is not the end
        line = b"X: " + b"y" * 1019 + b"\r\n"   # 1 KiB: 64 of them fill MAX_HEAD_BYTES exactly, 65 do not
        fits = dmr_client.MAX_HEAD_BYTES // len(line)
        self.assertEqual(fits * len(line), dmr_client.MAX_HEAD_BYTES)
        one_over = line * (fits - 1) + b"X: " + b"y" * 1020 + b"\r\n"
        for trailer, ok in ((b"X: y\r\n" * dmr_client.MAX_HEADERS, True), (line * fits, True),
                            (b"X: y\r\n" * (dmr_client.MAX_HEADERS + 1), False), (line * (fits + 1), False),
                            (one_over, False)):
            with self.subTest(trailer=trailer[:20], size=len(trailer)):
                if ok:
                    self.assertTrue(self.chunked(b"0\r\n" + trailer + b"\r\n")[1].done)
                else:
                    with self.assertRaises(dmr_client.ProtocolError):
                        self.chunked(b"0\r\n" + trailer + b"\r\n")
        for trailer in (b"no colon\r\n", b"X: \x00\r\n", b"X: " + b"y" * (dmr_client.MAX_HEAD_BYTES + 1)):
            with self.subTest(trailer=trailer[:20]):
                with self.assertRaises(dmr_client.ProtocolError):
                    self.chunked(b"0\r\n" + trailer + b"\r\n\r\n")

    def test_a_bare_lf_ends_the_trailer_section(self):
        for piece in (None, 1):
            self.assertEqual(self.chunked(b"3\r\nabc\r\n0\r\n\n", piece)[1].done, True)

    def test_bytes_after_the_body_are_kept_as_leftover(self):
        for piece in (None, 1, 4):
            _, decoder = self.chunked(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK", piece)
            self.assertEqual(decoder.leftover, b"H")   # the first byte past the end, however split
        length = dmr_client.LengthDecoder(3)
        self.assertEqual(length.feed(b"abcdef"), b"abc")
        self.assertEqual(length.feed(b"gh"), b"")
        self.assertEqual((length.done, length.leftover), (True, b"d"))

    def test_a_length_body_read_elsewhere(self):
        decoder = dmr_client.LengthDecoder(10)
        self.assertEqual(decoder.feed(b"abc"), b"abc")
        decoder.skip(6)
        self.assertFalse(decoder.done)
        decoder.skip(1)
        self.assertTrue(decoder.done)
        with self.assertRaises(ValueError):
            dmr_client.LengthDecoder(3).skip(4)

    def test_a_length_body_in_pieces(self):
        for pieces, payload, done, leftover in (([b"ab", b"cd", b"ef"], b"abcde", True, b"f"),
                                                ([b"abcde"], b"abcde", True, b""),
                                                ([b"ab", b"cde"], b"abcde", True, b""),
                                                ([b"ab", b"c"], b"abc", False, b"")):
            with self.subTest(pieces=pieces):
                decoder = dmr_client.LengthDecoder(5)
                self.assertEqual(b"".join(decoder.feed(p) for p in pieces), payload)
                self.assertEqual((decoder.done, decoder.leftover), (done, leftover))

    def test_end_of_input(self):
        length = dmr_client.LengthDecoder(5)
        self.assertEqual(length.feed(b"abc"), b"abc")
        self.assertFalse(length.complete_at_eof())     # a cut, not an end
        self.assertTrue(dmr_client.LengthDecoder(0).complete_at_eof())
        until_close = dmr_client.UntilCloseDecoder()
        self.assertEqual(until_close.feed(b"abc"), b"abc")
        self.assertTrue(until_close.complete_at_eof())
        _, chunked = self.chunked(b"3\r\nabc\r\n")
        self.assertFalse(chunked.complete_at_eof())

    def test_huge_declared_sizes_allocate_nothing(self):
        _, decoder = self.chunked(b"4000000000000000\r\nabc")
        self.assertFalse(decoder.done)
        self.assertEqual(dmr_client.LengthDecoder(2 ** 62).feed(b"abc"), b"abc")


# ---------------------------------------------------------------------------
# Pure rules: addresses
# ---------------------------------------------------------------------------


class TestNormalizeBaseURL(unittest.TestCase):
    TABLE = [
        ("http://localhost:12434", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("http://localhost:12434/", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("localhost:12434", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("tcp://localhost:12434", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("HTTP://LOCALHOST:12434", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("  http://localhost:12434  ", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("http://localhost:22088/engines/llama.cpp", None, "http://localhost:22088/engines/llama.cpp/v1"),
        ("http://localhost:12434/engines/llama.cpp/v1/", None, "http://localhost:12434/engines/llama.cpp/v1"),
        ("http://localhost:12434/engines/llama.cpp/v1/chat/completions", None,
         "http://localhost:12434/engines/llama.cpp/v1"),
        ("http://localhost:12434/engines/v1/embeddings", None, "http://localhost:12434/engines/v1"),
        ("http://localhost:12434/engines/vllm", None, "http://localhost:12434/engines/vllm/v1"),
        ("http://localhost:12434/engines/v1", None, "http://localhost:12434/engines/v1"),
        ("http://localhost:12434/engines", None, "http://localhost:12434/engines/v1"),
        ("http://localhost:12434//engines//v1//", None, "http://localhost:12434/engines/v1"),
        ("http://127.0.0.1:8080/v1", None, "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1", "vllm", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/chat/completions", None, "http://127.0.0.1:8080/v1"),
        ("http://model-runner.docker.internal", None, "http://model-runner.docker.internal/engines/llama.cpp/v1"),
        ("http://[::1]:12434", None, "http://[::1]:12434/engines/llama.cpp/v1"),
        ("[::1]:12434", None, "http://[::1]:12434/engines/llama.cpp/v1"),
        ("https://gw.example.com/dmr", None, "https://gw.example.com/dmr/engines/llama.cpp/v1"),
        ("https://gw.example.com/dmr/", None, "https://gw.example.com/dmr/engines/llama.cpp/v1"),
        ("http://localhost:12434", "vllm", "http://localhost:12434/engines/vllm/v1"),
        ("http://localhost:12434/engines/llama.cpp/v1", "mlx", "http://localhost:12434/engines/mlx/v1"),
        ("http://localhost:12434/engines/v1", "sglang", "http://localhost:12434/engines/sglang/v1"),
        ("http://0.0.0.0:12434", None, "http://127.0.0.1:12434/engines/llama.cpp/v1"),
        ("http://[::]:12434", None, "http://[::1]:12434/engines/llama.cpp/v1"),
        ("http://localhost:12434/engines/future-engine/v1", None, "http://localhost:12434/engines/future-engine/v1"),
        ("http://localhost/exp/vDD4.40", None, "http://localhost/exp/vDD4.40/engines/llama.cpp/v1"),
        # Only an endpoint after /v1 is a pasted endpoint; without /v1 the path is a prefix or an engine
        ("http://127.0.0.1:8080/v1/models", None, "http://127.0.0.1:8080/v1"),
        ("http://h:1/proxy/v1/models/", None, "http://h:1/proxy/v1"),
        ("http://localhost:12434/engines/v1/models", None, "http://localhost:12434/engines/v1"),
        ("http://localhost:12434/models", None, "http://localhost:12434/models/engines/llama.cpp/v1"),
        ("http://localhost:12434/models/", None, "http://localhost:12434/models/engines/llama.cpp/v1"),
        ("http://localhost:12434/engines/models", None, "http://localhost:12434/engines/models/v1"),
        ("http://h/dmr/chat/completions", None, "http://h/dmr/chat/completions/engines/llama.cpp/v1"),
        ("http://h/dmr/embeddings", "vllm", "http://h/dmr/embeddings/engines/vllm/v1"),
        # a prefix before /engines is kept whole, whichever form the rest takes
        ("https://gw.example.com/a/dmr/engines/v1", None, "https://gw.example.com/a/dmr/engines/v1"),
        ("https://gw.example.com/a/dmr/engines/vllm/v1", None, "https://gw.example.com/a/dmr/engines/vllm/v1"),
        ("https://gw.example.com/a/dmr/engines", None, "https://gw.example.com/a/dmr/engines/v1"),
        ("https://gw.example.com/a/dmr/engines/vllm", None, "https://gw.example.com/a/dmr/engines/vllm/v1"),
        ("https://gw.example.com/boX/", None, "https://gw.example.com/boX/engines/llama.cpp/v1"),
    ]

    def test_table(self):
        for url, engine, expected in self.TABLE:
            with self.subTest(url=url, engine=engine):
                self.assertEqual(normalize_base_url(url, engine=engine), expected)

    def test_bad_urls_say_what_is_wrong(self):
        cases = [("", "empty"), ("   ", "empty"), ("ftp://x", "scheme"), ("unix:///var/run/x.sock", "scheme"),
                 ("http://", "no host"), ("http://h:abc", "port"), ("http://h:99999", "port"),
                 ("http://h:0", "port 0"), ("http://h/?q=1", "query"), ("http://h/#frag", "fragment"),
                 ("http://h/x?", "query"), ("http://bad host/", "invalid host")]
        for url, words in cases:
            with self.subTest(url=url):
                with self.assertRaises(ValueError) as caught:
                    normalize_base_url(url)
                self.assertIn(words, str(caught.exception))

    def test_almost_urls_are_refused_naming_the_likely_fix(self):
        """A mistyped '://' made host 'http', port 80 (retried 3 times): refused like the other
        malformed URLs, with the URL that was meant."""
        for url, meant in (("http//127.0.0.1:41473", "http://127.0.0.1:41473"), ("http:/host", "http://host"),
                           ("https//gw.example.com/dmr", "https://gw.example.com/dmr"), ("http:host:1", "http://host:1"),
                           ("HTTP//localhost:12434", "http://localhost:12434"), ("http:\\\\h:1", "http://h:1"),
                           ("http:://h", "http://h"), ("tcp//h:2375", "tcp://h:2375"), ("http:///h:1", "http://h:1"),
                           ("http://http://host:1", "http://host:1"), ("http://https//h", "https://h"),
                           ("htp://h:1/v1", "http://h:1/v1"), ("htps://h", "https://h")):
            with self.subTest(url=url):
                with self.assertRaises(ValueError) as caught:
                    normalize_base_url(url)
                self.assertIn("did you mean %s?" % meant, str(caught.exception))
        for url in ("http:", "http//", "https:/"):
            with self.subTest(url=url):
                with self.assertRaisesRegex(ValueError, "has no host"):
                    normalize_base_url(url)
        # Forms accepted on purpose stay accepted: no scheme at all, and a host that starts like one.
        for url, expected in (("localhost:12434", "http://localhost:12434/engines/llama.cpp/v1"),
                              ("httpbin.local:80/v1", "http://httpbin.local:80/v1"),
                              ("http-proxy:3128/v1", "http://http-proxy:3128/v1")):
            self.assertEqual(normalize_base_url(url), expected)
        with self.assertRaises(ValueError) as caught:
            normalize_base_url("https:/me:s3cret@h")
        self.assertNotIn("s3cret", str(caught.exception))

    def test_credentials_are_refused_without_echoing_the_password(self):
        with self.assertRaises(ValueError) as caught:
            normalize_base_url("http://me:s3cret@localhost:12434")
        self.assertIn("credentials", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))

    def test_non_str_is_a_type_error(self):
        with self.assertRaises(TypeError):
            normalize_base_url(12434)

    def test_unknown_engine_argument(self):
        with self.assertRaises(ValueError) as caught:
            normalize_base_url("http://localhost:12434", engine="llamacpp")
        self.assertIn("llama.cpp", str(caught.exception))

    def test_environment_precedence(self):
        env = {"DOCKER_MODEL_RUNNER_API_BASE": "http://a:1/engines/v1", "MODEL_RUNNER_HOST": "b:2"}
        with mock.patch.dict(os.environ, env):
            self.assertEqual(normalize_base_url(), "http://a:1/engines/v1")
            self.assertEqual(normalize_base_url("http://c:3"), "http://c:3/engines/llama.cpp/v1")
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_BASE": "", "MODEL_RUNNER_HOST": "b:2"}):
            self.assertEqual(normalize_base_url(), "http://b:2/engines/llama.cpp/v1")
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(normalize_base_url(), "http://localhost:12434/engines/llama.cpp/v1")


class TestSplitModel(unittest.TestCase):
    def test_rules(self):
        table = [
            ("ai/smollm2", (None, "ai/smollm2")),
            ("ai/llama3.2:1B-Q8_0", (None, "ai/llama3.2:1B-Q8_0")),
            ("hf.co/org/repo:Q4_K_M", (None, "hf.co/org/repo:Q4_K_M")),
            ("smollm2", (None, "smollm2")),
            ("llama.cpp/llama-3.1", ("llama.cpp", "llama-3.1")),
            ("vllm/ai/qwen3", ("vllm", "ai/qwen3")),
            ("docker_model_runner/ai/smollm2", (None, "ai/smollm2")),
            ("docker_model_runner/llama.cpp/ai/smollm2", ("llama.cpp", "ai/smollm2")),
            ("llama.cpp", (None, "llama.cpp")),
            ("myregistry.example.com/org/model:tag", (None, "myregistry.example.com/org/model:tag")),
        ]
        for model, expected in table:
            with self.subTest(model=model):
                self.assertEqual(split_model(model), expected)

    def test_empty_names(self):
        for model in ("", "   ", "docker_model_runner/", "llama.cpp/", "docker_model_runner/vllm/"):
            with self.subTest(model=model):
                with self.assertRaises(ValueError):
                    split_model(model)

    def test_non_str(self):
        for model in (None, 3, b"ai/smollm2"):
            with self.assertRaises(TypeError):
                split_model(model)


class TestParseErrorBody(unittest.TestCase):
    def test_both_families(self):
        table = [
            ('{"error":{"code":400,"message":"bad thing","type":"invalid_request_error"}}',
             ("bad thing", "invalid_request_error", 400)),
            ('{"error":"plain string error"}', ("plain string error", None, None)),
            ('{"object":"error","message":"old vllm","type":"BadRequestError","code":400}',
             ("old vllm", "BadRequestError", 400)),
            ('{"type":"error","code":null,"message":"runner crashed","param":null}',
             ("runner crashed", "error", None)),
            ("error while getting model: get model '\"ai/x\"': model not found\n",
             ("error while getting model: get model '\"ai/x\"': model not found", None, None)),
            ("", ("", None, None)),
            ("[1, 2]", ("[1, 2]", None, None)),
            ('{"detail":"Not Found"}', ("Not Found", None, None)),   # FastAPI (LiteLLM's proxy)
            ('{"detail":[{"loc":["body","model"],"msg":"Field required","type":"missing"},'
             '{"loc":["body","messages",0,"role"],"msg":"Input should be a valid string"}]}',
             ("model: Field required; messages.0.role: Input should be a valid string", None, None)),
            ('{"detail":[{"loc":[],"msg":"bad"},{"msg":"worse","loc":"x"},{"loc":["query"],"msg":"q"}]}',
             ("bad; worse; q", None, None)),
            ('{"detail":[{"msg":1}]}', ('{"detail":[{"msg":1}]}', None, None)),
            ('{"detail":""}', ('{"detail":""}', None, None)),
            ('{"detail":[{"loc":["path","name"],"msg":"a"},{"loc":["header","x-key"],"msg":"b"},'
             '{"loc":["cookie","c"],"msg":"c"},{"loc":["model"],"msg":"d"}]}',
             ("name: a; x-key: b; c: c; model: d", None, None)),
            ('{"error":"plain","type":"t","code":7}', ("plain", "t", 7)),
            ('{"error":{"message":["not","text"]},"message":"top"}', ("top", None, None)),
            ('{"error":{"message":""},"detail":"below"}', ("below", None, None)),
            ('{"error":["x"],"message":"top","type":"t","code":1}', ("top", "t", 1)),
            ('{"message":{"nested":1},"detail":"d"}', ("d", None, None)),
            ("<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
             ("502 Bad Gateway", None, None)),
        ]
        for body, expected in table:
            with self.subTest(body=body):
                self.assertEqual(parse_error_body(body), expected)

    def test_captured_llama_cpp_errors(self):
        message, error_type, code = parse_error_body(load_capture("error-400-context.http")[2].decode())
        self.assertIn("exceeds the available context size", message)
        self.assertEqual((error_type, code), ("exceed_context_size_error", 400))


class TestQuoteModelPath(unittest.TestCase):
    def test_references_keep_their_slashes_and_tags(self):
        for name in ("ai/smollm2", "ai/llama3.2:1B-Q8_0", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
                     "docker.io/ai/smollm2:latest", "sha256:" + "a" * 64, "smollm2"):
            self.assertEqual(dmr_client.quote_model_path(name), name)

    def test_specials_cannot_change_the_route(self):
        self.assertEqual(dmr_client.quote_model_path("ai/x?force=true"), "ai/x%3Fforce%3Dtrue")
        self.assertEqual(dmr_client.quote_model_path("ai/x#frag"), "ai/x%23frag")
        self.assertEqual(dmr_client.quote_model_path("ai/%2e%2e"), "ai/%252e%252e")

    def test_what_cannot_be_a_reference(self):
        for name in ("", "../../version", "ai/../x", "ai/./x", "ai//x", "/ai/x", "ai/x/", "ai/x y",
                     "ai/x\r\nHost: evil", "ai/x\0", "ai/\tx"):
            with self.subTest(name=name):
                with self.assertRaises(ValueError):
                    dmr_client.quote_model_path(name)
        with self.assertRaises(TypeError):
            dmr_client.quote_model_path(None)


def chunk(delta=None, finish=None, index=0, **extra):
    choice = {"index": index, "delta": delta or {}, "finish_reason": finish}
    return dict({"id": "chatcmpl-1", "created": 7, "model": "ai/qwen3", "object": "chat.completion.chunk",
                 "choices": [choice]}, **extra)


# ---------------------------------------------------------------------------
# Pure rules: contexts and TLS
# ---------------------------------------------------------------------------

TLS_ENV = ("DOCKER_MODEL_RUNNER_API_BASE", "MODEL_RUNNER_HOST", "MODEL_RUNNER_TLS", "MODEL_RUNNER_TLS_SKIP_VERIFY",
           "MODEL_RUNNER_TLS_CA_CERT")


class TestContexts(unittest.TestCase):
    """_resolve_endpoint(): the `docker model` CLI's precedence (cmd/cli/desktop/context.go DetectContext),
    over real files in a temporary $DOCKER_CONFIG and $HOME."""

    def setUp(self):
        self.home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.home)
        self.config = os.path.join(self.home, ".docker")
        os.makedirs(os.path.join(self.config, "model"))
        self.ca = os.path.join(self.home, "lab-ca.pem")
        shutil.copy(os.path.join(HERE, "testdata", "tls", "ca.pem"), self.ca)
        patcher = mock.patch.dict(os.environ, {"HOME": self.home, "DOCKER_CONFIG": self.config})
        patcher.start()
        self.addCleanup(patcher.stop)
        for name in TLS_ENV:
            os.environ.pop(name, None)
        dmr_client._WARNED_CONTEXTS.clear()

    def write(self, current="lab", text=None, **lab_tls):
        path = os.path.join(self.config, "model", "contexts.json")
        with open(path, "w") as file:
            file.write(text if text is not None else json.dumps({"version": 1, "current": current, "contexts": {
                "lab": {"host": "http://10.0.0.5:12434", "tls": lab_tls, "createdAt": "2026-04-01T00:00:00Z"},
                "bare": {"host": "gpu-box:12434", "tls": {"enabled": False}}}}))
        return path

    def resolve(self, base_url=None, context=None, **kwargs):
        endpoint = dmr_client._resolve_endpoint(base_url, context, **kwargs)
        return endpoint.base_url, endpoint.context, endpoint.tls

    def test_nothing_set_is_discovery(self):
        self.assertEqual(self.resolve(), (None, None, dmr_client._DEFAULT_TLS))
        self.write(current="")
        self.assertEqual(self.resolve()[:2], (None, None))

    def test_the_active_context_gives_host_and_tls(self):
        self.write(enabled=True, caCert=self.ca)
        url, name, tls = self.resolve()
        self.assertEqual((url, name, tls.verify, tls.source), ("https://10.0.0.5:12434", "lab", self.ca, "context lab"))
        self.write(enabled=True, skipVerify=True)
        self.assertIs(self.resolve()[2].verify, False)
        self.write(enabled=False)
        self.assertEqual(self.resolve()[:2], ("http://10.0.0.5:12434", "lab"))

    def test_environment_variables_win_field_by_field(self):
        self.write(enabled=True, skipVerify=True, caCert=self.ca)
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS_SKIP_VERIFY": "1"}):   # not "true": off, and it overrides
            url, _, tls = self.resolve()
        self.assertEqual((url, tls.verify, tls.source), ("https://10.0.0.5:12434", self.ca, "context lab"))
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS": "yes"}):   # not "true": TLS off over the context's on
            self.assertEqual(self.resolve()[0], "http://10.0.0.5:12434")
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS_CA_CERT": ""}):   # set empty: the context's CA is dropped
            self.assertIs(self.resolve()[2].verify, False)   # ... and its skip-verify still counts
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_HOST": "gpu-box:12434"}):   # the host: the context is not read
            url, name, tls = self.resolve()
        self.assertEqual((url, name, tls.verify), ("http://gpu-box:12434", None, True))

    def test_tls_on_turns_hosts_to_https_and_alone_means_port_12444(self):
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS": "true"}):
            self.assertEqual(self.resolve()[0], "https://localhost:12444")
            for host, expected in (("gpu-box:12434", "https://gpu-box:12434"), ("http://gpu-box", "https://gpu-box"),
                                   ("https://gpu-box", "https://gpu-box")):
                with mock.patch.dict(os.environ, {"MODEL_RUNNER_HOST": host}):
                    self.assertEqual(self.resolve()[0], expected)
            self.assertEqual(self.resolve("http://explicit:1")[0], "http://explicit:1")   # an argument is as given

    def test_dmrs_own_ca_is_trusted_too_when_tls_is_on_and_no_ca_is_given(self):
        dmr_ca = os.path.join(self.home, ".docker", "model-runner", "certs", "ca.crt")
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS": "true"}):
            self.assertIsNone(self.resolve()[2].dmr_ca)   # none made here: the system's CAs alone
            os.makedirs(os.path.dirname(dmr_ca))
            shutil.copy(self.ca, dmr_ca)
            tls = self.resolve()[2]
            self.assertEqual((tls.verify, tls.dmr_ca), (True, dmr_ca))
            context = dmr_client._tls_context(tls)
            self.assertIn("dmr_client test CA", str(context.get_ca_certs()))
            with mock.patch.dict(os.environ, {"MODEL_RUNNER_TLS_CA_CERT": self.ca}):
                self.assertIsNone(self.resolve()[2].dmr_ca)
        self.assertIsNone(self.resolve("https://x")[2].dmr_ca)   # TLS not on: as the Go CLI, only the system's

    def test_arguments_win_over_everything(self):
        self.write(enabled=True, skipVerify=True)
        self.assertEqual(self.resolve(verify=self.ca)[2][:1], (self.ca,))
        self.assertEqual(self.resolve(context="bare")[:2], ("http://gpu-box:12434", "bare"))
        self.assertEqual(self.resolve(context="default")[:2], (None, None))
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_HOST": "elsewhere:1"}):
            self.assertEqual(self.resolve(context="lab")[:2], ("https://10.0.0.5:12434", "lab"))

    def test_a_file_that_is_not_json_warns_once_falls_back_and_is_left_alone(self):
        path = self.write(text="{not json")
        with self.assertLogs("dmr_client", "WARNING") as logged:
            self.assertEqual(self.resolve()[:2], (None, None))
            self.assertEqual(self.resolve()[:2], (None, None))
            dmr_client._log.warning("end")
        self.assertEqual(len(logged.output), 2, logged.output)
        self.assertIn(path, logged.output[0])
        with open(path) as file:
            self.assertEqual(file.read(), "{not json")
        with self.assertRaises(ValueError) as caught:   # asked for by name: an error naming the file
            self.resolve(context="lab")
        self.assertIn(path + " is not JSON", str(caught.exception))

    def test_bad_names_and_files_are_clear_errors(self):
        self.write()
        with self.assertRaises(ValueError) as caught:
            self.resolve(context="nope")
        self.assertIn("no model context 'nope'", str(caught.exception))
        self.assertIn("(known: default, bare, lab;", str(caught.exception))
        with self.assertRaises(ValueError):
            self.resolve("http://x", context="lab")
        self.write(enabled=True, caCert=os.path.join(self.home, "gone.pem"))
        with self.assertRaises(ValueError) as caught:
            self.resolve()
        self.assertIn("gone.pem' (from context lab) does not exist", str(caught.exception))
        with self.assertRaises(ValueError):
            self.resolve("https://x", cert=os.path.join(self.home, "gone.pem"))
        with self.assertRaises(ValueError):
            self.resolve("https://x", verify=False, ssl_context=dmr_client._tls_context(dmr_client._DEFAULT_TLS))
        with self.assertRaises(TypeError):
            self.resolve("https://x", verify=3)

    def test_clients_take_the_tls_arguments(self):
        for cls in (Client, dmr_client.AsyncClient):
            client = cls("https://127.0.0.1:9", verify=False)
            self.assertIs(client._origin.tls.settings.verify, False)
            self.assertEqual(client._where(), "no context (base_url=); TLS: certificate not checked (verify=)")
        openai = dmr_client.OpenAI(base_url="https://127.0.0.1:9/engines/v1", verify=self.ca)
        self.addCleanup(openai.close)
        self.assertEqual(openai._client._origin.tls.settings.verify, self.ca)


# ---------------------------------------------------------------------------
# Pure rules: streams
# ---------------------------------------------------------------------------


class TestLineSplitter(unittest.TestCase):
    def test_lines_split_anywhere(self):
        data = b"one\r\ntwo\n\nthree"
        for piece in (1, 2, 5, 100):
            splitter = dmr_client.LineSplitter()
            lines = [line for i in range(0, len(data), piece) for line in splitter.feed(data[i:i + piece])]
            self.assertEqual((lines, splitter.close()), ([b"one", b"two", b""], b"three"))

    def test_a_line_that_never_ends_is_bounded(self):
        splitter = dmr_client.LineSplitter(max_line=1000)
        for _ in range(10):
            splitter.feed(b"x" * 100)   # exactly the limit: still a line
        self.assertEqual(splitter.feed(b"\n"), [b"x" * 1000])
        for _ in range(10):
            splitter.feed(b"x" * 100)
        with self.assertRaises(dmr_client.InvalidResponseError):
            splitter.feed(b"x")
        self.assertEqual(dmr_client.LineSplitter().max_line, dmr_client.MAX_EVENT_BYTES)


def message_event(obj, event="message"):
    """The SSE bytes of one event: *obj* as JSON (a str as it is), with an event type unless "message"."""
    data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
    return (b"" if event == "message" else b"event: " + event.encode() + b"\n") + b"data: " + data + b"\n\n"


class TestStreamTracker(unittest.TestCase):
    def track(self, events, fold=None, piece=None):
        tracker = dmr_client.StreamTracker(fold or dmr_client.ChatFold(), "http://x")
        data = b"".join(e if isinstance(e, bytes) else message_event(e) for e in events)
        pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
        chunks = []
        for part in pieces:
            chunks.extend(tracker.feed(part))
            if tracker.done:
                break
        return tracker, chunks

    def test_chunks_come_out_whole_however_the_bytes_are_split(self):
        events = [chunk({"content": "a"}), chunk({"content": "b"}, "stop"), "[DONE]", chunk({"content": "late"})]
        for piece in (None, 1, 7):
            tracker, chunks = self.track(events, piece=piece)
            self.assertEqual(([c.choices[0].delta.get("content") for c in chunks], tracker.done),
                             (["a", "b"], True))

    def test_completeness(self):
        hello, stop = chunk({"content": "Hi"}), chunk({}, "stop")
        two = [chunk({"content": "a"}, index=0), chunk({"content": "b"}, index=1)]
        for events, complete in (([hello, "[DONE]"], True),
                                 ([hello, stop], True),
                                 ([hello], False),
                                 ([], False),                                     # no chunk at all
                                 ([{"choices": [], "usage": {"total_tokens": 1}}], False),
                                 (two + [chunk({}, "stop", index=0)], False),       # every choice, not any
                                 (two + [chunk({}, "stop", index=0), chunk({}, "length", index=1)], True),
                                 # a choice that finishes twice is still one choice finished, not two
                                 (two + [chunk({}, "stop", index=0), chunk({}, "length", index=0)], False),
                                 (two + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}] * 2}],
                                  False)):
            with self.subTest(events=events):
                tracker, _ = self.track(events)
                if complete:
                    tracker.end()
                    self.assertTrue(tracker.done)
                else:
                    with self.assertRaises(dmr_client.APIConnectionError) as caught:
                        tracker.end()
                    self.assertEqual(caught.exception.chunks_received, len(tracker_chunks(events)))
                    self.assertFalse(tracker.done)

    def test_done_stops_and_named_events_carry_no_chunk(self):
        tracker, chunks = self.track([chunk({"content": "a"}), message_event("x", event="ping"), "[DONE]"])
        self.assertEqual((len(chunks), tracker.done, tracker.chunks_received), (1, True, 1))

    def test_error_events(self):
        for event in (message_event({"error": {"message": "boom", "type": "server_error"}}),
                      message_event({"error": "boom"}),   # a string error, as some servers send it
                      message_event({"error": "boom", "choices": []}),
                      message_event('{"message": "boom"}', event="error")):
            with self.subTest(event=event):
                with self.assertRaises(dmr_client.StreamError) as caught:
                    self.track([chunk({"content": "a"}), event])
                self.assertEqual((caught.exception.message, caught.exception.chunks_received), ("boom", 1))

    def test_events_that_are_not_chunks(self):
        deep = "[" * 100000 + "]" * 100000
        for data in ("not json", "42", "null", '"text"', "[]", deep, '{"a": 1} x'):
            with self.subTest(data=data[:20]):
                with self.assertRaises(dmr_client.InvalidResponseError):
                    self.track([data])

    def test_chunks_of_the_wrong_shape(self):
        for bad in ({"choices": 5}, {"choices": [1]}, {"choices": ["x"]}, {"choices": [{"index": [0]}]},
                    {"choices": [{"index": "0"}]}, {"choices": [{"delta": [1]}]}, {"choices": [{"delta": "x"}]},
                    {"choices": [{"delta": {"tool_calls": 5}}]}, {"choices": [{"delta": {"tool_calls": [1]}}]},
                    {"choices": [{"delta": {"tool_calls": [{"index": "1"}]}}]},
                    {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": 5}}]}}]},
                    {"choices": [{"delta": {"tool_calls": [{"function": [1]}]}}]}):
            with self.subTest(bad=bad):
                with self.assertRaises(dmr_client.InvalidResponseError):
                    tracker, _ = self.track([bad])
                    tracker.end()   # deep faults surface when the batch is folded, at the latest here
                with self.assertRaises(dmr_client.InvalidResponseError):
                    dmr_client.fold_chat_chunks([bad])
        for bad in ({"choices": 5}, {"choices": [1]}, {"choices": ["x"]}):   # what callers index into: at once
            with self.assertRaises(dmr_client.InvalidResponseError) as caught:
                self.track([chunk({"content": "a"}), bad])
            self.assertEqual(caught.exception.body, repr(bad))   # the chunk, for the bug report
        with self.assertRaises(dmr_client.InvalidResponseError):
            dmr_client.fold_completion_chunks([{"choices": [{"text": 5}]}])

    def test_a_batch_folds_inside_one_network_read(self):
        count = dmr_client._FOLD_BATCH * 2 + 5
        data = message_event(chunk({"content": "x"})) * count + message_event(chunk({}, "stop")) + b"data: [DONE]\n\n"
        tracker, chunks = self.track([data])
        self.assertEqual((len(chunks), tracker.chunks_received, tracker.done), (count + 1, count + 1, True))
        self.assertEqual(tracker.result().choices[0].message.content, "x" * count)

    def test_a_deep_shape_fault_in_a_batch_is_raised_once_and_the_rest_still_folds(self):
        tracker, _ = self.track([chunk({"content": "a"}), {"choices": [{"index": "0"}]}, chunk({"content": "b"})])
        with self.assertRaises(dmr_client.InvalidResponseError):
            tracker.result()
        self.assertEqual(tracker.result().choices[0].message.content, "ab")   # the chunks after it are kept

    def test_legacy_function_call_deltas_fold(self):
        folded = dmr_client.fold_chat_chunks([chunk({"function_call": {"name": "f", "arguments": '{"a":'}}),
                                              chunk({"function_call": {"arguments": " 1}"}}, "function_call")])
        message = folded.choices[0].message
        self.assertEqual(message.function_call, {"name": "f", "arguments": '{"a": 1}'})
        self.assertEqual(folded.choices[0].finish_reason, "function_call")

    def test_pull_tracker(self):
        tracker = dmr_client.PullTracker("ai/x")
        lines = [b"", b'{"type": "progress", "message": "1 MB"}', b'{"type": "success", "message": "ok"}']
        events = [tracker.feed(line) for line in lines]
        self.assertEqual((events[0], events[2].message, tracker.result.type, tracker.events_received),
                         (None, "ok", "success", 2))
        tracker.end("http://x")
        with self.assertRaises(dmr_client.APIConnectionError):
            dmr_client.PullTracker("ai/y").end("http://x")

    def test_a_choice_keeps_its_index(self):
        folded = dmr_client.fold_chat_chunks([chunk({"content": "b"}, "stop", index=2), chunk({"content": "a"}, "stop")])
        self.assertEqual([(c.index, c.message.content) for c in folded.choices], [(0, "a"), (2, "b")])
        folded = dmr_client.fold_completion_chunks([{"choices": [{"index": 1, "text": "t", "finish_reason": "stop"}]}])
        self.assertEqual((folded.choices[0].index, folded.choices[0].text), (1, "t"))

    def test_role_is_kept_not_joined(self):
        folded = dmr_client.fold_chat_chunks([chunk({"role": "assistant", "content": "a"}),
                                              chunk({"role": "assistant", "content": "b"}, "stop")])
        self.assertEqual(folded.choices[0].message, {"role": "assistant", "content": "ab"})

    def test_memory_is_the_text_not_the_chunk_count(self):
        import tracemalloc

        events = message_event(chunk({"content": "x"})) * 256   # 256 chunks a read: _FOLD_BATCH divides evenly
        tracker = dmr_client.StreamTracker(dmr_client.ChatFold())
        held = []
        tracemalloc.start()
        try:
            for count in (2, 6):   # batches of chunks: memory after 2 and after 6 must be alike
                while tracker.chunks_received < count * dmr_client._FOLD_BATCH:
                    for _ in tracker.feed(events):
                        pass
                held.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        self.assertLess(held[1] - held[0], 256 * 1024, "the fold grew by %d bytes over %d chunks"
                        % (held[1] - held[0], 4 * dmr_client._FOLD_BATCH))
        self.assertEqual(tracker.result().choices[0].message.content, "x" * 6 * dmr_client._FOLD_BATCH)


def tracker_chunks(events):
    return [e for e in events if isinstance(e, dict)]


class TestFoldEdges(unittest.TestCase):
    """What a fold does with chunks at the edges of the format (found by mutation testing)."""

    def test_shape_faults_name_the_field_and_show_the_value(self):
        fold = dmr_client.fold_chat_chunks
        for chunks, what, shown in (
                ([{"choices": 5}], "'choices' in a stream chunk must be a list", "5"),
                ([chunk({"tool_calls": {"a": 1}})], "'tool_calls' in a delta must be a list", "{'a': 1}"),
                ([chunk({"tool_calls": ["x"]})], "each tool call fragment must be a JSON object", "'x'"),
                ([chunk({"tool_calls": [{"index": "0"}]})], "a tool call's 'index' must be a whole number", "'0'"),
                ([chunk({"tool_calls": [{"index": 0, "function": "f"}]})],
                 "a tool call's 'function' must be a JSON object", "'f'"),
                ([chunk({"tool_calls": [{"index": 0, "function": {"arguments": 7}}]})],
                 "a function call's 'arguments' must be a string", "7"),
                ([{"choices": [{"index": "1", "delta": {}}]}], "a choice's 'index' must be a whole number", "'1'")):
            with self.subTest(what=what):
                with self.assertRaises(dmr_client.InvalidResponseError) as caught:
                    fold(chunks)
                self.assertEqual(str(caught.exception), "%s, not %s" % (what, shown))
                self.assertEqual(caught.exception.body, shown)
        for text, says in ((5, "'choices' are objects with an int 'index' and a string 'text', not "),
                           ({"a": 1}, "a completion choice's 'text' must be a string, not 1")):
            with self.assertRaises(dmr_client.InvalidResponseError) as caught:
                dmr_client.fold_completion_chunks([{"choices": [{"index": 0, "text": text}]}])
            self.assertIn(says, str(caught.exception))

    def test_what_a_chunk_may_leave_out(self):
        reply = dmr_client.fold_chat_chunks([
            {"choices": [{"delta": {"role": "assistant", "content": "a"}}]},   # no index: choice 0
            {"id": "c-1", "model": "m", "choices": [{"index": 0, "delta": {"content": "b"}}]},
            {"id": "c-2", "model": "n", "created": 5, "choices": [{"index": 0, "delta": {
                "audio": {"id": "a-1"},
                "tool_calls": [{"id": "t-1", "type": "custom", "function": {"arguments": "{"}},   # no index: 0
                               {"function": {"arguments": "}"}}]}, "finish_reason": "stop"}]}])
        self.assertEqual(len(reply.choices), 1)
        message = reply.choices[0].message
        self.assertEqual(message.content, "ab")
        self.assertEqual((reply.id, reply.model, reply.created), ("c-1", "m", 5))   # each from the first that has it
        self.assertEqual(message.audio, {"id": "a-1"})   # a dict-valued field is kept, not taken for a call
        self.assertNotIn("function_call", message)
        self.assertEqual(message.tool_calls, [{"id": "t-1", "type": "custom",
                                               "function": {"name": "", "arguments": "{}"}}])

    def test_text_exactly_one_block_long(self):
        block = dmr_client._FOLD_BLOCK
        reply = dmr_client.fold_chat_chunks([chunk({"content": "x"})] * block)
        self.assertEqual(reply.choices[0].message.content, "x" * block)
        self.assertEqual(dmr_client.fold_completion_chunks(
            [{"choices": [{"index": 0, "text": "y"}]}] * block).choices[0].text, "y" * block)

    def test_pull_warnings_are_logged_and_bad_utf8_is_replaced(self):
        tracker = dmr_client.PullTracker("ai/x")
        with self.assertLogs("dmr_client", logging.WARNING) as logs:
            event = tracker.feed(b'{"type":"warning","message":"disk nearly full \xff"}')
        self.assertEqual(logs.output, ["WARNING:dmr_client:pull ai/x: disk nearly full \ufffd"])
        self.assertEqual(event.message, "disk nearly full \ufffd")
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            tracker.end("http://x")
        self.assertEqual(caught.exception.url, "http://x")

    def test_stream_errors_carry_the_url_and_the_event(self):
        tracker = dmr_client.StreamTracker(dmr_client.ChatFold(), "http://x/v1/chat/completions")
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            list(tracker.feed(b"data: {oops\n\n"))
        self.assertEqual(caught.exception.body, "{oops")
        tracker = dmr_client.StreamTracker(dmr_client.ChatFold(), "http://x/v1/chat/completions")
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            list(tracker.feed(b"data: [1]\n\n"))
        self.assertEqual(caught.exception.body, "[1]")
        tracker = dmr_client.StreamTracker(dmr_client.ChatFold(), "http://x/v1/chat/completions")
        list(tracker.feed(message_event(chunk({"content": "a"}))))
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            tracker.end()
        self.assertEqual(caught.exception.url, "http://x/v1/chat/completions")
        self.assertIn("without [DONE] or a finish_reason", str(caught.exception))

    def test_bad_header_names_and_values_are_refused(self):
        for headers, says in (({"Bad Name": "x"}, "not a valid HTTP token"), ({"": "x"}, "not a valid HTTP token"),
                              ({1: "x"}, "not a valid HTTP token"), ({"X-A": "\u20ac"}, "must be Latin-1 text"),
                              ({"X-A": 5}, "must have a str value")):
            with self.subTest(headers=headers):
                with self.assertRaises(ValueError) as caught:
                    Client("http://127.0.0.1:9", headers=headers)
                self.assertIn(says, str(caught.exception))
        with self.assertRaises(TypeError) as caught:
            split_model(5)
        self.assertEqual(str(caught.exception), "model must be a str such as 'ai/smollm2', not int")


class TestFoldChatChunks(unittest.TestCase):
    def test_captured_stream_folds_to_the_captured_reply(self):
        chunks = [json.loads(e[6:]) for e in sse_events("chat-stream.http")[:-1]]
        folded = dmr_client.fold_chat_chunks(chunks)
        reply = json.loads(load_capture("chat.http")[2])
        self.assertEqual(folded.choices[0].message, reply["choices"][0]["message"])
        self.assertEqual(folded.choices[0].finish_reason, "stop")
        self.assertEqual(folded.usage.completion_tokens, reply["usage"]["completion_tokens"])
        self.assertEqual((folded.object, folded.id), ("chat.completion", chunks[0]["id"]))

    def test_tool_calls_merge_by_index(self):
        chunks = [
            chunk({"role": "assistant", "content": None}),
            chunk({"reasoning_content": "Need the "}),
            chunk({"reasoning_content": "weather."}),
            chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}},
                                  {"index": 0, "function": {"arguments": "ty\": \"Paris\"}"}}]}),   # same index twice
            chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                   "function": {"name": "get_time", "arguments": "{}"}}]}),
            chunk({}, finish="tool_calls"),
            {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}},
        ]
        message = dmr_client.fold_chat_chunks(chunks).choices[0].message
        self.assertIsNone(message.content)
        self.assertEqual(message.reasoning_content, "Need the weather.")
        self.assertEqual([c.id for c in message.tool_calls], ["call_a", "call_b"])
        self.assertEqual(message.tool_calls[0].function.name, "get_weather")
        self.assertEqual(json.loads(message.tool_calls[0].function.arguments), {"city": "Paris"})
        self.assertEqual(message.tool_calls[1].function.arguments, "{}")
        self.assertEqual(dmr_client.fold_chat_chunks(chunks).usage.total_tokens, 14)

    def test_captured_tool_call_stream_folds_to_the_captured_reply(self):
        # Recorded from llama.cpp's server (tools/llama_server.py capture): Hermes-style tool calls.
        chunks = [json.loads(e[6:]) for e in sse_events("chat-stream-tools.http")[:-1]]
        folded = dmr_client.fold_chat_chunks(chunks).choices[0]
        reply = json.loads(load_capture("chat-tools.http")[2])["choices"][0]
        self.assertEqual(folded.finish_reason, reply["finish_reason"])
        self.assertEqual(folded.finish_reason, "tool_calls")
        [call] = folded.message.tool_calls
        [expected] = reply["message"]["tool_calls"]
        self.assertEqual((call.type, call.function), (expected["type"], expected["function"]))
        self.assertEqual(json.loads(call.function.arguments), {"city": "Paris"})
        self.assertTrue(call.id)
        self.assertEqual(folded.message.content or "", reply["message"]["content"] or "")

    def test_captured_reasoning_stream_folds_to_the_captured_reply(self):
        chunks = [json.loads(e[6:]) for e in sse_events("chat-stream-reasoning.http")[:-1]]
        folded = dmr_client.fold_chat_chunks(chunks)
        reply = json.loads(load_capture("chat-reasoning.http")[2])
        self.assertEqual(folded.choices[0].message, reply["choices"][0]["message"])
        self.assertEqual(folded.choices[0].message.reasoning_content, "The user says hi.\n")
        self.assertEqual(folded.usage.completion_tokens, reply["usage"]["completion_tokens"])

    def test_several_choices_and_logprobs(self):
        chunks = [chunk({"content": "A"}, index=1), chunk({"content": "x"}, index=0,),
                  chunk({"content": "B"}, index=1, ), chunk({}, finish="stop", index=0),
                  chunk({}, finish="length", index=1)]
        chunks[1]["choices"][0]["logprobs"] = {"content": [{"token": "x", "logprob": -0.1}]}
        folded = dmr_client.fold_chat_chunks(chunks)
        self.assertEqual([c.message.content for c in folded.choices], ["x", "AB"])
        self.assertEqual([c.finish_reason for c in folded.choices], ["stop", "length"])
        self.assertEqual(folded.choices[0].logprobs.content[0].token, "x")

    def test_completion_chunks(self):
        chunks = [{"id": "c", "choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in ("a", "b")]
        chunks.append({"id": "c", "choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
        folded = dmr_client.fold_completion_chunks(chunks)
        self.assertEqual((folded.choices[0].text, folded.choices[0].finish_reason), ("ab", "length"))


class TestFoldPieces(unittest.TestCase):
    """ChatFold.pieces: what a stream without usage counts as its tokens."""

    def test_table(self):
        def chunk(delta=None, finish=None, index=0):
            return {"choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}]}
        role = chunk({"role": "assistant", "content": None})
        for chunks, pieces in (
                ([role, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk(finish="stop")], 2),
                ([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), chunk(finish="stop"),
                  {"choices": [], "usage": {"completion_tokens": 1}}], 1),
                ([chunk({"reasoning_content": "hm"}), chunk({"content": "Yes"}), chunk({"content": ""})], 2),
                ([chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}),
                  chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), chunk(finish="tool_calls")], 2),
                ([chunk({"content": "a"}, index=0), chunk({"content": "b"}, index=1)], 2),
                ([chunk({"content": "x"})] * 1100 + [chunk(finish="stop")], 1100)):   # past a joined block
            with self.subTest(chunks=chunks[:4]):
                fold = dmr_client.ChatFold()
                for one in chunks:
                    fold.add(one)
                self.assertEqual(fold.pieces, pieces)
                self.assertEqual(fold.chunks, len(chunks))


class TestParsePullLine(unittest.TestCase):
    def test_lines(self):
        event = dmr_client.parse_pull_line('{"type":"progress","total":10,"layer":{"current":5}}\n')
        self.assertEqual((event.type, event.layer.current), ("progress", 5))
        escaped = html.escape('{"type":"warning","message":"a \\"b\\" & <c>"}')
        self.assertEqual(dmr_client.parse_pull_line(escaped).message, 'a "b" & <c>')
        self.assertIsNone(dmr_client.parse_pull_line("  \n"))

    def test_errors_carry_dmr_words(self):
        with self.assertRaises(dmr_client.PullError) as caught:
            dmr_client.parse_pull_line('{"type":"error","message":"Error: unauthorized"}')
        self.assertEqual(caught.exception.message, "Error: unauthorized")
        with self.assertRaises(dmr_client.PullError) as caught:
            dmr_client.parse_pull_line("error while pulling model: disk full")
        self.assertEqual(caught.exception.message, "error while pulling model: disk full")


# ---------------------------------------------------------------------------
# Pure rules: retries
# ---------------------------------------------------------------------------


class TestParseRetryAfter(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(parse_retry_after({"retry-after": "2"}), 2.0)
        self.assertEqual(parse_retry_after({"retry-after": "1.5"}), 1.5)
        self.assertEqual(parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}), 0.25)
        self.assertAlmostEqual(parse_retry_after({"retry-after": "Sun, 06 Nov 1994 08:49:40 GMT"},
                                                 now=784111770.0), 10.0)
        self.assertEqual(parse_retry_after({"retry-after": "Sun, 06 Nov 1994 08:49:40 GMT"}), 0.0)
        for junk in ({"retry-after": "soon"}, {"retry-after": "-3"}, {}, None, {"retry-after-ms": "x"}):
            self.assertIsNone(parse_retry_after(junk), junk)


class TestRetryPolicy(unittest.TestCase):
    """retry_wait(), the whole policy, as a table: (arguments) -> wait range or give-up note."""

    def headers(self, **fields):
        return dmr_client.HTTPHeaders([(name.replace("_", "-"), value) for name, value in fields.items()])

    def test_table(self):
        wait = dmr_client.retry_wait
        backoff = (0.375, 0.5)
        for args, kwargs, expected, note in (
                ((0, 2), dict(failure="connect"), backoff, ""),
                ((0, 2), dict(failure="refused-local"), None, ""),                   # nothing listens there
                ((0, 2), dict(failure="tls"), None, ""),                             # a certificate cannot change
                ((0, 2), dict(failure="handshake-stalled"), backoff, ""),            # a stalled handshake: once more
                ((1, 2), dict(failure="handshake-stalled"), None, " (after 2 attempts)"),
                ((0, 0), dict(failure="handshake-stalled"), None, ""),
                ((0, 2), dict(failure="connect", replayable=False), backoff, ""),    # nothing was sent
                ((0, 2), dict(failure="no-answer"), backoff, ""),                    # replayable by default
                ((0, 2), dict(failure="stale"), (0.0, 0.0), ""),
                ((0, 2), dict(failure="no-answer", replayable=False), None, "not sent again"),
                ((0, 2), dict(failure="stale", replayable=False), None, "not sent again"),
                ((0, 0), dict(failure="connect"), None, ""),
                ((0, 0), dict(failure="stale"), None, ""),
                ((1, 1), dict(failure="stale"), None, "(after 2 attempts)"),
                ((2, 2), dict(failure="connect"), None, "(after 3 attempts)"),
                ((1, 2), dict(failure="connect"), (0.75, 1.0), ""),
                ((0, 2), dict(status=503), backoff, ""),
                ((0, 2), dict(status=503, headers=None), backoff, ""),
                ((0, 2), dict(status=400), None, ""),
                ((0, 2), dict(status=200), None, ""),
                ((2, 2), dict(status=503), None, "(after 3 attempts)"),
                ((0, 0), dict(status=503), None, ""),
                ((0, 2), dict(status=400, headers={"x-should-retry": "true"}), backoff, ""),
                ((0, 2), dict(status=503, headers={"x-should-retry": "False"}), None, ""),
                ((0, 2), dict(status=503, headers={"retry-after": "3"}), (3.0, 3.0), ""),
                ((0, 2), dict(status=503, headers={"retry-after-ms": "1500"}), (1.5, 1.5), ""),
                ((0, 2), dict(status=429, headers={"retry-after": "60"}), (60.0, 60.0), ""),
                ((0, 2), dict(status=429, headers={"retry-after": "61"}), None, "asked to retry after 61 s"),
                ((0, 2), dict(status=409, retry_statuses=dmr_client.RETRY_STATUSES - {409}), None, ""),
                ((0, 2), dict(status=409), backoff, ""),
                ((0, 2), dict(status=503, early=True), None, "answered before the request was sent whole"),
                ((0, 2), dict(status=429, headers={"retry-after": "1"}, early=True), None, "not sent again"),
                ((0, 2), dict(status=400, headers={"x-should-retry": "true"}, early=True), None, "not sent again"),
                ((0, 2), dict(status=500, message="image input is not supported - hint: if this is unexpected, "
                                                  "you may need to provide the mmproj"), None, ""),
                ((0, 2), dict(status=500, message="Audio input is not supported - hint: ..."), None, ""),
                ((0, 2), dict(status=500, message="the image input is not supported here"), backoff, ""),
                ((0, 2), dict(status=500, message="boom"), backoff, "")):
            with self.subTest(args=args, kwargs=kwargs):
                if isinstance(kwargs.get("headers"), dict):
                    kwargs["headers"] = self.headers(**kwargs["headers"])
                seconds, said = wait(*args, **kwargs)
                if expected is None:
                    self.assertIsNone(seconds)
                    self.assertIn(note, said)
                    self.assertEqual(said == "", note == "")
                else:
                    self.assertTrue(expected[0] <= seconds <= expected[1], seconds)
                    self.assertEqual(said, "")

    def test_backoff_doubles_to_a_cap_with_jitter(self):
        for attempt, top in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)):
            seconds = [dmr_client.retry_wait(attempt, 10, failure="connect")[0] for _ in range(50)]
            self.assertTrue(all(0.75 * top <= s <= top for s in seconds), (attempt, seconds))
            self.assertGreater(len(set(seconds)), 1)   # jittered


# ---------------------------------------------------------------------------
# Pure rules: hints
# ---------------------------------------------------------------------------


class TestHints(unittest.TestCase):
    """_error_hint(): the one table of what to tell the user about an error status."""

    def test_table(self):
        hint = dmr_client._error_hint
        origin = "http://localhost:12434"
        for args, kwargs, expected in (
                ((404, "model not found"), {"model": "ai/x"}, "docker model pull ai/x"),
                ((404, "get model 'x': Model Not Found"), {}, "docker model pull <model>"),
                ((404, "backend not found"), {}, "llama.cpp, vllm"),
                ((404, "404 page not found"), {"origin": origin}, "no such route at " + origin),
                ((404, "Page Not Found"), {"docker_socket": "/var/run/docker.sock"}, "does not serve Model Runner"),
                ((404, "not found"), {"hints": {404: "mine"}, "docker_socket": "/d.sock"}, "does not serve"),
                ((404, "model not found"), {"hints": {404: "mine"}}, "mine"),
                ((404, "File Not Found"), {"where": "dmr", "hints": {404: "no model in the registry"}, "origin": origin},
                 "does not serve Docker Model Runner's own API"),   # llama.cpp asked for a pull
                ((404, "File Not Found"), {"hints": {404: "see models()"}, "origin": origin}, "no such route"),
                ((405, "Method Not Allowed"), {"where": "dmr", "origin": origin},
                 "does not serve Docker Model Runner's own API"),   # a gateway asked for a pull
                ((405, "Method Not Allowed"), {"origin": origin}, None),
                ((409, "busy"), {"hints": {404: "mine"}}, None),
                ((401, "no"), {}, "DOCKER_MODEL_RUNNER_API_KEY"),
                ((503, "Loading model"), {}, "still loading"),
                # `docker model gateway` (model-cli/src/error.rs): its own words for a model and its deployments
                ((404, "The model 'x' does not exist or you do not have access to it."), {},
                 "the gateway serves no model of that name"),
                ((503, "All deployments for model 'x' are unavailable."), {}, "reached none of this model's deployments"),
                ((401, "Invalid API key"), {}, "DOCKER_MODEL_RUNNER_API_KEY"),
                ((412, 'backend "vllm" is not installed; run: docker model install-runner --backend vllm'), {},
                 "install_backend('vllm')"),
                ((412, "vLLM binary not found"), {}, None),
                ((400, "Pooling type 'none' is not OAI compatible"), {}, "embedding model"),
                ((400, "pooling: not OAI compatible"), {}, "embedding model"),
                ((400, "pooling type none"), {}, "embedding model"),
                ((400, "pooling is fine"), {}, None),
                ((400, "value is none; not OAI compatible"), {}, None),
                ((400, "invalid context"), {}, None),
                ((400, "limit exceeded"), {}, None),
                ((300, "Multiple Choices"), {}, "redirects are not followed"),
                ((400, "Multiple Choices"), {}, None),
                ((400, "the request exceeds the available context size"), {}, "--context-size"),
                ((302, "Found"), {}, "redirects are not followed"),
                ((404, "no route here"), {}, None),
                ((400, "No connected db."), {}, "only its master key"),   # LiteLLM, a key it cannot check
                ((400, "/chat/completions: Invalid model name passed in model=llama.cpp/v1. Call `/v1/models` "
                       "to view available models for your key."), {"origin": origin},
                 "use %s/v1 as the base URL" % origin),   # LiteLLM took DMR's engine path for a model
                ((400, "Invalid model name passed in model=nope. Call `/v1/models`"), {"origin": origin}, None),
                ((400, "request too large"), {"sent": 11 << 20}, "the request body was 11 MiB (11,534,336 bytes); "
                                                                 "DMR refuses requests over 10 MiB"),
                ((400, "Request Too Large"), {"sent": 10485761}, "10.0 MiB (10,485,761 bytes)"),
                ((413, "Request body too large"), {"sent": 12345678}, "11.8 MiB"),
                ((413, "Payload Too Large"), {}, "DMR refuses requests over 10 MiB: send a shorter conversation"),
                ((400, "request too large, really"), {"sent": 11 << 20}, None),
                ((500, "request too large"), {"sent": 11 << 20}, None),
                ((400, "request too large"), {"sent": 11 << 20, "media": True}, "scale a picture down"),
                ((413, "Payload Too Large"), {"media": True}, "base64 makes a third larger"),
                ((500, "image input is not supported - hint: if this is unexpected, you may need to provide the "
                       "mmproj"), {}, "no vision support"),
                ((500, "image input is not supported"), {}, "ai/gemma3"),
                ((500, "audio input is not supported - hint: if this is unexpected, you may need to provide the "
                       "mmproj"), {}, "no audio input"),
                ((500, "vision is fine"), {}, None),
                ((500, "boom"), {}, None)):
            with self.subTest(args=args, kwargs=kwargs):
                found = hint(*args, **kwargs)
                if expected is None:
                    self.assertIsNone(found)
                else:
                    self.assertIn(expected, found)

    def test_the_size_hint_speaks_of_pictures_only_when_the_request_carried_some(self):
        plain = dmr_client._error_hint(400, "request too large", sent=11 << 20)
        self.assertNotIn("JPEG", plain)
        self.assertIn("JPEG", dmr_client._error_hint(400, "request too large", sent=11 << 20, media=True))


# ---------------------------------------------------------------------------
# Pure rules: media
# ---------------------------------------------------------------------------


def media_file(name):
    with open(os.path.join(MEDIA, name), "rb") as f:
        return f.read()


class TestMediaRules(unittest.TestCase):
    """image(), audio(), user(): what a file is comes from its first bytes; every kind of source."""

    def test_the_committed_files_are_what_make_py_makes(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("make_media", os.path.join(MEDIA, "make.py"))
        make = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make)
        for name, build in (("tiny.png", make.png), ("tiny.jpg", make.jpeg), ("tiny.gif", make.gif),
                            ("tiny.webp", make.webp), ("tiny.mp3", make.mp3)):
            self.assertEqual(build(), media_file(name), name)

    def test_sniffing_table(self):
        mp3 = media_file("tiny.mp3")
        frame = mp3[mp3.index(b"\xff\xfb"):]
        for data, kind, value in (
                (media_file("tiny.png"), "image", "image/png"),
                (media_file("tiny.jpg"), "image", "image/jpeg"),
                (media_file("tiny.gif"), "image", "image/gif"),
                (b"GIF87a" + media_file("tiny.gif")[6:], "image", "image/gif"),
                (media_file("tiny.webp"), "image", "image/webp"),
                (media_file("tiny.wav"), "audio", "wav"),
                (mp3, "audio", "mp3"),                          # an ID3 tag first
                (frame, "audio", "mp3"),                        # a bare MPEG frame: FF FB
                (b"\xff\xf3\x90\xc0" + bytes(60), "audio", "mp3"),  # MPEG-2 Layer III
                (b"\xff\xe3\x90\xc0" + bytes(60), "audio", "mp3")):  # MPEG-2.5
            with self.subTest(kind=kind, value=value, head=data[:12]):
                if kind == "image":
                    part = dmr_client.image(data)
                    prefix = "data:%s;base64," % value
                    self.assertTrue(part["image_url"]["url"].startswith(prefix), part)
                    self.assertEqual(base64.b64decode(part["image_url"]["url"][len(prefix):]), data)
                    with self.assertRaisesRegex(ValueError, "audio\\(\\) sends WAV or MP3"):
                        dmr_client.audio(data)
                else:
                    part = dmr_client.audio(data)
                    self.assertEqual(part["input_audio"]["format"], value)
                    self.assertEqual(base64.b64decode(part["input_audio"]["data"]), data)
                    with self.assertRaisesRegex(ValueError, "image\\(\\) sends PNG, JPEG, GIF or WebP"):
                        dmr_client.image(data)

    def test_refusals_say_what_was_found(self):
        for data, found in (
                (b"%PDF-1.7\n%\xe2\xe3", "a PDF document"),
                (b"<!DOCTYPE html>\n<html>", "HTML"),
                (b"\n  <html lang=en>", "HTML"),
                (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "an SVG drawing"),
                (b"BM6\x00\x00\x00", "a BMP picture"),
                (b"\x00\x00\x00\x18ftypheic", "a HEIC picture"),
                (b"\x00\x00\x00\x1cftypavif", "an AVIF picture"),
                (b"\x00\x00\x00\x20ftypisom", "an MP4"),
                (b"PK\x03\x04\x14\x00", "a ZIP archive"),
                (b"fLaC\x00\x00", "FLAC audio"),
                (b"OggS\x00\x02", "an Ogg file"),
                (b"RIFF\x24\x00\x00\x00AVI LIST", "unknown bytes starting b'RIFF$"),
                (b"\xff\xf1\x50\x80", "unknown bytes"),       # AAC's ADTS: frame sync, layer 00
                (b"hello, world\n", "text"),
                ("caf\u00e9 \u2615".encode()[:-1], "text"),                  # UTF-8, cut in a character
                (b'{"a": 1}', "JSON"),
                (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "unknown bytes starting b'\\x00\\x01\\x02")):
            with self.subTest(found=found):
                for make, accepted in ((dmr_client.image, "image() sends PNG, JPEG, GIF or WebP pictures"),
                                       (dmr_client.audio, "audio() sends WAV or MP3 sounds")):
                    with self.assertRaises(ValueError) as caught:
                        make(data)
                    self.assertIn("looks like " + found, str(caught.exception))
                    self.assertIn(accepted, str(caught.exception))
        self.assertIn("a PNG picture", str(self.refusal(dmr_client.audio, media_file("tiny.png"))))
        self.assertIn("a WAV sound", str(self.refusal(dmr_client.image, media_file("tiny.wav"))))

    def refusal(self, make, src, error=ValueError):
        with self.assertRaises(error) as caught:
            make(src)
        return caught.exception

    def test_every_kind_of_source(self):
        import io
        import pathlib

        png = media_file("tiny.png")
        path = os.path.join(MEDIA, "tiny.png")
        expected = {"type": "image_url", "image_url": {"url": "data:image/png;base64," +
                                                              base64.b64encode(png).decode()}}
        with open(path, "rb") as binary:
            sources = [path, pathlib.Path(path), png, bytearray(png), memoryview(png), io.BytesIO(png), binary]
            for src in sources:
                with self.subTest(src=type(src).__name__):
                    self.assertEqual(dmr_client.image(src), expected)
        wav = media_file("tiny.wav")
        for src in (os.path.join(MEDIA, "tiny.wav"), pathlib.Path(MEDIA, "tiny.wav"), wav, io.BytesIO(wav)):
            with self.subTest(src=type(src).__name__):
                self.assertEqual(dmr_client.audio(src), {"type": "input_audio", "input_audio": {
                    "data": base64.b64encode(wav).decode(), "format": "wav"}})

    def test_urls_go_as_they_are_for_pictures_and_are_refused_for_sound(self):
        for url in ("http://example.com/cat.png", "https://example.com/cat.jpg", "data:image/png;base64,iVBORw0K",
                    "HTTPS://EXAMPLE.COM/CAT.PNG"):
            with self.subTest(url=url):
                self.assertEqual(dmr_client.image(url), {"type": "image_url", "image_url": {"url": url}})
                error = self.refusal(dmr_client.audio, url)
                self.assertIn("not a URL", str(error))
                self.assertIn("input_audio part carries the sound itself", str(error))
        self.assertEqual(dmr_client.image("https://x/c.png", detail="low"),
                         {"type": "image_url", "image_url": {"url": "https://x/c.png", "detail": "low"}})
        for detail in ("auto", "low", "high"):
            self.assertEqual(dmr_client.image(media_file("tiny.gif"), detail=detail)["image_url"]["detail"], detail)
        self.assertNotIn("detail", dmr_client.image(media_file("tiny.gif"))["image_url"])
        self.assertIn("auto, low, high", str(self.refusal(lambda src: dmr_client.image(src, detail="max"),
                                                          media_file("tiny.gif"))))

    def test_refused_sources(self):
        import io

        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        empty = os.path.join(folder, "empty.png")
        open(empty, "wb").close()
        for make in (dmr_client.image, dmr_client.audio):
            with self.subTest(make=make.__name__):
                self.assertIn("empty.png: empty (0 bytes)", str(self.refusal(make, empty)))
                self.assertIn("empty (0 bytes)", str(self.refusal(make, b"")))
                missing = self.refusal(make, os.path.join(folder, "cat.png"), FileNotFoundError)
                self.assertIn("No such file", str(missing))
                self.assertIn("cat.png", str(missing))
                self.assertIn("No such file", str(self.refusal(make, "iVBORw0KGgo" * 100, FileNotFoundError)))
                text = self.refusal(make, io.StringIO("a picture"), TypeError)
                self.assertIn('open it with "rb"', str(text))
                self.assertIn("path, bytes or a binary file object", str(self.refusal(make, 42, TypeError)))
                self.assertIn("not bytes", str(self.refusal(make, mock.Mock(read=lambda: 7, name=None), TypeError)))
        self.assertIn("or an http://, https:// or data: URL",
                      str(self.refusal(dmr_client.image, "nope.png", FileNotFoundError)))

    def test_user_messages(self):
        picture = dmr_client.image(media_file("tiny.png"))
        sound = dmr_client.audio(media_file("tiny.wav"))
        self.assertEqual(dmr_client.user("What is in this picture?", picture),
                         {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}, picture]})
        self.assertEqual(dmr_client.user("Compare", picture, "with", sound)["content"],
                         [{"type": "text", "text": "Compare"}, picture, {"type": "text", "text": "with"}, sound])
        for text in (None, ""):
            self.assertEqual(dmr_client.user(text, picture), {"role": "user", "content": [picture]})
        self.assertEqual(dmr_client.user("just text"), {"role": "user", "content": [{"type": "text",
                                                                                     "text": "just text"}]})
        for args, error in (((None,), ValueError), (("",), ValueError), ((b"bytes",), TypeError),
                            (("hi", b"\x89PNG"), TypeError), (("hi", {"no": "type"}), TypeError),
                            (("hi", ["text"]), TypeError)):
            with self.subTest(args=args):
                with self.assertRaises(error):
                    dmr_client.user(*args)

    def test_what_counts_as_a_body_with_media(self):
        encode = json.JSONEncoder(separators=(",", ":")).encode
        for message, carries in ((dmr_client.user("x", dmr_client.image(media_file("tiny.png"))), True),
                                 (dmr_client.user("x", dmr_client.audio(media_file("tiny.mp3"))), True),
                                 (dmr_client.user("x", dmr_client.image("https://x/c.png")), False),
                                 ({"role": "user", "content": "x"}, False)):
            with self.subTest(message=str(message)[:80]):
                body = encode({"model": "m", "messages": [message]}).encode()
                self.assertEqual(dmr_client._carries_media(body), carries)
        self.assertFalse(dmr_client._carries_media(None))


# ---------------------------------------------------------------------------
# Pure rules: running models
# ---------------------------------------------------------------------------


class TestRunningRules(unittest.TestCase):
    """The pure rules under the running-model calls."""

    def test_speed_from_server_timings_or_the_clock(self):
        timings = {"prompt_n": 20, "prompt_ms": 40.0, "prompt_per_second": 500.0, "predicted_n": 9,
                   "predicted_ms": 90.0, "predicted_per_second": 100.0}
        usage = {"prompt_tokens": 21, "completion_tokens": 9}
        stats = dmr_client.speed_stats({"usage": usage, "timings": timings})
        self.assertEqual((stats.source, stats.prompt_tokens_per_s, stats.generated_tokens_per_s), ("server", 500.0, 100.0))
        self.assertEqual((stats.time_to_first_token_s, stats.total_s), (0.04, 0.13))
        self.assertEqual((stats.prompt_tokens, stats.completion_tokens), (21, 9))
        self.assertIsNone(stats.context_tokens)   # no total_tokens and no cache_n: unknown
        timings["cache_n"] = 1
        self.assertEqual(dmr_client.speed_stats({"timings": timings}).context_tokens, 30)
        for reply, prompt_tokens in (({"timings": timings}, 21),   # a stream without usage: cached + new
                                     ({"timings": dict(timings, cache_n=None)}, 20),
                                     ({"timings": dict(timings, prompt_n=None)}, None),
                                     ({"usage": {"prompt_tokens": 7}, "timings": timings}, 7)):   # usage first
            with self.subTest(reply=reply):
                self.assertEqual(dmr_client.speed_stats(reply).prompt_tokens, prompt_tokens)
        stats = dmr_client.speed_stats({"usage": usage, "timings": timings}, elapsed=0.5, first_token=0.2)
        self.assertEqual((stats.source, stats.time_to_first_token_s, stats.total_s), ("server", 0.2, 0.5))
        stats = dmr_client.speed_stats({"usage": usage}, elapsed=1.0, first_token=0.1)
        self.assertEqual(stats.source, "client")
        self.assertAlmostEqual(stats.generated_tokens_per_s, 10.0)
        self.assertAlmostEqual(stats.prompt_tokens_per_s, 210.0)
        stats = dmr_client.speed_stats({}, elapsed=2.0, first_token=1.0, chunks=5)
        self.assertEqual((stats.source, stats.completion_tokens, stats.generated_tokens_per_s),
                         ("client, chunks counted", 5, 5.0))
        stats = dmr_client.speed_stats({})
        self.assertEqual((stats.source, stats.generated_tokens_per_s), (None, None))

    def test_a_completion_copies_and_pickles_with_its_timing(self):
        reply = dmr_client.Completion.timed(dmr_client.loads('{"choices": [], "usage": {"completion_tokens": 4}}'),
                                            2.0, 1.0)
        for copied in (pickle.loads(pickle.dumps(reply)), copy.deepcopy(reply), copy.copy(reply)):
            self.assertIsInstance(copied, dmr_client.Completion)
            self.assertEqual(copied, reply)
            self.assertEqual(copied.stats, reply.stats)
            self.assertEqual(copied.stats.generated_tokens_per_s, 4.0)
        self.assertEqual(json.loads(json.dumps(reply)), {"choices": [], "usage": {"completion_tokens": 4}})

    def test_split_thinking(self):
        for text, expected in (("<think>plan it</think>\n\nHello", ("plan it", "Hello")),
                               ("  <think>\nplan\n</think>Hi", ("plan", "Hi")),
                               ("plan it</think>Hello", ("plan it", "Hello")),   # the template opened the tag
                               ("<think>still thinking", ("still thinking", "")),
                               ("Hello", ("", "Hello")), ("", ("", ""))):
            with self.subTest(text=text):
                self.assertEqual(dmr_client.split_thinking(text), expected)
        with self.assertRaises(TypeError):
            dmr_client.split_thinking(None)

    def test_keep_alive_and_configure_bodies(self):
        body = dmr_client._configure_body("ai/x", 8192, "1h30m", ["--threads", "4"], 0, "completion")
        self.assertEqual(body, {"model": "ai/x", "context-size": 8192, "keep_alive": "1h30m",
                                "runtime-flags": ["--threads", "4"], "llamacpp": {"reasoning-budget": 0},
                                "mode": "completion"})
        for value, wire in (("5m", "5m"), ("-1", "-1"), ("0", "0"), (-1, "-1"), (0, "0s"), (300, "300s"),
                            (1.5, "1.5s"), ("250ms", "250ms"), ("2h45m30s", "2h45m30s")):
            self.assertEqual(dmr_client._keep_alive(value), wire)
        for bad, error in (("5 minutes", ValueError), ("-5m", ValueError), ("", ValueError), (-2, ValueError),
                           (True, TypeError), ([], TypeError)):
            with self.subTest(keep_alive=bad):
                with self.assertRaises(error):
                    dmr_client._keep_alive(bad)
        for kwargs, error in (({"context_size": 0}, ValueError), ({"context_size": 4096.0}, ValueError),
                              ({"context_size": True}, ValueError), ({"runtime_flags": "--threads 4"}, TypeError),
                              ({"runtime_flags": [4]}, TypeError), ({"reasoning_budget": -2}, ValueError),
                              ({"mode": "chat"}, ValueError), ({}, ValueError)):
            with self.subTest(kwargs=kwargs):
                arguments = dict(context_size=None, keep_alive=None, runtime_flags=None, reasoning_budget=None,
                                 mode=None)
                arguments.update(kwargs)
                with self.assertRaises(error):
                    dmr_client._configure_body("ai/x", **arguments)

    def test_running_model_names(self):
        for reported, name, same in (("docker.io/ai/x:latest", "ai/x", True), ("ai/x", "docker.io/ai/x:latest", True),
                                     ("ai/x:Q4", "ai/x", False), ("ai/xy", "ai/x", False), (None, "ai/x", False)):
            self.assertEqual(dmr_client._same_model(reported, name), same, (reported, name))

    def test_nearest_rank_percentiles(self):
        for values, percent, expected in (([], 50, None), ([5.0], 50, 5.0), ([5.0], 95, 5.0), ([1, 2], 50, 1),
                                          ([1, 2, 3, 4], 50, 2), ([3, 1, 2], 50, 2), ([4, 3, 2, 1], 95, 4),
                                          (list(range(1, 21)), 95, 19), (list(range(1, 22)), 95, 20),
                                          (list(range(1, 11)), 95, 10), (list(range(1, 101)), 50, 50),
                                          (list(range(1, 101)), 95, 95), ([2, 1], 100, 2)):
            with self.subTest(values=values, percent=percent):
                self.assertEqual(dmr_client._nearest_rank(values, percent), expected)

    def test_a_benchmark_level_from_its_requests(self):
        def record(ttft, tokens, speed=None, prompt=None, source="server"):
            return dmr_client.AttrDict(time_to_first_token_s=ttft, completion_tokens=tokens,
                                       generated_tokens_per_s=speed, prompt_tokens_per_s=prompt, source=source)
        three = [record(0.1, 10, 50.0, 400.0), record(0.3, 20, 100.0), record(0.2, 30, None, None, "client")]
        for name, args, expected in (
                ("three requests in 2 s, one failed", (4, three, 2.0, 1),
                 dict(concurrency=4, requests=3, failed=1, elapsed_s=2.0, completion_tokens=60, tokens_per_s=30.0,
                      requests_per_s=1.5, ttft_p50_s=0.2, ttft_p95_s=0.3, ttft_mean_s=0.2, stream_tokens_per_s=75.0,
                      prompt_tokens_per_s=400.0, source="mixed", stopped=False)),
                ("all from llama.cpp's timings, stopped by Ctrl-C", (1, three[:2], 0.5, 0, True),
                 dict(concurrency=1, requests=2, failed=0, elapsed_s=0.5, completion_tokens=30, tokens_per_s=60.0,
                      requests_per_s=4.0, ttft_p50_s=0.1, ttft_p95_s=0.3, ttft_mean_s=0.2, stream_tokens_per_s=75.0,
                      prompt_tokens_per_s=400.0, source="server", stopped=True)),
                ("chunks counted is the client's clock; an unknown TTFT is left out",
                 (2, [record(None, 5, 10.0, None, "client, chunks counted"), record(0.4, None, None, None, None)],
                  1.0),
                 dict(concurrency=2, requests=2, failed=0, elapsed_s=1.0, completion_tokens=5, tokens_per_s=5.0,
                      requests_per_s=2.0, ttft_p50_s=0.4, ttft_p95_s=0.4, ttft_mean_s=0.4, stream_tokens_per_s=10.0,
                      prompt_tokens_per_s=None, source="client", stopped=False)),
                ("every request failed", (8, [], 3.0, 5),
                 dict(concurrency=8, requests=0, failed=5, elapsed_s=3.0, completion_tokens=0, tokens_per_s=0.0,
                      requests_per_s=0.0, ttft_p50_s=None, ttft_p95_s=None, ttft_mean_s=None, stream_tokens_per_s=None,
                      prompt_tokens_per_s=None, source=None, stopped=False)),
                ("no time at all: no rates", (1, three[:1], 0.0),
                 dict(concurrency=1, requests=1, failed=0, elapsed_s=0.0, completion_tokens=10, tokens_per_s=None,
                      requests_per_s=None, ttft_p50_s=0.1, ttft_p95_s=0.1, ttft_mean_s=0.1, stream_tokens_per_s=50.0,
                      prompt_tokens_per_s=400.0, source="server", stopped=False))):
            with self.subTest(name):
                level = dmr_client._bench_level(*args)
                self.assertEqual(set(level), set(expected))
                for key, value in expected.items():
                    if isinstance(value, float):
                        self.assertAlmostEqual(level[key], value, msg=key)
                    else:
                        self.assertEqual(level[key], value, key)

    def test_metrics_parser(self):
        parsed = dmr_client.parse_metrics(FakeDMR.METRICS + 'escaped{a="x\\"y",b="2"} -1.5e3 1700000000\n')
        self.assertEqual(parsed["llamacpp:prompt_tokens_total"], [({"backend": "llama.cpp", "model": "ai/smollm2"}, 1234.0)])
        self.assertEqual(parsed["go_goroutines"], [({}, 42.0)])
        self.assertEqual(parsed["escaped"], [({"a": 'x"y', "b": "2"}, -1500.0)])
        for bad in ("no value here", 'x{a=1} 2', "x 1 2 3", "x abc"):
            with self.subTest(line=bad):
                with self.assertRaises(dmr_client.InvalidResponseError):
                    dmr_client.parse_metrics(bad)


# ---------------------------------------------------------------------------
# Pure rules: schemas
# ---------------------------------------------------------------------------



class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Address:
    """Where someone lives."""
    street: str
    zip: Optional[str] = None


@dataclasses.dataclass
class Person:
    name: str = dataclasses.field(metadata={"description": "the full name"})
    age: int
    address: Address
    color: Color = Color.RED
    tags: List[str] = dataclasses.field(default_factory=list)
    kind: Literal["a", "b"] = "a"


@dataclasses.dataclass
class Tree:
    value: int
    children: List[Tree]


class Point(NamedTuple):
    x: float
    y: float = 0.0


class Movie(TypedDict):
    title: str
    year: int


class PartialMovie(TypedDict, total=False):
    title: str


@dataclasses.dataclass
class Tagged:
    tags: typing.Set[str]


@dataclasses.dataclass
class Hook:
    run: typing.Callable[[], None]


@dataclasses.dataclass
class Lost:
    where: NoSuchName  # noqa: F821  (the refusal under test)


@dataclasses.dataclass
class Shapes:
    pair: Tuple[int, str]
    many: Tuple[int, ...]
    table: Dict[str, float]
    either: Union[int, str]
    anything: Any


Home = typing.NewType("Home", Address)


class Registry(TypedDict):
    home: Address
    homes: Dict[str, Address]


@dataclasses.dataclass
class Nested:
    """Every container around a type that must be built: the builder must reach inside each."""
    pair: Tuple[int, Address]
    many: Tuple[Address, ...]
    table: Dict[str, Address]
    home: Home
    registry: Registry
    either: Union[int, Address]
    bare: tuple
    listed: list


@dataclasses.dataclass
class Picky:
    x: int

    def __post_init__(self):
        if self.x % 2:
            raise ValueError("x must be even")


#: A model as llama.cpp's server lists it: what it tells of the model in ``meta``.
LLAMA_SERVER_MODEL = {"id": "ai/tiny", "aliases": ["ai/tiny"], "object": "model", "owned_by": "llamacpp",
                      "meta": {"vocab_type": 2, "n_vocab": 151936, "n_ctx": 8192, "n_ctx_train": 32768,
                               "n_params": 361821056, "size": 268763136, "ftype": "Q4_K - Medium"}}


class PydanticLike:
    """Duck-typed as pydantic: json_schema() asks it, _build() lets it validate."""

    def __init__(self, **fields):
        self.fields = fields

    @classmethod
    def model_json_schema(cls):
        return {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "title": "PydanticLike"}

    @classmethod
    def model_validate(cls, value):
        return cls(**value)


NOTHING = object()   # no instance fits
S, INT, N, B, NULL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}


class TestJSONSchema(unittest.TestCase):
    def test_simple_types(self):
        table = [(str, S), (int, INT), (float, N), (bool, B), (None, NULL), (type(None), NULL), (Any, {}),
                 (List[int], {"type": "array", "items": INT}), (list, {"type": "array"}),
                 (Dict[str, bool], {"type": "object", "additionalProperties": B}), (dict, {"type": "object"}),
                 (Optional[str], {"anyOf": [S, NULL]}), (Union[int, str, None], {"anyOf": [INT, S, NULL]}),
                 (Tuple[int, str], {"type": "array", "prefixItems": [INT, S], "minItems": 2, "maxItems": 2}),
                 (Tuple[int, ...], {"type": "array", "items": INT}),
                 (Literal["x", "y"], {"type": "string", "enum": ["x", "y"]}),
                 (Literal[1, "one"], {"enum": [1, "one"]}),
                 (typing.Sequence[str], {"type": "array", "items": S}),
                 (typing.NewType("UserId", int), INT)]
        for tp, expected in table:
            with self.subTest(tp=tp):
                self.assertEqual(dmr_client.json_schema(tp), expected)

    def test_newer_typing_forms(self):
        if sys.version_info >= (3, 9):
            self.assertEqual(dmr_client.json_schema(eval("list[dict[str, int]]")),
                             {"type": "array", "items": {"type": "object", "additionalProperties": INT}})
            self.assertEqual(dmr_client.json_schema(eval("tuple[int, ...]")), {"type": "array", "items": INT})
            annotated = typing.Annotated[int, "how many", 3]
            self.assertEqual(dmr_client.json_schema(annotated), dict(INT, description="how many"))
        if sys.version_info >= (3, 10):
            self.assertEqual(dmr_client.json_schema(eval("int | None")), {"anyOf": [INT, NULL]})

    def test_a_dataclass_with_nested_types_defaults_and_docs(self):
        schema = dmr_client.json_schema(Person)
        self.assertEqual(schema["type"], "object")
        self.assertEqual(schema["required"], ["name", "age", "address"])
        self.assertIs(schema["additionalProperties"], False)
        self.assertEqual(schema["properties"]["name"], dict(S, description="the full name"))
        self.assertEqual(schema["properties"]["address"], {"$ref": "#/$defs/Address"})
        self.assertEqual(schema["properties"]["color"], {"$ref": "#/$defs/Color", "default": "red"})
        self.assertEqual(schema["properties"]["tags"], {"type": "array", "items": S})   # a factory: no default
        self.assertEqual(schema["properties"]["kind"], {"type": "string", "enum": ["a", "b"], "default": "a"})
        self.assertEqual(schema["$defs"]["Color"], {"type": "string", "enum": ["red", "blue"]})
        address = schema["$defs"]["Address"]
        self.assertEqual(address["description"], "Where someone lives.")
        self.assertEqual(address["properties"]["zip"], {"anyOf": [S, NULL], "default": None})
        self.assertEqual(address["required"], ["street"])
        self.assertNotIn("description", schema)   # dataclass's generated "Person(name: str, ...)" is no doc

    def test_recursive_types_refer_to_their_def(self):
        schema = dmr_client.json_schema(Tree)
        self.assertEqual(schema["properties"]["children"], {"type": "array", "items": {"$ref": "#/$defs/Tree"}})
        self.assertEqual(schema["$defs"]["Tree"]["properties"], schema["properties"])
        dmr_client.validate({"value": 1, "children": [{"value": 2, "children": []}]}, schema)
        with self.assertRaises(dmr_client.ValidationError) as caught:
            dmr_client.validate({"value": 1, "children": [{"value": "2", "children": []}]}, schema)
        self.assertEqual(caught.exception.path, "$.children[0].value")

    def test_named_tuples_and_typed_dicts_are_objects(self):
        self.assertEqual(dmr_client.json_schema(Point), {
            "type": "object", "properties": {"x": N, "y": dict(N, default=0.0)}, "required": ["x"],
            "additionalProperties": False})
        self.assertEqual(dmr_client.json_schema(Movie)["required"], ["title", "year"])
        self.assertEqual(dmr_client.json_schema(PartialMovie)["required"], [])

    def test_strict_makes_every_field_required(self):
        schema = dmr_client.json_schema(Address, strict=True)
        self.assertEqual(schema["required"], ["street", "zip"])
        self.assertIs(schema["additionalProperties"], False)
        self.assertNotIn("default", schema["properties"]["zip"])

    def test_a_schema_dict_is_returned_as_is_and_pydantic_answers_its_own(self):
        given = {"type": "object"}
        self.assertIs(dmr_client.json_schema(given), given)
        self.assertEqual(dmr_client.json_schema(PydanticLike)["title"], "PydanticLike")

    def test_what_json_schema_cannot_say_is_a_type_error_naming_the_field(self):
        table = [(Tagged, "field 'tags' of Tagged: a set"), (Hook, "field 'run' of Hook: a callable"),
                 (Lost, "'where' of Lost: its annotation 'NoSuchName' does not resolve"),
                 (Dict[int, str], "keys must be str"), (bytes, "JSON has no bytes"),
                 (Literal[b"x"], "cannot be said in JSON"), (complex, "complex has no JSON Schema form")]
        for tp, words in table:
            with self.subTest(tp=tp), self.assertRaises(TypeError) as caught:
                dmr_client.json_schema(tp)
            self.assertIn(words, str(caught.exception))


class TestSchemaTypeNames(unittest.TestCase):
    def test_a_type_name_json_schema_lacks_is_found_before_sending(self):
        table = [({"type": "object", "properties": {"a": {"type": "strin"}}},
                  'unknown type "strin" at $.properties.a.type'),
                 ({"anyOf": [{"type": ["string", "nul"]}]}, 'unknown type "nul" at $.anyOf[0].type'),
                 ({"items": {"type": 3}}, "unknown type 3 at $.items.type"),
                 ({"type": "object", "properties": {"type": {"type": "string"}}, "enum": [{"type": "x"}]}, None),
                 (dmr_client.json_schema(Person), None)]
        for schema, said in table:
            with self.subTest(schema=schema):
                wrong = dmr_client._schema_type_problem(schema)
                self.assertEqual(wrong and wrong.split(" (")[0], said)


class TestValidate(unittest.TestCase):
    def fails(self, instance, schema):
        with self.assertRaises(dmr_client.ValidationError) as caught:
            dmr_client.validate(instance, schema)
        self.assertIsInstance(caught.exception, ValueError)
        return caught.exception.path, caught.exception.message

    def test_each_keyword_passes_and_fails_with_its_path_and_message(self):
        obj = {"type": "object", "properties": {"zip": S}, "required": ["zip"], "additionalProperties": False}
        table = [
            (S, "x", 123, ("$", "expected string, got 123")),
            (INT, 3, 3.5, ("$", "expected integer, got 3.5")),
            (INT, 3.0, True, ("$", "expected integer, got true")),
            (N, 2, "2", ("$", 'expected number, got "2"')),
            (B, False, 0, ("$", "expected boolean, got 0")),
            (NULL, None, "", ("$", 'expected null, got ""')),
            ({"type": ["string", "null"]}, None, 1, ("$", "expected string or null, got 1")),
            (obj, {"zip": "1"}, {}, ("$.zip", "is required but missing")),
            (obj, {"zip": "1"}, {"zip": "1", "x": 1}, ("$.x", "is not an allowed property (allowed: zip)")),
            ({"properties": {"a b": INT}}, {"a b": 1}, {"a b": "1"}, ('$["a b"]', 'expected integer, got "1"')),
            ({"additionalProperties": INT}, {"n": 1}, {"n": "1"}, ("$.n", 'expected integer, got "1"')),
            ({"items": INT}, [1, 2], [1, "2"], ("$[1]", 'expected integer, got "2"')),
            ({"prefixItems": [INT, S]}, [1, "a", None], ["a"], ("$[0]", 'expected integer, got "a"')),
            ({"items": [INT, S]}, [1, "a"], [1, 2], ("$[1]", "expected string, got 2")),
            ({"enum": ["a", 1]}, 1, True, ("$", 'expected one of "a", 1, got true')),
            ({"const": {"a": [1]}}, {"a": [1.0]}, {"a": [2]}, ("$", 'expected {"a": [1]}, got {"a": [2]}')),
            ({"anyOf": [S, INT]}, 1, None, ("$", "expected string or integer, got null")),
            ({"anyOf": [{"minimum": 5}, {"maximum": 1}]}, 7, 3, ("$", "expected a number >= 5, got 3")),
            ({"oneOf": [INT, N]}, 1.5, 1, ("$", "fits 2 of the oneOf forms, and must fit exactly one: 1")),
            ({"allOf": [INT, {"minimum": 0}]}, 0, -1, ("$", "expected a number >= 0, got -1")),
            ({"maximum": 10}, 10, 11, ("$", "expected a number <= 10, got 11")),
            ({"exclusiveMinimum": 0}, 1, 0, ("$", "expected a number > 0, got 0")),
            ({"exclusiveMaximum": 1}, 0, 1, ("$", "expected a number < 1, got 1")),
            ({"minLength": 2}, "ab", "a", ("$", 'expected a string of at least 2 characters, got "a"')),
            ({"maxLength": 1}, "é", "ab", ("$", 'expected a string of at most 1 character, got "ab"')),
            ({"minItems": 1}, [0], [], ("$", "expected at least 1 item, got 0")),
            ({"minItems": 2}, [0, 1], [0], ("$", "expected at least 2 items, got 1")),
            ({"maxItems": 2}, [0, 1], [0, 1, 2], ("$", "expected at most 2 items, got 3")),
            ({"minLength": 1}, "a", "", ("$", 'expected a string of at least 1 character, got ""')),
            ({"maxLength": 2}, "ab", "abc", ("$", 'expected a string of at most 2 characters, got "abc"')),
            ({"items": [INT], "additionalItems": S}, [1, "a"], [1, 2], ("$[1]", "expected string, got 2")),
            ({"additionalProperties": False}, {}, {"a": 1}, ("$.a", "is not an allowed property (allowed: none)")),
            ({"properties": {"a": INT, "b": INT}, "additionalProperties": False}, {"a": 1}, {"c": 1},
             ("$.c", "is not an allowed property (allowed: a, b)")),
            ({"enum": [[1, 2], {"a": None}]}, {"a": None}, [1, 2, 3], ("$", 'expected one of [1, 2], {"a": null}, got [1, 2, 3]')),
            ({"maxItems": 1}, [0], [0, 1], ("$", "expected at most 1 item, got 2")),
            ({"pattern": "^[0-9]{5}$"}, "75001", "7500", ("$", 'expected a string matching "^[0-9]{5}$", got "7500"')),
            ({"$defs": {"Z": S}, "properties": {"z": {"$ref": "#/$defs/Z"}}}, {"z": "1"}, {"z": 1},
             ("$.z", "expected string, got 1")),
            ({"definitions": {"Z": S}, "items": {"$ref": "#/definitions/Z"}}, ["a"], [1], ("$[0]", "expected string, got 1")),
            (False, NOTHING, None, ("$", "is not allowed here (the schema allows nothing)")),
        ]
        for schema, good, bad, failure in table:
            with self.subTest(schema=schema, bad=bad):
                if good is not NOTHING:
                    self.assertIsNone(dmr_client.validate(good, schema))
                self.assertEqual(self.fails(bad, schema), failure)

    def test_json_equality_by_table(self):
        table = [(1, 1.0, True), (True, 1, False), (1, True, False), (False, False, True), ("a", "a", True),
                 ("1", 1, False), ([1, [2]], (1, (2.0,)), True), ([1], [1, 2], False), ([1], 1, False), (1, [1], False),
                 ({"a": 1}, {"a": 1.0}, True), ({"a": 1}, {"b": 1}, False), ({"a": 1}, [("a", 1)], False),
                 ([], {}, False), (None, None, True), (None, False, False), ("a", "b", False), (0.5, 0.25, False)]
        for a, b, equal in table:
            with self.subTest(a=a, b=b):
                self.assertIs(dmr_client._json_equal(a, b), equal)
                self.assertIs(dmr_client._json_equal(b, a), equal)

    def test_the_depth_limit_is_exact(self):
        def nested(levels):
            value: Any = "leaf"
            for _ in range(levels):
                value = [value]
            return value
        # each level of the array is two steps: its items' schema, then the $ref back to the root
        schema = {"items": {"$ref": "#"}}
        dmr_client.validate(nested(dmr_client.MAX_SCHEMA_DEPTH // 2), schema)
        with self.assertRaises(dmr_client.ValidationError):
            dmr_client.validate(nested(dmr_client.MAX_SCHEMA_DEPTH // 2 + 1), schema)
        dmr_client.validate({"a": nested(dmr_client.MAX_SCHEMA_DEPTH - 2)}, {"additionalProperties": {"anyOf": [True]}})
        def objects(levels):   # three steps a level: the property, allOf's form, the $ref
            value: Any = "leaf"
            for _ in range(levels):
                value = {"a": value}
            return value
        schema = {"properties": {"a": {"allOf": [{"$ref": "#"}]}}}
        dmr_client.validate(objects(dmr_client.MAX_SCHEMA_DEPTH // 3), schema)
        with self.assertRaises(dmr_client.ValidationError):
            dmr_client.validate(objects(dmr_client.MAX_SCHEMA_DEPTH // 3 + 1), schema)

    def test_str_of_the_error_is_path_then_message(self):
        schema = dmr_client.json_schema(Person)
        with self.assertRaises(dmr_client.ValidationError) as caught:
            dmr_client.validate({"name": "A", "age": 1, "address": {"street": "s", "zip": 123}}, schema)
        self.assertEqual(str(caught.exception), "$.address.zip: expected string or null, got 123")

    def test_unknown_keywords_and_true_pass(self):
        dmr_client.validate({"x": 1}, {"format": "email", "x-anything": 1})
        dmr_client.validate(True, {"minimum": 5, "maxLength": 0})   # a boolean is no number and no string
        dmr_client.validate([1], True)

    def test_deep_instances_and_endless_refs_are_refused_cleanly(self):
        deep: Any = "leaf"
        for _ in range(40000):
            deep = [deep]
        path, message = self.fails(deep, {"items": {"$ref": "#"}})
        self.assertIn("nested deeper than %d levels" % dmr_client.MAX_SCHEMA_DEPTH, message)
        self.assertTrue(path.startswith("$[0][0]"))
        path, message = self.fails(1, {"$ref": "#"})   # a schema that refers to itself forever
        self.assertIn("nested deeper than", message)
        nested: Any = {}
        for _ in range(40000):
            nested = {"anyOf": [nested]}
        self.assertIn("nested deeper than", self.fails(1, nested)[1])

    def test_a_schema_that_is_not_one_is_a_value_error_not_a_misfit(self):
        with self.assertRaises(ValueError) as caught:
            dmr_client.validate([1], {"items": 3})
        self.assertEqual(str(caught.exception), "a schema at $[0] is 3, not an object or a boolean")
        for schema, words in (({"$ref": "http://example.com/s.json"}, "only refs inside the schema"),
                              ({"$ref": "#/$defs/Nope"}, "goes nowhere"), ({"type": "text"}, "unknown type 'text'")):
            with self.subTest(schema=schema), self.assertRaises(ValueError) as caught:
                dmr_client.validate("x", schema)
            self.assertNotIsInstance(caught.exception, dmr_client.ValidationError)
            self.assertIn(words, str(caught.exception))
        with self.assertRaises(TypeError):
            dmr_client.validate(1, "string")


class TestBuild(unittest.TestCase):
    def test_json_that_fits_becomes_the_type(self):
        value = {"name": "Ada", "age": 36.0, "address": {"street": "Main"}, "color": "blue", "tags": ["x"]}
        dmr_client.validate(value, dmr_client.json_schema(Person))
        person = dmr_client._build(Person, value)
        self.assertEqual(person, Person("Ada", 36, Address("Main"), Color.BLUE, ["x"]))
        self.assertIs(type(person.age), int)
        self.assertEqual(dmr_client._build(Point, {"x": 1}), Point(1.0, 0.0))
        self.assertIs(type(dmr_client._build(Point, {"x": 1}).x), float)
        self.assertEqual(dmr_client._build(Tree, {"value": 1, "children": [{"value": 2, "children": []}]}),
                         Tree(1, [Tree(2, [])]))
        shapes = dmr_client._build(Shapes, {"pair": [1, "a"], "many": [1, 2], "table": {"k": 1},
                                            "either": "s", "anything": {"a": [1]}})
        self.assertEqual(shapes, Shapes((1, "a"), (1, 2), {"k": 1.0}, "s", {"a": [1]}))
        self.assertEqual(dmr_client._build(Optional[Address], {"street": "s"}), Address("s"))
        self.assertIsNone(dmr_client._build(Optional[Address], None))
        self.assertEqual(dmr_client._build(Movie, {"title": "T", "year": 1}), {"title": "T", "year": 1})
        self.assertEqual(dmr_client._build(PydanticLike, {"n": 1}).fields, {"n": 1})

    def test_the_builder_reaches_inside_every_container(self):
        street = {"street": "s"}
        value = {"pair": [1, street], "many": [street, street], "table": {"a": street}, "home": street,
                 "registry": {"home": street, "homes": {"b": street}}, "either": street, "bare": [1, [2]],
                 "listed": [street]}
        dmr_client.validate(value, dmr_client.json_schema(Nested))
        built = dmr_client._build(Nested, value)
        home = Address("s")
        self.assertEqual(built, Nested((1, home), (home, home), {"a": home}, home, {"home": home, "homes": {"b": home}},
                                       home, (1, [2]), [{"street": "s"}]))
        self.assertIs(type(built.registry["home"]), Address)
        self.assertEqual(dmr_client._build(Union[int, Address], 3), 3)


# ---------------------------------------------------------------------------
# Pure rules: tools and parsed answers
# ---------------------------------------------------------------------------


def weather_google(city: str, unit: Literal["c", "f"] = "c", days: int = 1) -> str:
    """Get the weather.

    It reads a forecast.

    Args:
        city (str): The city,
            by name.
        unit: Celsius or Fahrenheit.

    Returns:
        str: the forecast.
    """
    return city


def weather_numpy(city: str, unit: str = "c"):
    """Get the weather.

    Parameters
    ----------
    city : str
        The city,
        by name.
    unit : str
        Celsius or Fahrenheit.

    Returns
    -------
    str
    """


def weather_rest(city, unit="c"):
    """Get the weather.

    :param city: The city,
        by name.
    :param str unit: Celsius or Fahrenheit.
    :returns: the forecast.
    """


def plot(point: Point, where: Optional[Address] = None, **style):
    return point


class TestFunctionTools(unittest.TestCase):
    def test_every_docstring_style_gives_the_descriptions(self):
        for func in (weather_google, weather_numpy, weather_rest):
            with self.subTest(style=func.__name__):
                spec = dmr_client.function_tool(func)
                function = spec["function"]
                self.assertEqual(spec["type"], "function")
                self.assertEqual(function["name"], func.__name__)
                self.assertEqual(function["description"], "Get the weather." + (
                    "\n\nIt reads a forecast." if func is weather_google else ""))
                properties = function["parameters"]["properties"]
                self.assertEqual(properties["city"]["description"], "The city, by name.")
                self.assertEqual(properties["unit"]["description"], "Celsius or Fahrenheit.")
                self.assertEqual(function["parameters"]["required"], ["city"])
                self.assertNotIn("strict", function)

    def test_docstrings_by_table(self):
        google = "Look it up.\n\nArgs:\n  city (str): The city,\n    by name.\n  unit: Units.\n\nReturns:\n  str: text\n"
        table = [(None, ("", {})), ("", ("", {})), ("Just this.", ("Just this.", {})),
                 (weather_google.__doc__, ("Get the weather.\n\nIt reads a forecast.",
                                           {"city": "The city, by name.", "unit": "Celsius or Fahrenheit."})),
                 (weather_numpy.__doc__, ("Get the weather.", {"city": "The city, by name.", "unit": "Celsius or Fahrenheit."})),
                 (weather_rest.__doc__, ("Get the weather.", {"city": "The city, by name.", "unit": "Celsius or Fahrenheit."})),
                 (google, ("Look it up.", {"city": "The city, by name.", "unit": "Units."})),
                 (":param city: The city.\n:returns: the forecast\n    over days.\n:param unit: Units.",
                  ("", {"city": "The city.", "unit": "Units."})),
                 ("Sum.\n\nParameters\n----------\nx : int\n    First.\n\nNotes\n-----\nnot : a param\n    at all",
                  ("Sum.", {"x": "First."}))]
        for doc, expected in table:
            with self.subTest(doc=doc):
                self.assertEqual(dmr_client._docstring_parts(doc), expected)

    def test_the_schema_comes_from_the_signature(self):
        parameters = dmr_client.function_tool(weather_google)["function"]["parameters"]
        self.assertEqual(parameters["properties"]["city"]["type"], "string")
        self.assertEqual(parameters["properties"]["unit"], {"type": "string", "enum": ["c", "f"], "default": "c",
                                                           "description": "Celsius or Fahrenheit."})
        self.assertEqual(parameters["properties"]["days"], {"type": "integer", "default": 1})
        self.assertEqual(dmr_client.function_tool(weather_rest)["function"]["parameters"]["properties"]["city"],
                         {"description": "The city, by name."})   # no annotation: any JSON value
        plotted = dmr_client.function_tool(plot)["function"]["parameters"]
        self.assertEqual(plotted["properties"]["point"], {"$ref": "#/$defs/Point"})
        self.assertIn("Address", plotted["$defs"])
        self.assertIs(plotted["additionalProperties"], True)   # **style
        strict = dmr_client.function_tool(weather_google, name="w", description="d", strict=True)["function"]
        self.assertEqual((strict["name"], strict["description"], strict["strict"]), ("w", "d", True))
        self.assertEqual(strict["parameters"]["required"], ["city", "unit", "days"])

    def test_arguments_are_parsed_checked_and_built(self):
        tool = dmr_client._FunctionTool(plot)
        self.assertEqual(tool.arguments('{"point": {"x": 1}, "where": {"street": "s"}, "color": "red"}'),
                         {"point": Point(1.0, 0.0), "where": Address("s"), "color": "red"})
        self.assertEqual(tool.arguments({"point": {"x": 2}}), {"point": Point(2.0)})   # an object, as some servers send
        self.assertEqual(dmr_client._parsed_arguments(" ", None), {})   # no arguments at all
        for text, said in (('{"point": {"x": "1"}}', '$.point.x: expected number, got "1"'),
                           ("[1]", "$: expected the arguments as an object, got [1]"),
                           ("{'point': 1}", "$: the arguments are not JSON (Expecting property name enclosed in double "
                                            "quotes: line 1 column 2 (char 1)): \"{'point': 1}\""),
                           ("__import__('os').system('x')", "$: the arguments are not JSON (Expecting value: line 1 "
                                                            "column 1 (char 0)): \"__import__('os').system('x')\""),
                           (None, "$: the arguments are null, not JSON text")):
            with self.subTest(text=text), self.assertRaises(dmr_client.ValidationError) as caught:
                tool.arguments(text)
            self.assertEqual((str(caught.exception), caught.exception.path), (said, said.split(":")[0]))

    def test_what_cannot_be_a_tool_is_refused(self):
        def positional(a, /):
            pass

        def star(*args):
            pass

        for func, error, words in ((positional, TypeError, "cannot be passed by name"),
                                   (star, TypeError, "cannot be passed by name"),
                                   (lambda x: x, ValueError, "is not one a model can call"),
                                   (Tagged, TypeError, "a set")):
            with self.subTest(func=func), self.assertRaises(error) as caught:
                dmr_client.function_tool(func)
            self.assertIn(words, str(caught.exception))
        with self.assertRaises(ValueError):
            dmr_client._tool_specs([weather_google, weather_google])
        with self.assertRaises(TypeError):
            dmr_client._tool_specs(weather_google)
        with self.assertRaises(TypeError):
            dmr_client._tool_specs([42])


def completion_of(message, finish="stop", **extra):
    return dict({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "ai/smollm2",
                 "choices": [{"index": 0, "message": dict({"role": "assistant"}, **message), "finish_reason": finish}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}, **extra)


def tool_call(number, name, arguments):
    return {"id": "call_%d" % number, "type": "function", "function": {"name": name, "arguments": arguments}}


class TestParse(unittest.TestCase):
    def parse(self, message, finish="stop", schema=Address, tools=()):
        response_format, _, parse = dmr_client._parse_plan(schema, None, list(tools))
        return parse(dmr_client.loads(json.dumps(completion_of(message, finish))))

    def test_the_answer_becomes_the_type_and_stays_json_underneath(self):
        reply = self.parse({"content": '{"street": "Main", "zip": "75001"}'})
        self.assertIsInstance(reply, dmr_client.ParsedChatCompletion)
        self.assertEqual(reply.parsed, Address("Main", "75001"))
        self.assertIs(reply.choices[0].message.parsed, reply.parsed)
        self.assertNotIn("parsed", reply.choices[0].message)   # an attribute: the message can be sent back
        self.assertEqual(json.loads(dmr_client._encode(reply.choices[0].message))["content"],
                         '{"street": "Main", "zip": "75001"}')
        for copied in (copy.deepcopy(reply), pickle.loads(pickle.dumps(reply))):
            self.assertEqual(copied, reply)
            self.assertEqual((copied.parsed, type(copied.choices[0].message)), (reply.parsed, type(reply.choices[0].message)))
        self.assertEqual(self.parse({"content": '{"a": 1}'}, schema={"type": "object"}).parsed, {"a": 1})

    def test_answers_that_do_not_fit_say_where_and_carry_the_text(self):
        table = [({"content": "Sure! Here it is"}, "stop", "the answer is not JSON", None),
                 ({"content": '{"zip": "1"}'}, "stop", "does not fit the schema: $.street: is required but missing "
                  '(the answer: "{\\"zip\\": \\"1\\"}")', "$.street"),
                 ({"content": '{"zip": 1}'}, "stop", "$.zip: expected string or null, got 1", "$.zip"),
                 ({"content": ""}, "stop", "answered no text", None),
                 ({"content": '{"street": "M'}, "length", "cut at max_tokens (3 tokens generated)", None)]
        for message, finish, words, path in table:
            with self.subTest(message=message), self.assertRaises(dmr_client.InvalidResponseError) as caught:
                self.parse(message, finish)
            self.assertIn(words, str(caught.exception))
            self.assertEqual(caught.exception.path, path)
            if finish == "stop" and message["content"]:
                self.assertEqual(caught.exception.body, message["content"])
        with self.assertRaises(dmr_client.LengthFinishReasonError) as caught:
            self.parse({"content": "{"}, "length")
        self.assertEqual(caught.exception.completion["choices"][0]["finish_reason"], "length")
        # no max_tokens asked for: the context ran out, and raising max_tokens would not help
        reply = dmr_client.loads(json.dumps(completion_of({"content": "{"}, "length")))
        with self.assertRaises(dmr_client.LengthFinishReasonError) as caught:
            dmr_client._parse_plan(Address, None, None, capped=False)[2](reply)
        self.assertEqual(str(caught.exception), "the answer filled the model's context (3 tokens generated) before it "
                         "was whole, so it cannot be parsed: shorten the conversation, or give the model a larger "
                         "context (DMR: configure(model, context_size=N))")
        with self.assertRaises(dmr_client.ContentFilterFinishReasonError) as caught:
            self.parse({"content": ""}, "content_filter")
        self.assertEqual(caught.exception.completion["choices"][0]["finish_reason"], "content_filter")

    def test_each_misfit_says_exactly_what_came(self):
        table = [({"content": None}, "the model answered no text, where the schema asked for JSON (content null)", ""),
                 ({"content": "  "}, 'the model answered no text, where the schema asked for JSON (content "  ")', "  "),
                 ({"content": "no"}, 'the answer is not JSON (Expecting value: line 1 column 1 (char 0)), where the '
                                     'schema asked for JSON: "no"', "no"),
                 ({"content": '{"x": 1}'}, 'the answer fits the schema but does not make a Picky: x must be even',
                  '{"x": 1}')]
        for message, said, body in table:
            with self.subTest(message=message), self.assertRaises(dmr_client.InvalidResponseError) as caught:
                self.parse(message, schema=Picky)
            self.assertEqual((str(caught.exception), caught.exception.body), (said, body))
        loose = self.parse({"content": '{"any": [1]}'}, schema={"type": "json_object"})
        self.assertEqual(loose.parsed, {"any": [1]})   # json_object: any JSON, parsed, nothing to check
        self.assertIsNone(self.parse({"content": "free text"}, schema={"type": "text"}).parsed)

    def test_a_refusal_or_tool_calls_leave_parsed_none(self):
        reply = self.parse({"content": None, "refusal": "I cannot."})
        self.assertIsNone(reply.parsed)
        self.assertEqual(reply.choices[0].message.refusal, "I cannot.")
        reply = self.parse({"content": "", "tool_calls": [tool_call(1, "weather_google", '{"city": "Paris"}')]},
                           "tool_calls", tools=[weather_google])
        self.assertIsNone(reply.parsed)

    def test_tool_calls_get_parsed_arguments_checked_when_read(self):
        calls = [tool_call(1, "weather_google", '{"city": "Paris"}'), tool_call(2, "weather_google", '{"city": 1}'),
                 tool_call(3, "nope", "{}"), tool_call(4, "weather_google", "{oops")]
        raw_tool = {"type": "function", "function": {"name": "raw", "parameters": {"properties": {"n": INT}}}}
        reply = self.parse({"content": None, "tool_calls": calls + [tool_call(5, "raw", '{"n": 1}')]},
                           "tool_calls", schema=None, tools=[weather_google, raw_tool])
        functions = [call.function for call in reply.choices[0].message.tool_calls]
        self.assertIsInstance(functions[0], dmr_client.ParsedFunction)
        self.assertEqual(functions[0].parsed_arguments, {"city": "Paris"})
        self.assertEqual(functions[4].parsed_arguments, {"n": 1})
        for function, words in ((functions[1], "$.city: expected string, got 1"),
                                (functions[2], "'nope', which is not one of the tools offered"),
                                (functions[3], "the arguments are not JSON")):
            with self.subTest(name=function.name), self.assertRaises(dmr_client.ValidationError) as caught:
                _ = function.parsed_arguments
            self.assertIn(words, str(caught.exception))
        self.assertEqual(json.loads(dmr_client._encode(reply.choices[0].message))["tool_calls"][0],
                         calls[0])   # sent back as it came

    def test_response_format_is_the_json_schema_form(self):
        self.assertEqual(dmr_client._response_format(Address, None), {"type": "json_schema", "json_schema": {
            "name": "Address", "schema": dmr_client.json_schema(Address)}})
        strict = dmr_client._response_format(Address, True)["json_schema"]
        self.assertEqual((strict["strict"], strict["schema"]["required"]), (True, ["street", "zip"]))
        given = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
        self.assertIs(dmr_client._response_format(given, None), given)
        self.assertEqual(dmr_client._response_format({"type": "json_object"}, None), {"type": "json_object"})
        self.assertEqual(dmr_client._response_format({"title": "a b!", "type": "object"}, None)["json_schema"]["name"],
                         "a_b_")
        self.assertEqual(dmr_client._response_format(List[int], None)["json_schema"]["name"], "List")


class TestToolTurnRules(unittest.TestCase):
    def test_tool_results_become_the_text_the_model_reads(self):
        table = [("sunny", "sunny"), ({"t": 21}, '{"t": 21}'), (Address("s"), '{"street": "s", "zip": null}'),
                 (Color.RED, '"red"'), (None, "null"), ([1, (2, 3)], "[1, [2, 3]]"), ({"é": {1}}, '{"é": [1]}'),
                 (b"raw", '"raw"'), (object, json.dumps(str(object)))]
        for result, text in table:
            with self.subTest(result=result):
                self.assertEqual(dmr_client._tool_content(result), text)

    def test_the_assistant_turn_keeps_its_fields_and_ids_every_call(self):
        message = dmr_client.loads(json.dumps({"role": "assistant", "content": None, "reasoning_content": "hm",
                                               "tool_calls": [tool_call(1, "a", "{}"), {"type": "function",
                                                              "function": {"name": "b", "arguments": "{}"}}]}))
        turn = dmr_client._assistant_turn(message, 2)
        self.assertNotIn("content", turn)
        self.assertEqual(turn["reasoning_content"], "hm")
        self.assertEqual(turn["tool_calls"], [tool_call(1, "a", "{}"), {"type": "function", "id": "call_2_1",
                                                                         "function": {"name": "b", "arguments": "{}"}}])
        self.assertEqual(turn["role"], "assistant")
        self.assertNotIn("id", message["tool_calls"][1])   # the reply itself is left as it came


# ---------------------------------------------------------------------------
# Clients: a call and the core
# ---------------------------------------------------------------------------


class TestClientConfig(unittest.TestCase):
    def test_the_vocabularies_of_a_call_fail_loudly(self):
        """A root, answer kind or failure kind that is not one of the named ones raises, instead of
        sending the call to DMR's root or reading its answer as nothing."""
        client = Client("http://127.0.0.1:9")
        self.addCleanup(client.close)
        self.assertEqual(client._path(dmr_client._DMR_ROOT, "/x", None), "/x")
        self.assertEqual(client._path(dmr_client._ENGINE_ROOT, "/x", None), "/engines/llama.cpp/x")
        with self.assertRaisesRegex(ValueError, "unknown root 'dmr '"):
            client._path("dmr ", "/x", None)
        call = dmr_client._Call("GET", "/x", answer="txt")
        with self.assertRaisesRegex(ValueError, "unknown answer 'txt'"):
            client._reply(call, None, b"")
        with self.assertRaisesRegex(ValueError, "failure must be one of connect, refused-local, stale, no-answer"):
            dmr_client.retry_wait(0, 2, failure="stale ")

    def test_api_key_precedence(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(Client("http://h").api_key, "dummy-key")
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_KEY": "from-env"}):
            self.assertEqual(Client("http://h").api_key, "from-env")
            self.assertEqual(Client("http://h", "from-arg").api_key, "from-arg")
            # Only None means "not given": an explicit "" is no key, never the environment's
            self.assertEqual(Client("http://h", "").api_key, "")
            self.assertEqual(Client("http://h", api_key=None).api_key, "from-env")
            client = Client("http://h", "from-arg")
            client.api_key = ""
            self.assertEqual(client.api_key, "")

    def test_base_url_from_environment(self):
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_BASE": "http://x:1/engines/llama.cpp"}):
            self.assertEqual(Client().base_url, "http://x:1/engines/llama.cpp/v1")

    def test_engine_argument(self):
        self.assertEqual(Client("http://h:1", engine="vllm").base_url, "http://h:1/engines/vllm/v1")
        self.assertEqual(Client("http://h:1/v1", engine="vllm").base_url, "http://h:1/v1")

    def test_repr_never_shows_the_key(self):
        client = Client("http://h", api_key="sk-very-secret")
        self.assertNotIn("sk-very-secret", repr(client))
        self.assertIn("http://h/engines/llama.cpp/v1", repr(client))

    def test_bad_key_is_refused_without_echoing_it(self):
        with self.assertRaises(ValueError) as caught:
            Client("http://h", api_key="sk-secret\n")
        self.assertNotIn("sk-secret", str(caught.exception))

    def test_bad_settings(self):
        for kwargs in ({"timeout": 0}, {"timeout": -1}, {"timeout": "5"}, {"connect_timeout": 0},
                       {"max_retries": -1}, {"max_retries": 1.5}, {"engine": "llamacpp"},
                       {"headers": {"X-Bad": "a\r\nInjected: yes"}}, {"headers": {"Bad Name": "x"}}):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises((ValueError, TypeError)):
                    Client("http://h", **kwargs)
        Client("http://h", timeout=None, connect_timeout=None)

    def test_context_manager_closes(self):
        with Client("http://h") as client:
            pass
        with self.assertRaises(dmr_client.DMRError):
            client.chat("ai/smollm2", HI)


class TestServerKindRules(unittest.TestCase):
    """_kind_plan(): what server_kind() asks, and what the answers mean."""

    LISTING = json.dumps({"object": "list", "data": [{"id": "ai/tiny", "object": "model"}]})
    KEY_WANTED = json.dumps({"error": {"message": "Authentication Error, No api key passed in.", "code": "401"}})

    def kind(self, *answers):
        plan = dmr_client._BaseClient._kind_plan()
        asked = [next(plan)]
        try:
            for answer in answers:
                asked.append(plan.send(answer))
        except StopIteration as done:
            return done.value, asked
        self.fail("the plan asked for more than %d answers: %r" % (len(answers), asked))

    def test_table(self):
        for answers, expected, probes in (
                ([(200, "Docker Model Runner is running")], "dmr", 1),
                ([(200, '"LiteLLM: RUNNING"')], "gateway", 1),
                ([(200, '{"status":"healthy","version":"0.1.0","models":["smollm2"]}')], "gateway", 1),   # docker model gateway
                ([(200, '{"status":"healthy","models":[]}'), (404, "Not Found")], None, 2),
                ([(200, '{"status":"down","version":"0.1.0","models":[]}'), (404, "Not Found")], None, 2),
                ([(404, "404 page not found"), (200, self.LISTING)], "openai-compatible", 2),
                ([(200, "<html><title>llama.cpp</title></html>"), (200, self.LISTING)], "openai-compatible", 2),
                ([(404, "Not Found"), (401, self.KEY_WANTED)], "openai-compatible", 2),   # wants a key
                ([(404, "Not Found"), (403, self.KEY_WANTED)], "openai-compatible", 2),
                ([(404, "Not Found"), (401, "Unauthorized")], None, 2),   # not in OpenAI's shape
                ([(404, "Not Found"), (500, self.KEY_WANTED)], None, 2),
                ([(404, "Not Found"), (200, '{"data": "nope"}')], None, 2),
                ([(404, "Not Found"), (200, "<html></html>")], None, 2),
                ([(503, "LiteLLM: RUNNING"), (404, "Not Found")], None, 2)):
            with self.subTest(answers=answers):
                kind, asked = self.kind(*answers)
                self.assertEqual(kind, expected)
                self.assertEqual([(call.where, call.route, call.retries) for call in asked[:probes]],
                                 [("dmr", "/", 0), ("api", "/models", 0)][:probes])


# ---------------------------------------------------------------------------
# Clients: the calls, written once
# ---------------------------------------------------------------------------
# -- over the wire: non-streaming chat --


@for_both_clients
class TestChat(FakeDMRTestCase):
    def test_chat_returns_attribute_dict(self):
        reply = self.client().chat("ai/smollm2", HI)
        self.assertIsInstance(reply, AttrDict)
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        self.assertEqual(reply["choices"][0]["finish_reason"], "stop")
        self.assertEqual(reply.model, "ai/smollm2")
        self.assertEqual(reply.usage.total_tokens, 36)

    def test_request_line_headers_and_body(self):
        self.client(api_key="sk-test").chat("ai/smollm2", HI, temperature=0.2, max_tokens=None)
        request = self.last
        self.assertEqual((request.method, request.path), ("POST", "/engines/llama.cpp/v1/chat/completions"))
        self.assertEqual(request.json, {"model": "ai/smollm2", "messages": HI, "temperature": 0.2})
        self.assertEqual(request.headers["Authorization"], "Bearer sk-test")
        self.assertEqual(request.headers["User-Agent"], "dmr-client/" + dmr_client.__version__)
        self.assertEqual(request.headers["Accept-Encoding"], "identity")
        self.assertEqual(request.headers["Content-Type"], "application/json")
        self.assertIsNone(request.headers.get("Origin"))

    def test_text_that_is_not_unicode_is_refused_before_sending(self):
        """A lone surrogate (bytes decoded with errors='surrogateescape') would go out as a \\udcxx
        escape that llama.cpp answers with a JSON parse error: refused, naming where it is."""
        client = self.client()
        client.chat("ai/smollm2", HI)
        sent = len(self.fake.requests)
        for messages, where in (([{"role": "user", "content": b"caf\xe9".decode("utf-8", "surrogateescape")}],
                                 "messages[0].content holds '\\udce9' at character 3"),
                                ([{"role": "system", "content": "ok"},
                                  {"role": "user", "content": [{"type": "text", "text": "a\ud83d"}]}],
                                 "messages[1].content[0].text holds '\\ud83d' at character 1")):
            with self.subTest(where=where):
                with self.assertRaises(ValueError) as caught:
                    client.chat("ai/smollm2", messages)
                self.assertIn(where, str(caught.exception))
                self.assertIn("lone surrogate", str(caught.exception))
        with self.assertRaisesRegex(ValueError, r"^stop\[1\] holds"):
            client.chat("ai/smollm2", HI, stop=["\n", "\udcff"])
        self.assertEqual(len(self.fake.requests), sent)   # nothing sent
        text = "héllo wörld 日本語 \U0001F600 \u2028"   # real text beyond ASCII goes as UTF-8, whole
        client.chat("ai/smollm2", [{"role": "user", "content": text}])
        self.assertEqual(self.last.json["messages"][0]["content"], text)
        self.assertIn(text.encode("utf-8"), self.last.body)

    def test_every_param_goes_into_the_body_as_given(self):
        params = dict(temperature=0.5, max_tokens=8, top_p=0.9, frequency_penalty=0.1, presence_penalty=0.2,
                      stop=["\n"], n=1, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                      tool_choice="auto", response_format={"type": "json_object"}, seed=7, user="u",
                      logit_bias={"15": -1}, logprobs=True, top_logprobs=2, stream_options=None,
                      repeat_penalty=1.1, cache_prompt=True)
        self.client().chat("ai/smollm2", HI, **params)
        expected = {key: value for key, value in params.items() if value is not None}
        self.assertEqual({k: v for k, v in self.last.json.items() if k not in ("model", "messages")}, expected)

    def test_the_dummy_key_and_an_empty_key_send_no_authorization(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(self.client().api_key, "dummy-key")
            for api_key in (None, "", "dummy-key"):
                with self.subTest(api_key=api_key):
                    self.client(api_key=api_key).chat("ai/smollm2", HI)
                    self.assertNotIn("Authorization", self.last.headers)
            self.client(api_key="sk-real").chat("ai/smollm2", HI)
            self.assertEqual(self.last.headers["Authorization"], "Bearer sk-real")
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_KEY": "sk-env"}):
            self.client().chat("ai/smollm2", HI)
            self.assertEqual(self.last.headers["Authorization"], "Bearer sk-env")
            self.client(api_key="").chat("ai/smollm2", HI)   # an explicit "" is no key, not the environment's
            self.assertNotIn("Authorization", self.last.headers)

    def test_a_key_that_cannot_be_a_header_value_is_refused_before_sending(self):
        good = self.client(api_key="sk-good")
        for key in ("sk-nul\x00x", "sk-tab\tx", "sk-del\x7fx", "sk-non-ascii-\u00e9", "sk-euro-\u20ac",
                    "sk-space x", "sk-newline\n", "sk-cr\rx", "sk-nbsp\u00a0x"):
            with self.subTest(key=key):
                with self.assertRaises(ValueError) as caught:
                    self.client(api_key=key)
                self.assertIn("api_key must be printable ASCII", str(caught.exception))
                self.assertNotIn(key[:6], str(caught.exception))   # never the key itself
                with self.assertRaises(ValueError) as caught:
                    good.api_key = key
                self.assertNotIn(key[:6], str(caught.exception))
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_KEY": "sk-env\tx"}):
            with self.assertRaises(ValueError) as caught:
                self.client()
            self.assertNotIn("sk-env", str(caught.exception))
        self.assertEqual(self.fake.requests, [])
        good.chat("ai/smollm2", HI)   # a refused key changed nothing
        self.assertEqual(self.last.headers["Authorization"], "Bearer sk-good")
        self.client(api_key="sk-!#$%&'()*+,-./:;<=>?@[]^_`{|}~").chat("ai/smollm2", HI)   # every visible ASCII byte
        self.assertEqual(self.last.headers["Authorization"], "Bearer sk-!#$%&'()*+,-./:;<=>?@[]^_`{|}~")

    def test_extra_headers(self):
        self.client(headers={"X-Trace": "abc"}).chat("ai/smollm2", HI)
        self.assertEqual(self.last.headers["X-Trace"], "abc")

    def test_engine_from_the_model_name(self):
        client = self.client()
        self.fake.models.add("llama-3.1")
        client.chat("llama.cpp/llama-3.1", HI)
        self.assertEqual(self.last.path, "/engines/llama.cpp/v1/chat/completions")
        self.assertEqual(self.last.json["model"], "llama-3.1")
        client.chat("docker_model_runner/vllm/ai/smollm2", HI)
        self.assertEqual(self.last.path, "/engines/vllm/v1/chat/completions")
        self.assertEqual(self.last.json["model"], "ai/smollm2")

    def test_model_engine_beats_client_engine_and_url_engine(self):
        self.client(self.fake.url + "/engines/mlx", engine="vllm").chat("sglang/ai/smollm2", HI)
        self.assertEqual(self.last.path, "/engines/sglang/v1/chat/completions")
        self.client(self.fake.url + "/engines/mlx", engine="vllm").chat("ai/smollm2", HI)
        self.assertEqual(self.last.path, "/engines/vllm/v1/chat/completions")
        self.client(self.fake.url + "/engines/mlx").chat("ai/smollm2", HI)
        self.assertEqual(self.last.path, "/engines/mlx/v1/chat/completions")

    def test_plain_v1_root_is_never_rewritten(self):
        self.client(self.fake.url + "/v1", engine="vllm").chat("llama.cpp/ai/smollm2", HI)
        self.assertEqual(self.last.path, "/v1/chat/completions")
        self.assertEqual(self.last.json["model"], "ai/smollm2")

    def test_dmr_picks_the_engine_with_engines_v1(self):
        self.client(self.fake.url + "/engines/v1").chat("ai/smollm2", HI)
        self.assertEqual(self.last.path, "/engines/v1/chat/completions")

    def test_request_options_are_never_body_fields(self):
        client = self.client()
        reply = client.chat("ai/smollm2", HI, temperature=0, extra_headers={"X-Trace": "t-1"},
                            extra_query={"trace": "a b", "n": [1, 2]}, extra_body={"top_k": 3, "temperature": 1},
                            timeout=30)
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        sent = self.last
        self.assertEqual(sent.path, "/engines/llama.cpp/v1/chat/completions?trace=a+b&n=1&n=2")
        self.assertEqual(sent.headers.get("X-Trace"), "t-1")
        self.assertEqual((sent.json["top_k"], sent.json["temperature"]), (3, 1))   # extra_body wins
        for name in ("timeout", "extra_headers", "extra_query", "extra_body"):
            self.assertNotIn(name, sent.json)
        with client.chat("ai/smollm2", HI, stream=True, extra_headers={"X-Trace": "t-2"}, timeout=30) as stream:
            self.assertEqual(text_of(stream), PHRASE)
        self.assertEqual((self.last.headers.get("X-Trace"), self.last.json["stream"]), ("t-2", True))
        client.embeddings("ai/mxbai-embed-large", "a", extra_body={"dimensions": 8}, extra_query={"q": "1"})
        self.assertEqual((self.last.path.endswith("/embeddings?q=1"), self.last.json["dimensions"]), (True, 8))
        self.assertEqual(self.fake.connections, 1)   # a call with its own timeout keeps the connection

    def test_a_call_of_its_own_timeout(self):
        self.fake.script("/engines/llama.cpp/v1/chat/completions", stall(5))
        client = self.client(max_retries=0)
        started = time.monotonic()
        with self.assertRaises(dmr_client.APITimeoutError) as caught:
            client.chat("ai/smollm2", HI, timeout=0.3)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("0.3 s", str(caught.exception))
        # A call's own timeout lasts for that call: the connection goes back with the client's.
        self.fake.script("/engines/llama.cpp/v1/chat/completions",
                         json_reply(200, json.loads(load_capture("chat.http")[2])))
        self.assertEqual(client.chat("ai/smollm2", HI, timeout=0.3).choices[0].message.content, PHRASE)
        self.fake.script("/engines/llama.cpp/v1/chat/completions",
                         stall(0.45, json_reply(200, json.loads(load_capture("chat.http")[2]))))
        self.assertEqual(client.chat("ai/smollm2", HI).choices[0].message.content, PHRASE)

    def test_client_settings_are_not_call_options(self):
        client = self.client()
        for kwargs, error, words in (({"max_retries": 0}, TypeError, "max_retries is a setting of the client"),
                                     ({"api_key": "k"}, TypeError, "api_key is a setting of the client"),
                                     ({"extra_headers": {"User-Agent": "me"}}, ValueError, "which the client sets"),
                                     ({"extra_headers": {"Content-Length": "1"}}, ValueError, "frames the request"),
                                     ({"extra_query": "a=1"}, TypeError, "extra_query must be a dict"),
                                     ({"extra_body": [1]}, TypeError, "extra_body must be a dict"),
                                     ({"timeout": -1}, ValueError, "timeout must be")):
            with self.subTest(kwargs=kwargs), self.assertRaisesRegex(error, words):
                client.chat("ai/smollm2", HI, **kwargs)
        self.assertEqual(self.fake.requests, [])

    def test_misuse_is_refused_before_anything_is_sent(self):
        client = self.client()
        cases = [(("", HI), ValueError), ((None, HI), TypeError), (("ai/smollm2", "Hi"), TypeError),
                 (("ai/smollm2", []), ValueError), (("ai/smollm2", ["Hi"]), TypeError),
                 (("ai/smollm2", [{"content": "Hi"}]), ValueError), (("ai/smollm2", None), TypeError)]
        for args, error in cases:
            with self.subTest(args=args):
                with self.assertRaises(error):
                    client.chat(*args)
        with self.assertRaises(TypeError):
            client.chat("ai/smollm2", HI, temperature=float("nan"))
        with self.assertRaises(TypeError):
            client.chat("ai/smollm2", HI, stop={"a"})
        deep = []
        for _ in range(100000):
            deep = [deep]
        for args, kwargs in ((("ai/smollm2", HI), {"stop": deep}),
                             (("ai/smollm2", [{"role": "user", "content": deep}]), {}),
                             (("ai/smollm2", HI), {"think": deep}), (("ai/smollm2", HI), {"max_tokens": deep})):
            with self.subTest(kwargs=list(kwargs)), self.assertRaises((ValueError, TypeError)) as caught:
                client.chat(*args, **kwargs)
            self.assertLess(len(str(caught.exception)), 300)
        with self.assertRaisesRegex(ValueError, "nested deeper than Python can encode"):
            client.chat("ai/smollm2", HI, stop=deep)
        with self.assertRaisesRegex(ValueError, r"timeout must be .*, not \[\[\[\[\.\.\.\]\]\]\]$"):
            self.client(timeout=deep)
        self.assertEqual(self.fake.requests, [])

    def test_body_that_is_not_json(self):
        self.fake.script("/engines/llama.cpp/v1/chat/completions",
                         lambda h, r: write_response(h, 200, b"<html>proxy</html>", "text/html"))
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            self.client().chat("ai/smollm2", HI)
        self.assertIn("<html>", caught.exception.body)

    def test_body_cut_short(self):
        self.fake.script("/engines/llama.cpp/v1/chat/completions",
                         raw_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"choices\":"))
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            self.client().chat("ai/smollm2", HI)
        self.assertIn("cut", str(caught.exception))
        self.assertEqual(len(self.fake.requests), 1)


# -- over the wire: errors of both families --


@for_both_clients
class TestErrors(FakeDMRTestCase):
    PATH = "/engines/llama.cpp/v1/chat/completions"

    def test_status_errors_carry_the_response_as_openai_python_does(self):
        self.fake.script(self.PATH, json_reply(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                                               headers=[("x-request-id", "req-7")]))
        with self.assertRaises(dmr_client.APIError) as caught:
            self.client(max_retries=0).chat("ai/smollm2", HI)
        error = caught.exception
        self.assertIsInstance(error, dmr_client.RateLimitError)
        self.assertEqual((error.status_code, error.request_id, error.type), (429, "req-7", "rate_limit"))
        self.assertEqual((error.response.status_code, error.response.headers["x-request-id"]), (429, "req-7"))
        self.assertEqual(error.response.json()["error"]["message"], "slow down")
        self.assertEqual(error.response.text, error.body)

    def test_dmr_plain_text_model_not_found(self):
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client(api_key="sk-hidden").chat("ai/missing", HI)
        error = caught.exception
        self.assertEqual(error.status_code, 404)
        self.assertEqual(error.message, "error while getting model: get model '\"ai/missing\"': model not found")
        self.assertTrue(error.body.endswith("\n"))
        self.assertIn("docker model pull ai/missing", str(error))
        self.assertIn(self.fake.url + self.PATH, str(error))
        self.assertNotIn("sk-hidden", str(error) + repr(error.args))

    def test_dmr_unknown_engine(self):
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client(self.fake.url + "/engines/nope/v1").chat("ai/smollm2", HI)
        self.assertEqual(caught.exception.message, "backend not found")
        self.assertIn("llama.cpp", str(caught.exception))

    def test_wrong_path(self):
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client(self.fake.url + "/api/v1").chat("ai/smollm2", HI)
        self.assertEqual(caught.exception.message, "404 page not found")
        self.assertIn("no such route under %s/api/v1: check the base URL (a server with DMR's layout serves the "
                      "OpenAI API under /engines/v1 or /engines/<engine>/v1: then use %s/engines/v1 as the base URL)"
                      % (self.fake.url, self.fake.url), str(caught.exception))   # not "use .../v1": it was
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client(self.fake.url + "/api").chat("ai/smollm2", HI)   # a DMR layout under /api: try /v1
        self.assertIn("then use %s/v1 as the base URL" % self.fake.url, str(caught.exception))

    def test_llama_cpp_json_errors_map_to_classes(self):
        table = {400: dmr_client.BadRequestError, 401: dmr_client.AuthenticationError,
                 403: dmr_client.PermissionDeniedError, 404: dmr_client.NotFoundError,
                 409: dmr_client.ConflictError, 422: dmr_client.UnprocessableEntityError,
                 429: dmr_client.RateLimitError, 500: dmr_client.InternalServerError,
                 501: dmr_client.InternalServerError, 503: dmr_client.InternalServerError,
                 418: dmr_client.APIStatusError}
        client = self.client(max_retries=0)
        for status, cls in table.items():
            with self.subTest(status=status):
                body = {"error": {"code": status, "message": "msg %d" % status, "type": "some_error"}}
                self.fake.script(self.PATH, json_reply(status, body))
                with self.assertRaises(cls) as caught:
                    client.chat("ai/smollm2", HI)
                self.assertIs(type(caught.exception), cls)
                self.assertEqual(caught.exception.message, "msg %d" % status)
                self.assertEqual(caught.exception.type, "some_error")
                self.assertEqual(json.loads(caught.exception.body), body)

    def test_captured_context_overflow_even_when_streaming(self):
        status, headers, body = load_capture("error-400-context.http")
        self.fake.script(self.PATH, lambda h, r: write_response(h, status, body, close=True))
        with self.assertRaises(dmr_client.BadRequestError) as caught:
            self.client().chat("ai/smollm2", HI, stream=True)
        self.assertIn("exceeds the available context size", caught.exception.message)
        self.assertIn("context", caught.exception.hint)

    def test_empty_error_body_uses_the_reason(self):
        self.fake.script(self.PATH, lambda h, r: write_response(h, 502, b""))
        with self.assertRaises(dmr_client.InternalServerError) as caught:
            self.client(max_retries=0).chat("ai/smollm2", HI)
        self.assertEqual(caught.exception.message, "Bad Gateway")

    def test_redirect_is_not_followed(self):
        self.fake.script(self.PATH, lambda h, r: write_response(h, 307, b"", headers=[("Location", "http://evil.example/")]))
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            self.client().chat("ai/smollm2", HI)
        self.assertEqual(caught.exception.status_code, 307)
        self.assertIn("http://evil.example/", str(caught.exception))
        self.assertEqual(len(self.fake.requests), 1)

    def test_connection_refused(self):
        port = free_port()
        client = self.client("http://127.0.0.1:%d" % port)
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            client.chat("ai/smollm2", HI)
        self.assertNotIsInstance(caught.exception, dmr_client.APITimeoutError)
        self.assertIn("refused", str(caught.exception))
        # Nothing listens on this loopback port: asking again within seconds would only make the
        # user wait for the same answer.
        self.assertNotIn("attempts", str(caught.exception))
        self.assertEqual(self.sleeps, [])

    def test_refused_default_address_explains_how_to_enable_dmr(self):
        if port_is_open(12434):
            self.skipTest("something listens on localhost:12434 here")
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            self.client("http://localhost:12434", max_retries=0).chat("ai/smollm2", HI)
        self.assertIn("docker desktop enable model-runner --tcp 12434", str(caught.exception))
        self.assertIn("DOCKER_MODEL_RUNNER_API_BASE", str(caught.exception))

    def test_unknown_host(self):
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            self.client("http://no-such-host.invalid", max_retries=0).chat("ai/smollm2", HI)
        self.assertIn("no-such-host.invalid", str(caught.exception))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- over the wire: retries and timeouts --


@for_both_clients
class TestRetries(FakeDMRTestCase):
    PATH = "/engines/llama.cpp/v1/chat/completions"
    LOADING = {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}

    def test_503_loading_model_then_success(self):
        self.fake.script(self.PATH, json_reply(503, self.LOADING), self.fake.route)
        reply = self.client().chat("ai/smollm2", HI)
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        self.assertEqual(len(self.fake.requests), 2)
        self.assertEqual(len(self.sleeps), 1)
        self.assertTrue(0.375 <= self.sleeps[0] <= 0.5, self.sleeps)

    def test_gives_up_after_max_retries_with_growing_waits(self):
        self.fake.script(self.PATH, json_reply(503, self.LOADING))
        with self.assertRaises(dmr_client.InternalServerError) as caught:
            self.client().chat("ai/smollm2", HI)
        self.assertEqual(len(self.fake.requests), 3)
        self.assertEqual(len(self.sleeps), 2)
        self.assertTrue(0.375 <= self.sleeps[0] <= 0.5 and 0.75 <= self.sleeps[1] <= 1.0, self.sleeps)
        self.assertIn("after 3 attempts", str(caught.exception))
        self.assertIn("loading", caught.exception.hint)

    def test_backoff_is_capped(self):
        delays = [dmr_client._retry_delay(n) for n in range(10)]
        self.assertTrue(all(d <= 8.0 for d in delays))
        self.assertGreaterEqual(delays[-1], 6.0)

    def test_retry_statuses(self):
        for status in (408, 409, 429, 500, 502, 503, 504):
            with self.subTest(status=status):
                self.fake.requests.clear()
                self.fake.script(self.PATH, json_reply(status, {"error": "x"}), self.fake.route)
                self.client().chat("ai/smollm2", HI)
                self.assertEqual(len(self.fake.requests), 2)

    def test_client_errors_are_not_retried(self):
        for status in (400, 401, 403, 404, 422):
            with self.subTest(status=status):
                self.fake.requests.clear()
                self.fake.script(self.PATH, json_reply(status, {"error": "x"}), self.fake.route)
                with self.assertRaises(dmr_client.APIStatusError):
                    self.client().chat("ai/smollm2", HI)
                self.assertEqual(len(self.fake.requests), 1)

    def test_max_retries_zero(self):
        self.fake.script(self.PATH, json_reply(503, self.LOADING), self.fake.route)
        with self.assertRaises(dmr_client.InternalServerError):
            self.client(max_retries=0).chat("ai/smollm2", HI)
        self.assertEqual(self.sleeps, [])

    def test_retry_after_seconds_and_ms_are_honoured(self):
        self.fake.script(self.PATH, json_reply(429, {"error": "slow down"}, headers=[("Retry-After", "3")]),
                         json_reply(503, self.LOADING, headers=[("retry-after-ms", "1500")]), self.fake.route)
        self.client().chat("ai/smollm2", HI)
        self.assertEqual(self.sleeps, [3.0, 1.5])

    def test_a_long_retry_after_raises_instead_of_sleeping(self):
        self.fake.script(self.PATH, json_reply(503, self.LOADING, headers=[("Retry-After", "120")]), self.fake.route)
        with self.assertRaises(dmr_client.InternalServerError) as caught:
            self.client().chat("ai/smollm2", HI)
        self.assertEqual(self.sleeps, [])
        self.assertIn("120 s", str(caught.exception))

    def test_x_should_retry_overrides(self):
        self.fake.script(self.PATH, json_reply(503, self.LOADING, headers=[("x-should-retry", "false")]),
                         self.fake.route)
        with self.assertRaises(dmr_client.InternalServerError):
            self.client().chat("ai/smollm2", HI)
        self.fake.requests.clear()
        self.fake.script(self.PATH, json_reply(400, {"error": "x"}, headers=[("x-should-retry", "true")]),
                         self.fake.route)
        self.client().chat("ai/smollm2", HI)
        self.assertEqual(len(self.fake.requests), 2)

    def test_connection_dropped_before_a_response_is_retried(self):
        self.fake.script(self.PATH, raw_reply(b""), self.fake.route)
        reply = self.client().chat("ai/smollm2", HI)
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        self.assertEqual(len(self.sleeps), 1)

    def test_slow_first_byte_within_the_timeout(self):
        self.fake.script(self.PATH, stall(0.4, self.fake.route))
        reply = self.client(timeout=5).chat("ai/smollm2", HI)
        self.assertEqual(reply.choices[0].message.content, PHRASE)

    def test_no_response_within_the_timeout_is_not_retried(self):
        self.fake.script(self.PATH, stall(5))
        started = time.monotonic()
        with self.assertRaises(dmr_client.APITimeoutError) as caught:
            self.client(timeout=0.3).chat("ai/smollm2", HI)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("timeout", str(caught.exception))
        self.assertEqual(len(self.fake.requests), 1)

    def test_connect_timeout(self):
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        for _ in range(8):  # fill the accept queue so the next SYN is dropped
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
            self.addCleanup(s.close)
        time.sleep(0.1)
        client = self.client("http://127.0.0.1:%d" % listener.getsockname()[1], connect_timeout=0.3, max_retries=1)
        started = time.monotonic()
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            client.chat("ai/smollm2", HI)
        if not isinstance(caught.exception, dmr_client.APITimeoutError):
            self.skipTest("this kernel accepted or refused instead of dropping: %s" % caught.exception)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("connecting", str(caught.exception))
        self.assertEqual(len(self.sleeps), 1)


# -- over the wire: streaming --


@for_both_clients
class TestStreaming(FakeDMRTestCase):
    PATH = "/engines/llama.cpp/v1/chat/completions"

    def test_stream_reassembles_the_answer(self):
        with self.client().chat("ai/smollm2", HI, stream=True) as stream:
            chunks = list(stream)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertEqual(text_of(chunks), PHRASE)
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")
        self.assertTrue(stream.completed)
        self.assertEqual(self.last.json["stream"], True)
        self.assertEqual(self.last.headers["Accept"], "text/event-stream")
        self.assertEqual(stream.status_code, 200)

    def test_usage_chunk_with_empty_choices(self):
        chunks = list(self.client().chat("ai/smollm2", HI, stream=True,
                                         stream_options={"include_usage": True}))
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.total_tokens, 36)
        self.assertEqual(text_of(chunks), PHRASE)

    def test_event_reaches_the_caller_while_the_server_holds_the_next(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=2))
        stream = self.client(timeout=5).chat("ai/smollm2", HI, stream=True)
        self.assertEqual(next(stream).choices[0].delta.role, "assistant")
        self.assertEqual(next(stream).choices[0].delta.content, "Hello")
        self.assertFalse(gate.is_set())   # the server is still holding the rest back
        gate.set()
        self.assertEqual("Hello" + text_of(stream), PHRASE)

    def test_bytes_split_one_at_a_time(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), piece=1))
        self.assertEqual(text_of(self.client().chat("ai/smollm2", HI, stream=True)), PHRASE)

    def test_crlf_and_cr_framing_and_comments(self):
        events = sse_events("chat-stream-no-usage.http")
        for name, transform in (("crlf", lambda e: e.replace(b"\n", b"\r\n")),
                                ("cr", lambda e: e.replace(b"\n", b"\r")),
                                ("comments", lambda e: b": keep-alive\n\n" + e.replace(b"data: ", b"data:"))):
            with self.subTest(name):
                self.fake.script(self.PATH, sse_reply([transform(e) for e in events], piece=5))
                stream = self.client().chat("ai/smollm2", HI, stream=True)
                self.assertEqual(text_of(stream), PHRASE)
                self.assertTrue(stream.completed)

    def test_captured_raw_socket_bytes(self):
        with open(os.path.join(WIRE, "chat-stream.raw"), "rb") as f:
            raw = f.read()
        self.fake.script(self.PATH, raw_reply(raw))
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        chunks = list(stream)
        self.assertEqual(text_of(chunks), "Hello from a")   # captured with max_tokens=3
        self.assertEqual(chunks[-2].choices[0].finish_reason, "length")
        self.assertEqual(chunks[-1].usage.completion_tokens, 3)
        self.assertTrue(stream.completed)

    def test_finish_reason_length(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream-length.http")))
        chunks = list(self.client().chat("ai/smollm2", HI, stream=True, max_tokens=3))
        self.assertEqual(chunks[-1].choices[0].finish_reason, "length")

    def test_connection_is_reused_after_complete_streams(self):
        client = self.client()
        for _ in range(3):
            self.assertEqual(text_of(client.chat("ai/smollm2", HI, stream=True)), PHRASE)
        client.chat("ai/smollm2", HI)
        self.assertEqual(self.fake.connections, 1)

    def test_breaking_out_early_releases_the_connection(self):
        client = self.client()
        with client.chat("ai/smollm2", HI, stream=True) as stream:
            next(stream)
        self.assertFalse(stream.completed)
        self.assertEqual(client.chat("ai/smollm2", HI).choices[0].message.content, PHRASE)
        self.assertEqual(self.fake.connections, 2)
        stream = client.chat("ai/smollm2", HI, stream=True)
        stream.close()   # closed before reading anything
        with self.assertRaises(StopIteration):
            next(stream)

    def test_error_event_mid_stream(self):
        events = sse_events("chat-stream.http")[:3]
        events.append(b'data: {"error":{"code":500,"message":"llama.cpp ran out of memory","type":"server_error"}}\n\n')
        self.fake.script(self.PATH, sse_reply(events, end="cut"))
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        received = []
        with self.assertRaises(dmr_client.StreamError) as caught:
            for chunk in stream:
                received.append(chunk)
        self.assertEqual(len(received), 3)
        self.assertEqual(caught.exception.message, "llama.cpp ran out of memory")
        self.assertEqual(caught.exception.type, "server_error")
        self.assertEqual(caught.exception.chunks_received, 3)
        self.assertIn('"error"', caught.exception.body)
        self.assertEqual(len(self.fake.requests), 1)

    def test_legacy_error_field_and_named_error_event(self):
        for error in (b'error: {"code":500,"message":"old style","type":"server_error"}\n\n',
                      b'event: error\ndata: {"type":"error","error":{"message":"old style"}}\n\n'):
            with self.subTest(error=error):
                events = sse_events("chat-stream.http")[:2] + [error, b"data: [DONE]\n\n"]
                self.fake.script(self.PATH, sse_reply(events))
                with self.assertRaises(dmr_client.StreamError) as caught:
                    list(self.client().chat("ai/smollm2", HI, stream=True))
                self.assertEqual(caught.exception.message, "old style")

    def test_cut_chunked_stream_is_an_error_and_not_retried(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http")[:4], end="cut"))
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        received = []
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            for chunk in stream:
                received.append(chunk)
        self.assertEqual(len(received), 4)
        self.assertEqual(caught.exception.chunks_received, 4)
        self.assertIn("incomplete", str(caught.exception))
        self.assertEqual(len(self.fake.requests), 1)
        self.assertEqual(self.sleeps, [])

    def test_clean_eof_without_done_is_an_error(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http")[:5], chunked=False))
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            list(self.client().chat("ai/smollm2", HI, stream=True))
        self.assertIn("without [DONE]", str(caught.exception))

    def test_clean_eof_after_every_finish_reason_is_complete(self):
        events = sse_events("chat-stream-no-usage.http")[:-1]   # no [DONE]
        self.fake.script(self.PATH, sse_reply(events, chunked=False))
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        self.assertEqual(text_of(stream), PHRASE)
        self.assertTrue(stream.completed)

    def test_stall_mid_stream_times_out(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=2))
        stream = self.client(timeout=0.3).chat("ai/smollm2", HI, stream=True)
        next(stream), next(stream)
        with self.assertRaises(dmr_client.APITimeoutError) as caught:
            next(stream)
        self.assertEqual(caught.exception.chunks_received, 2)
        # What the read boundary says: what was read, from where, how far it got, what that means.
        self.assertEqual((str(caught.exception), caught.exception.url),
                         ("the stream from %s stalled: nothing for 0.3 s after 2 chunks; the answer is incomplete"
                          % stream.url, stream.url))

    def test_json_instead_of_a_stream(self):
        reply = json.loads(load_capture("chat.http")[2])
        self.fake.script(self.PATH, json_reply(200, reply), json_reply(200, {"error": {"message": "no streams here"}}))
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            list(self.client().chat("ai/smollm2", HI, stream=True))
        self.assertIn("instead of an event stream", str(caught.exception))
        with self.assertRaises(dmr_client.StreamError) as caught:
            list(self.client().chat("ai/smollm2", HI, stream=True))
        self.assertEqual(caught.exception.message, "no streams here")

    def test_event_that_is_not_json(self):
        self.fake.script(self.PATH, sse_reply([b"data: not json\n\n", b"data: [DONE]\n\n"]))
        with self.assertRaises(dmr_client.InvalidResponseError):
            list(self.client().chat("ai/smollm2", HI, stream=True))

    def test_slow_model_load_before_the_first_byte(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), before=0.4))
        self.assertEqual(text_of(self.client(timeout=5).chat("ai/smollm2", HI, stream=True)), PHRASE)

    def test_503_before_the_stream_is_retried(self):
        self.fake.script(self.PATH, json_reply(503, TestRetries.LOADING), self.fake.route)
        self.assertEqual(text_of(self.client().chat("ai/smollm2", HI, stream=True)), PHRASE)
        self.assertEqual(len(self.sleeps), 1)


# -- over the wire: connections, threads, proxies, logging --


@for_both_clients
class TestConnections(FakeDMRTestCase):
    PATH = "/engines/llama.cpp/v1/chat/completions"

    def test_keep_alive_reuses_one_connection(self):
        client = self.client()
        for _ in range(20):
            client.chat("ai/smollm2", HI)
        self.assertEqual(self.fake.connections, 1)

    def test_error_responses_keep_the_connection(self):
        client = self.client()
        for _ in range(3):
            with self.assertRaises(dmr_client.NotFoundError):
                client.chat("ai/missing", HI)
        self.assertEqual(self.fake.connections, 1)

    def test_server_closing_an_idle_connection_is_transparent(self):
        def reply_then_close(handler, request):
            self.fake.route(handler, request)
            handler.close_connection = True   # no Connection: close header: the client finds out later
        self.fake.script(self.PATH, reply_then_close, self.fake.route)
        client = self.client()
        client.chat("ai/smollm2", HI)
        time.sleep(0.1)
        client.chat("ai/smollm2", HI)
        self.assertEqual(self.fake.connections, 2)
        self.assertEqual(self.sleeps, [])

    def test_connection_close_header(self):
        reply = json.loads(load_capture("chat.http")[2])
        self.fake.script(self.PATH, json_reply(200, reply, close=True))
        client = self.client()
        client.chat("ai/smollm2", HI)
        client.chat("ai/smollm2", HI)
        self.assertEqual(self.fake.connections, 2)

    def test_eight_threads_share_one_client(self):
        client = self.client()
        results = []

        def work():
            for _ in range(5):
                results.append(client.chat("ai/smollm2", HI).choices[0].message.content)
            results.append(text_of(client.chat("ai/smollm2", HI, stream=True)))

        self.assertEqual(in_threads(8, work), [])
        self.assertEqual(results, [PHRASE] * 48)
        self.assertLessEqual(self.fake.connections, 8)
        self.assertEqual(len(self.fake.requests), 48)

    def test_loopback_ignores_proxy_settings(self):
        env = {"HTTP_PROXY": "http://127.0.0.1:%d" % free_port(), "http_proxy": "http://127.0.0.1:1",
               "NO_PROXY": "", "no_proxy": ""}
        with mock.patch.dict(os.environ, env):
            self.assertEqual(self.client().chat("ai/smollm2", HI).choices[0].message.content, PHRASE)

    def test_which_hosts_a_proxy_may_see(self):
        env = {"http_proxy": "http://proxy.test:3128", "HTTP_PROXY": "http://proxy.test:3128", "no_proxy": "",
               "NO_PROXY": ""}
        with mock.patch.dict(os.environ, env):
            for host, proxied in (("localhost", False), ("LOCALHOST.", False), ("api.localhost", False),
                                  ("127.0.0.1", False), ("127.9.9.9", False), ("::1", False),
                                  ("model-runner.docker.internal", False), ("docker.internal", False),
                                  ("Model-Runner.Docker.Internal", False), ("docker.internal.example.com", True),
                                  ("notdocker.internal", True), ("128.0.0.1", True), ("dmr.example.test", True)):
                with self.subTest(host=host):
                    proxy = dmr_client._proxy_for("http", host)
                    self.assertEqual(proxy is not None, proxied)
                    if proxied:
                        self.assertEqual((proxy.host, proxy.port), ("proxy.test", 3128))

    def test_other_hosts_go_through_the_environment_proxy(self):
        env = {"http_proxy": self.fake.url, "HTTP_PROXY": self.fake.url, "no_proxy": "", "NO_PROXY": ""}
        self.fake.script("http://dmr.example.test:12434/engines/llama.cpp/v1/chat/completions", self.fake.route)
        with mock.patch.dict(os.environ, env):
            client = self.client("http://dmr.example.test:12434")
        with self.assertRaises(dmr_client.NotFoundError):  # the fake routes by path only
            client.chat("ai/smollm2", HI)
        self.assertEqual(self.last.path, "http://dmr.example.test:12434/engines/llama.cpp/v1/chat/completions")
        with mock.patch.dict(os.environ, dict(env, no_proxy="example.test", NO_PROXY="example.test")):
            self.assertIsNone(Client("http://dmr.example.test:12434")._pool.origin.proxy)

    def test_debug_log_has_method_url_status_and_never_the_key(self):
        self.fake.script(self.PATH, json_reply(503, TestRetries.LOADING), self.fake.route)
        with self.assertLogs("dmr_client", logging.DEBUG) as logs:
            self.client(api_key="sk-log-secret").chat("ai/smollm2", HI)
        text = "\n".join(logs.output)
        self.assertIn("POST %s%s -> 503" % (self.fake.url, self.PATH), text)
        self.assertIn("retry 1", text)
        self.assertIn("-> 200", text)
        self.assertNotIn("sk-log-secret", text)

    def test_closed_client_refuses_new_requests(self):
        client = self.client()
        client.chat("ai/smollm2", HI)
        client.close()
        with self.assertRaises(dmr_client.DMRError) as caught:
            client.chat("ai/smollm2", HI)
        self.assertIn("closed", str(caught.exception))


# -- over the wire: the rest of the OpenAI-compatible API --


@for_both_clients
class TestResponsesAPI(FakeDMRTestCase):
    """The Responses API DMR serves: at the root's /v1/responses, the route every release has
    (the /engines/... ones answer 404 there), whatever the base URL's layout."""

    def test_create_retrieve_and_delete_on_each_layout(self):
        for base in ("", "/engines/llama.cpp/v1", "/engines/v1", "/v1"):
            with self.subTest(base=base):
                client = self.client(self.fake.url + base)
                answer = client.responses("ai/smollm2", "Say hello", instructions="Be brief", max_output_tokens=20)
                self.assertEqual((type(answer).__name__, answer.output_text, answer.status), ("Response", PHRASE,
                                                                                             "completed"))
                self.assertEqual((self.last.path, self.last.json["instructions"]), ("/v1/responses", "Be brief"))
                self.assertEqual((answer.error, answer.previous_response_id, answer.usage.output_tokens),
                                 (None, None, 9))
                self.assertEqual(client.response(answer.id).output_text, PHRASE)
                self.assertEqual(client.response_input_items(answer.id).data[0]["content"][0]["text"], "Say hello")
                self.assertTrue(client.delete_response(answer.id).deleted)
                with self.assertRaises(dmr_client.NotFoundError):
                    client.response(answer.id)

    def test_streamed_events_fold_to_the_response(self):
        client = self.client()
        with client.responses("ai/smollm2", [{"role": "user", "content": "Say hello"}], stream=True) as stream:
            text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        self.assertEqual(text, PHRASE)
        self.assertEqual((stream.final().output_text, self.last.json["stream"]), (PHRASE, True))
        self.assertEqual(client.responses("ai/smollm2", "again", stream=True).text(), PHRASE)

    def test_a_failed_or_cut_stream_is_never_an_answer(self):
        created = b'event: response.created\ndata: {"type":"response.created","response":{"id":"r","status":"in_progress"}}\n\n'
        delta = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hel"}\n\n'
        failed = (b'event: response.failed\ndata: {"type":"response.failed","response":{"id":"r","status":"failed",'
                  b'"error":{"code":"upstream_error","message":"the engine crashed"}}}\n\n')
        error = b'event: error\ndata: {"type":"error","code":"internal_error","message":"boom"}\n\n'
        for events, end, error_class, words in (([created, delta, failed], "done", dmr_client.StreamError,
                                                 "the engine crashed"),
                                                ([created, error], "done", dmr_client.StreamError, "boom"),
                                                ([created, delta], "done", dmr_client.APIConnectionError,
                                                 "without response.completed"),
                                                ([created, delta], "cut", dmr_client.APIConnectionError, "")):
            with self.subTest(words=words or end):
                self.fake.script("/v1/responses", sse_reply(events, end=end))
                stream = self.client(max_retries=0).responses("ai/smollm2", "hi", stream=True)
                with self.assertRaisesRegex(error_class, words):
                    stream.final()
                with self.assertRaises(error_class):
                    stream.final()   # what broke it, again: never a folded answer

    def test_an_engine_error_keeps_its_status_and_words(self):
        failed = {"id": "r", "object": "response", "status": "failed",
                  "error": {"code": "upstream_error", "message": "the request exceeds the available context size"}}
        self.fake.script("/v1/responses", json_reply(400, failed))
        with self.assertRaises(dmr_client.BadRequestError) as caught:
            self.client().responses("ai/smollm2", "long")
        self.assertIn("exceeds the available context size", str(caught.exception))
        self.assertIn("--context-size", caught.exception.hint)


@for_both_clients
class TestImages(FakeDMRTestCase):
    def test_images_come_as_bytes_and_files(self):
        self.fake.models.add("ai/stable-diffusion")
        client = self.client()
        reply = client.images("ai/stable-diffusion", "a red fox", n=2, size="256x256")
        self.assertEqual(self.last.path, "/engines/diffusers/v1/images/generations")
        self.assertEqual((self.last.json["response_format"], self.last.json["n"], self.last.json["size"]),
                         ("b64_json", 2, "256x256"))
        self.assertEqual((type(reply).__name__, len(reply.data), reply.data[0].image), ("ImagesResponse", 2, TINY_PNG))
        self.assertIsNone(reply.data[0].revised_prompt)
        path = os.path.join(tempfile.mkdtemp(), "fox.png")
        self.addCleanup(shutil.rmtree, os.path.dirname(path))
        self.assertEqual(reply.data[1].save(path), path)
        with open(path, "rb") as f:
            self.assertTrue(f.read().startswith(b"\x89PNG"))

    def test_without_the_diffusers_engine(self):
        self.fake.models.add("ai/stable-diffusion")
        self.fake.diffusers = False
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            self.client().images("ai/stable-diffusion", "a red fox")
        self.assertEqual(caught.exception.status_code, 412)
        self.assertIn("diffusers engine, which generates images, is not installed", str(caught.exception))


@for_both_clients
class TestMediaMessages(FakeDMRTestCase):
    """Pictures and sound in messages, over the wire: the server gets the exact content parts."""

    PATH = "/engines/llama.cpp/v1/chat/completions"
    NO_VISION = {"error": {"code": 500, "type": "server_error", "message": "image input is not supported - hint: "
                           "if this is unexpected, you may need to provide the mmproj"}}

    def test_the_server_receives_the_parts(self):
        picture = dmr_client.image(os.path.join(MEDIA, "tiny.jpg"), detail="low")
        sound = dmr_client.audio(os.path.join(MEDIA, "tiny.mp3"))
        reply = self.client().chat("ai/smollm2", [dmr_client.user("What is this?", picture, sound)])
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        self.assertEqual(self.last.json["messages"], [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," +
                                                       base64.b64encode(media_file("tiny.jpg")).decode(),
                                                "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(media_file("tiny.mp3")).decode(),
                                                    "format": "mp3"}}]}])

    def test_a_text_only_model_refuses_a_picture_once_and_for_all(self):
        for refusal, hint in ((self.NO_VISION, "no vision support"),
                              ({"error": {"code": 500, "type": "server_error", "message": "audio input is not "
                                          "supported - hint: if this is unexpected, you may need to provide the "
                                          "mmproj"}}, "no audio input")):
            with self.subTest(hint=hint):
                self.fake.requests.clear()
                self.fake.script(self.PATH, json_reply(500, refusal), self.fake.route)
                with self.assertRaises(dmr_client.InternalServerError) as caught:
                    self.client().chat("ai/smollm2", [dmr_client.user("What is this?",
                                                                      dmr_client.image(media_file("tiny.png")))])
                self.assertEqual(len(self.fake.requests), 1)   # not sent again, though 500s are
                self.assertEqual(self.sleeps, [])
                self.assertIn(hint, str(caught.exception))
                self.assertNotIn("\n", str(caught.exception))
                self.assertNotIn("attempts", str(caught.exception))

    def test_a_refusal_in_a_stream_is_final_too(self):
        self.fake.script(self.PATH, json_reply(500, self.NO_VISION), self.fake.route)
        with self.assertRaises(dmr_client.InternalServerError) as caught:
            with self.client().chat("ai/smollm2", [dmr_client.user("?", dmr_client.image(media_file("tiny.png")))],
                                    stream=True) as stream:
                list(stream)
        self.assertEqual(len(self.fake.requests), 1)
        self.assertIn("ai/gemma3", caught.exception.hint)

    def test_other_500s_are_still_retried(self):
        self.fake.script(self.PATH, json_reply(500, {"error": {"code": 500, "message": "image decoding failed"}}),
                         self.fake.route)
        self.client().chat("ai/smollm2", [dmr_client.user("?", dmr_client.image(media_file("tiny.png")))])
        self.assertEqual(len(self.fake.requests), 2)

    def test_the_size_refusal_of_a_request_with_a_picture_says_how_to_shrink_it(self):
        self.fake.script(self.PATH, text_reply(400, "request too large"))
        for messages, shrink in (([dmr_client.user("?", dmr_client.image(media_file("tiny.png")))], True),
                                 (HI, False)):
            with self.subTest(shrink=shrink):
                with self.assertRaises(dmr_client.BadRequestError) as caught:
                    self.client().chat("ai/smollm2", messages)
                self.assertIn("DMR refuses requests over 10 MiB", caught.exception.hint)
                self.assertEqual("save it as JPEG" in caught.exception.hint, shrink)
                self.assertEqual("base64" in caught.exception.hint, shrink)


@for_both_clients
class TestOpenAICalls(FakeDMRTestCase):
    def test_results_read_like_openai_python(self):
        client = self.client()
        reply = client.chat("ai/smollm2", HI)
        choice = reply.choices[0]
        self.assertEqual((type(reply).__name__, type(choice).__name__, type(choice.message).__name__),
                         ("ChatCompletion", "Choice", "ChatCompletionMessage"))
        self.assertEqual((choice.message.content, choice.message.tool_calls, choice.message.refusal,
                          choice.logprobs), (PHRASE, None, None, None))
        self.assertIsNotNone(reply.stats)
        with self.assertRaises(AttributeError):
            _ = choice.message.conten
        with client.chat("ai/smollm2", HI, stream=True) as stream:
            chunks = list(stream)
        self.assertTrue(all(type(chunk).__name__ == "ChatCompletionChunk" for chunk in chunks))
        self.assertEqual("".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices),
                         PHRASE)
        self.assertIsInstance(stream.final(), dmr_client.ChatCompletion)
        completion = client.completions("ai/smollm2", "Say hello", max_tokens=4)
        self.assertEqual((type(completion).__name__, completion.choices[0].logprobs),
                         ("TextCompletion", None))
        with client.completions("ai/smollm2", "Say hello", stream=True) as stream:
            self.assertIsInstance(next(iter(stream)), dmr_client.TextCompletionChunk)
            self.assertIsInstance(stream.final(), dmr_client.TextCompletion)
        embedded = client.embeddings("ai/mxbai-embed-large", ["a", "b"])
        self.assertEqual((type(embedded).__name__, type(embedded.data[1]).__name__), ("CreateEmbeddingResponse",
                                                                                        "Embedding"))
        self.assertEqual([type(model).__name__ for model in client.models()][:1], ["Model"])

    def test_completions(self):
        reply = self.client().completions("ai/smollm2", "Say hello", max_tokens=4)
        self.assertEqual(reply.choices[0].text, "Hello from a tiny")
        self.assertEqual((self.last.path, self.last.json),
                         ("/engines/llama.cpp/v1/completions", {"model": "ai/smollm2", "prompt": "Say hello", "max_tokens": 4}))

    def test_completions_stream_and_fold(self):
        stream = self.client().completions("ai/smollm2", "Say hello", stream=True)
        self.assertIn(type(stream).__name__, ("CompletionStream", "BlockingAsyncStream"))
        self.assertIn(type(getattr(stream, "_stream", stream)).__name__, ("CompletionStream", "AsyncCompletionStream"))
        self.assertEqual(stream.text(), "Hello from a tiny")
        self.assertEqual(stream.final().choices[0].finish_reason, "length")

    def test_chat_stream_final_and_text(self):
        stream = self.client().chat("ai/smollm2", HI, stream=True, stream_options={"include_usage": True})
        first = next(stream)
        self.assertEqual(first.choices[0].delta.role, "assistant")
        self.assertEqual(stream.text(), PHRASE)
        final = stream.final()
        self.assertEqual((final.object, final.choices[0].finish_reason, final.usage.total_tokens),
                         ("chat.completion", "stop", 36))

    def test_captured_tool_call_stream_over_the_wire(self):
        path = "/engines/llama.cpp/v1/chat/completions"
        self.fake.script(path, sse_reply(sse_events("chat-stream-tools.http"), piece=7))
        stream = self.client().chat("ai/smollm2", HI, stream=True, tools=[{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
        final = stream.final()
        self.assertEqual(final.choices[0].message.tool_calls[0].function.name, "get_weather")
        self.assertEqual(final.choices[0].message.tool_calls[0].function.arguments, '{"city": "Paris"}')
        self.assertEqual(stream.text(), "")

    def test_folding_never_hides_a_cut(self):
        path = "/engines/llama.cpp/v1/chat/completions"
        self.fake.script(path, sse_reply(sse_events("chat-stream.http")[:4], end="cut"))
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        with self.assertRaises(dmr_client.APIConnectionError):
            stream.text()
        with self.assertRaises(dmr_client.APIConnectionError):   # and again, not a partial answer
            stream.final()
        stream = self.client().chat("ai/smollm2", HI, stream=True)
        next(stream)
        stream.close()
        with self.assertRaises(dmr_client.DMRError) as caught:
            stream.final()
        self.assertIn("closed before it completed", str(caught.exception))

    def test_embeddings_in_input_order(self):
        reply = self.client().embeddings("ai/mxbai-embed-large", ["a", "bbb", "cc"])
        self.assertEqual([d.index for d in reply.data], [0, 1, 2])
        self.assertEqual([d.embedding[0] for d in reply.data], [1.0, 3.0, 2.0])
        self.assertEqual(self.last.path, "/engines/llama.cpp/v1/embeddings")
        self.assertEqual(self.client().embeddings("ai/mxbai-embed-large", "one").data[0].embedding, [3.0, 0.0])

    def test_embeddings_from_a_chat_model_say_so(self):
        with self.assertRaises(dmr_client.BadRequestError) as caught:
            self.client().embeddings("ai/smollm2", "text")
        self.assertIn("Pooling type 'none'", caught.exception.message)
        self.assertIn("embedding model", str(caught.exception))

    def test_embeddings_misuse(self):
        for bad in ("", [], None, [None], {"a": 1}):
            with self.subTest(bad=bad):
                with self.assertRaises((TypeError, ValueError)):
                    self.client().embeddings("ai/mxbai-embed-large", bad)
        self.assertEqual(self.fake.requests, [])

    def test_models_and_one_model(self):
        client = self.client()
        self.assertEqual([m.id for m in client.models()],
                         ["docker.io/ai/mxbai-embed-large:latest", "docker.io/ai/smollm2:latest"])
        self.assertEqual(client.model("ai/smollm2").id, "docker.io/ai/smollm2:latest")
        self.assertEqual(self.last.path, "/engines/llama.cpp/v1/models/ai/smollm2")
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.model("ai/absent")
        self.assertIn("models()", str(caught.exception))

    def test_rerank_lives_outside_v1(self):
        docs = ["the cat sat", "dogs bark loudly", "a cat and a dog"]
        reply = self.client().rerank("ai/smollm2", "cat dog", docs, top_n=2)
        self.assertEqual(self.last.path, "/engines/llama.cpp/rerank")
        self.assertEqual(self.last.json, {"model": "ai/smollm2", "query": "cat dog", "documents": docs, "top_n": 2})
        self.assertEqual([r.index for r in reply.results], [2, 0])
        for base, path in ((self.fake.url + "/engines/v1", "/engines/rerank"), (self.fake.url + "/v1", "/rerank"),
                           (self.fake.url + "/engines/vllm/v1", "/engines/vllm/rerank")):
            self.client(base).rerank("ai/smollm2", "cat", docs)
            self.assertEqual(self.last.path, path)

    def test_rerank_misuse(self):
        for args in (("", ["a"]), ("q", []), ("q", "just a string"), ("q", [1])):
            with self.assertRaises(TypeError):
                self.client().rerank("ai/smollm2", *args)


# -- over the wire: DMR's management API --


@for_both_clients
class TestManagement(FakeDMRTestCase):
    def test_pull_blocks_until_success(self):
        result = self.client().pull("ai/smollm2")
        self.assertEqual((result.type, result.message), ("success", "Model pulled successfully"))
        self.assertEqual((self.last.method, self.last.path), ("POST", "/models/create"))
        self.assertEqual(self.last.json, {"from": "ai/smollm2"})
        self.assertEqual(self.last.headers["Accept"], "application/json")

    def test_pull_progress_events(self):
        self.fake.script("/models/create", pull_reply(["progress", "warning", "progress", "success"]))
        with self.assertLogs("dmr_client", logging.WARNING):
            with self.client().pull("docker_model_runner/ai/smollm2", stream=True) as progress:
                events = list(progress)
        self.assertEqual([e.type for e in events], ["progress", "warning", "progress", "success"])
        self.assertEqual(events[2].layer.current, 3 * 1024 * 1024)
        self.assertEqual(events[1].message, 'disk is "almost" full')
        self.assertEqual(progress.result.type, "success")
        self.assertEqual(self.last.json, {"from": "ai/smollm2"})

    def test_pull_html_escaped_lines_and_bearer_token(self):
        self.fake.script("/models/create", pull_reply(["progress", "success"], escape=True))
        self.assertEqual(self.client().pull("hf.co/org/repo", bearer_token="hf_x").type, "success")
        self.assertEqual(self.last.json, {"from": "hf.co/org/repo", "bearer-token": "hf_x"})

    def test_pull_error_line(self):
        self.fake.script("/models/create", pull_reply(["progress", "error"], trailing="error while pulling model: x"))
        stream = self.client().pull("ai/smollm2", stream=True)
        self.assertEqual(next(stream).type, "progress")
        with self.assertRaises(dmr_client.PullError) as caught:
            next(stream)
        self.assertEqual(caught.exception.message, "Error: registry said <no>")

    def test_pull_trailing_plain_text_error(self):
        self.fake.script("/models/create", pull_reply(["progress"], trailing="error while pulling model: disk full"))
        with self.assertRaises(dmr_client.PullError) as caught:
            self.client().pull("ai/smollm2")
        self.assertEqual(caught.exception.message, "error while pulling model: disk full")

    def test_pull_that_ends_without_success(self):
        for chunked in (True, False):
            self.fake.script("/models/create", pull_reply(["progress", "progress"], chunked=chunked))
            with self.assertRaises(dmr_client.APIConnectionError) as caught:
                self.client().pull("ai/smollm2")
            self.assertIn("without DMR reporting success", str(caught.exception))

    def test_pull_errors_before_streaming(self):
        self.fake.script("/models/create", text_reply(404, "Model not found"))
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client().pull("ai/nope")
        self.assertIn("registry", str(caught.exception))
        with self.assertRaises(ValueError):
            self.client().pull("ai/x y")

    def test_closing_a_pull_cancels_it(self):
        cancelled = threading.Event()
        self.fake.script("/models/create", pull_reply(["progress"], gate=True, cancelled=cancelled))
        progress = self.client().pull("ai/smollm2", stream=True)
        self.assertEqual(next(progress).type, "progress")
        progress.close()
        self.assertTrue(cancelled.wait(5), "the server never saw the client hang up")
        with self.assertRaises(dmr_client.DMRError):
            progress.wait()

    def test_local_models_and_inspect(self):
        client = self.client()
        self.assertEqual([m.tags[0] for m in client.local_models()],
                         ["docker.io/ai/mxbai-embed-large:latest", "docker.io/ai/smollm2:latest"])
        self.assertEqual(client.inspect_model("ai/smollm2").config.quantization, "Q4_K_M")
        self.assertEqual(self.last.path, "/models/ai/smollm2")
        client.inspect_model("ai/smollm2", remote=True)
        self.assertEqual(self.last.path, "/models/ai/smollm2?remote=true")
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.inspect_model("ai/absent")
        self.assertIn("docker model pull ai/absent", str(caught.exception))

    def test_delete_and_force(self):
        client = self.client()
        self.assertEqual(client.delete_model("ai/smollm2")[0].Untagged, "docker.io/ai/smollm2:latest")
        self.assertEqual((self.last.method, self.last.path), ("DELETE", "/models/ai/smollm2"))
        with self.assertRaises(dmr_client.ConflictError) as caught:
            client.delete_model(SHARED_ID)
        self.assertIn("force=True", str(caught.exception))
        self.assertEqual(len([r for r in self.fake.requests if r.path == "/models/" + SHARED_ID]), 1)  # not retried
        actions = client.delete_model(SHARED_ID, force=True)
        self.assertEqual(self.last.path, "/models/%s?force=true" % SHARED_ID)
        self.assertEqual(actions[-1].Deleted, SHARED_ID)

    def test_engines_and_version(self):
        client = self.client()
        self.assertTrue(client.engine_status()["llama.cpp"].startswith("Running"))
        self.assertEqual(self.last.path, "/engines/status")
        self.assertEqual(client.running_models()[0].model_name, "ai/smollm2")
        self.assertEqual(client.unload(["docker_model_runner/ai/smollm2"]).unloaded_runners, 1)
        self.assertEqual(self.last.json, {"all": False, "models": ["ai/smollm2"]})
        client.unload(all=True, backend="llama.cpp")
        self.assertEqual(self.last.json, {"all": True, "backend": "llama.cpp"})
        with self.assertRaises(ValueError):
            client.unload()
        self.assertEqual(client.version(), "v1.2.6")

    def test_dmr_root_is_found_from_any_base_url(self):
        for base in ("", "/engines/v1", "/engines/vllm/v1", "/v1", "/v1/chat/completions"):
            with self.subTest(base=base):
                self.assertEqual(self.client(self.fake.url + base).version(), "v1.2.6")
                self.assertEqual(self.last.path, "/version")

    def test_ping(self):
        self.assertTrue(self.client().ping())
        self.assertEqual(self.last.path, "/")
        self.assertEqual(self.client().server_kind(), "dmr")
        self.assertFalse(self.client("http://127.0.0.1:%d" % free_port()).ping())
        self.fake.script("/", text_reply(404, "404 page not found"))   # llama.cpp without its web UI
        self.assertEqual(self.client().server_kind(), "openai-compatible")
        self.assertEqual(self.last.path, "/engines/llama.cpp/v1/models")
        self.fake.script("/", text_reply(503, "Model Runner is disabled"))   # Docker Desktop's socket, DMR off
        self.fake.script("/engines/llama.cpp/v1/models", text_reply(503, "Model Runner is disabled"))
        self.assertFalse(self.client().ping())
        self.fake.script("/", stall(5))
        started = time.monotonic()
        self.assertFalse(self.client().ping(timeout=0.3))
        self.assertLess(time.monotonic() - started, 3)

    def test_names_in_paths_cannot_escape(self):
        client = self.client()
        with self.assertRaises(dmr_client.NotFoundError):
            client.inspect_model("ai/x?remote=true")
        self.assertEqual(self.last.path, "/models/ai/x%3Fremote%3Dtrue")
        with self.assertRaises(dmr_client.NotFoundError):
            client.delete_model("ai/x#y")
        self.assertEqual(self.last.path, "/models/ai/x%23y")
        sent = len(self.fake.requests)
        for name in ("../../version", "ai/../../engines/unload", "ai/x\r\nX-Evil: 1", "ai/x y", "ai/%00"[:0]):
            with self.subTest(name=name):
                with self.assertRaises(ValueError):
                    client.delete_model(name)
                with self.assertRaises(ValueError):
                    client.model(name)
        self.assertEqual(len(self.fake.requests), sent)


# -- over the wire: running models (configure, preload, speed figures, reasoning, tokens) --


@for_both_clients
class TestRunningModels(FakeDMRTestCase):
    def test_configure_sends_what_dmr_reads(self):
        client = self.client()
        self.fake.runners.clear()
        self.assertIsNone(client.configure("ai/smollm2", context_size=8192, keep_alive="10m",
                                           runtime_flags=["--threads", "4"], reasoning_budget=-1))
        request = self.last
        self.assertEqual((request.method, request.path), ("POST", "/engines/_configure"))
        self.assertEqual(request.json, {"model": "ai/smollm2", "context-size": 8192, "keep_alive": "10m",
                                        "runtime-flags": ["--threads", "4"], "llamacpp": {"reasoning-budget": -1}})
        self.fake.runners.clear()
        client.configure("vllm/ai/smollm2", context_size=4096)
        self.assertEqual(self.last.path, "/engines/vllm/_configure")
        self.assertEqual(self.last.json, {"model": "ai/smollm2", "context-size": 4096})
        entries = client.configuration("ai/smollm2")
        self.assertEqual(self.last.path, "/engines/_configure?model=ai/smollm2")
        self.assertEqual([(e.Backend, e.Model, e.Config) for e in entries],
                         [("vllm", "ai/smollm2", {"context-size": 4096})])
        self.assertEqual(len(client.configuration()), 1)

    def test_a_model_name_in_a_query_is_percent_quoted(self):
        client = self.client()
        name = "hf.co/org/a&b=c #d+e%f?g"
        self.fake.configs[name] = {"backend": "llama.cpp", "context-size": 2048}
        self.fake.configs["hf.co/org/a"] = {"backend": "llama.cpp", "context-size": 1024}
        quoted = "hf.co/org/a%26b%3Dc%20%23d%2Be%25f%3Fg"
        entries = client.configuration(name)
        self.assertEqual(self.last.path, "/engines/_configure?model=" + quoted)   # what reached the server
        self.assertEqual([entry.Model for entry in entries], [name])
        client.configuration("vllm/" + name)   # the engine prefix is not part of the name
        self.assertEqual(self.last.path, "/engines/_configure?model=" + quoted)
        client.requests(name)
        self.assertEqual(self.last.path, "/engines/requests?model=" + quoted)
        client.configuration("ai/smollm2:Q4_K_M@sha256:1")   # '/', ':' and '@' stay as they are
        self.assertEqual(self.last.path, "/engines/_configure?model=ai/smollm2:Q4_K_M@sha256:1")
        client.requests("ai/smollm2:Q4_K_M@sha256:1")
        self.assertEqual(self.last.path, "/engines/requests?model=ai/smollm2:Q4_K_M@sha256:1")

    def test_bad_settings_are_refused_before_sending(self):
        client = self.client()
        for kwargs in ({"context_size": -1}, {"keep_alive": "forever"}, {"mode": "chat"}, {}, {"engine": "nope"}):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError):
                    client.configure("ai/smollm2", **kwargs)
        self.assertEqual(self.fake.requests, [])

    def test_a_loaded_model_conflicts_and_reload_does_all_three_steps(self):
        client = self.client()
        with self.assertRaises(dmr_client.ConflictError) as caught:
            client.configure("ai/smollm2", context_size=8192)
        self.assertIn("reload=True", str(caught.exception))
        self.assertEqual(len(self.fake.requests), 1)   # a 409 here is a fact, not a passing state
        self.fake.requests.clear()
        self.assertIsNone(client.configure("ai/smollm2", context_size=8192, reload=True))
        self.assertEqual([(r.method, r.path) for r in self.fake.requests],
                         [("POST", "/engines/unload"), ("POST", "/engines/_configure"),
                          ("POST", "/engines/llama.cpp/v1/chat/completions")])
        self.assertEqual(self.fake.requests[-1].headers["X-Preload-Only"], "true")
        self.assertEqual(self.fake.runners["ai/smollm2"], 0)   # loaded

    def test_preload_and_wait_until_loaded(self):
        client = self.client()
        self.assertIsNone(client.preload("ai/mxbai-embed-large"))
        self.assertEqual(self.last.headers["X-Preload-Only"], "true")
        self.assertEqual(self.last.json["model"], "ai/mxbai-embed-large")
        self.fake.runners.pop("ai/mxbai-embed-large")
        self.fake.load_polls = 3
        client.configure("ai/mxbai-embed-large", keep_alive=-1)   # starts a load that takes 3 polls
        entry = client.wait_until_loaded("ai/mxbai-embed-large")
        self.assertEqual((entry.model_name, entry.keep_alive), ("ai/mxbai-embed-large", "-1"))
        self.assertNotIn("loading", entry)
        self.assertEqual(len(self.sleeps), 3)   # polled three times in vain, waiting between
        self.fake.runners["ai/mxbai-embed-large"] = 10 ** 6
        with self.assertRaises(dmr_client.APITimeoutError) as caught:
            client.wait_until_loaded("ai/mxbai-embed-large", timeout=0.2, poll=0.05)
        self.assertIn("still loading after 0.2 s", str(caught.exception))
        self.fake.runners.clear()
        self.assertEqual(client.load("ai/smollm2").model_name, "ai/smollm2")

    def test_logs_and_the_request_log_whole_and_followed(self):
        client = self.client()
        text = client.logs()
        self.assertEqual(self.last.path, "/logs?follow=false&no-engines=false")
        self.assertTrue(text.startswith('time=1 level=INFO msg="Listening"\n'))
        with client.logs(follow=True, engines=False) as followed:
            self.assertEqual(list(followed), ['time=1 level=INFO msg="Listening"', 'time=2 level=INFO msg="done"'])
        self.assertEqual(self.last.path, "/logs?follow=true&no-engines=true")
        self.assertEqual(followed.received, 2)
        self.assertEqual(client.requests()[0].model, "ai/smollm2")
        self.assertEqual(client.requests("ai/other"), [])
        self.assertEqual(self.last.path, "/engines/requests?model=ai/other")
        events = list(client.requests(follow=True))
        self.assertEqual(self.last.headers["Accept"], "text/event-stream")
        self.assertEqual([(e.event, e.data.get("id")) for e in events], [("connected", None), ("new_request", "r-1")])

    def test_model_on_a_server_without_the_models_id_route(self):
        client = self.client()
        route = "/engines/llama.cpp/v1/models/ai/smollm2"
        self.fake.script(route, text_reply(404, "File Not Found"))   # llama.cpp serves the list only
        self.assertEqual(client.model("ai/smollm2").id, "docker.io/ai/smollm2:latest")
        self.assertEqual([r.path for r in self.fake.requests[-2:]], [route, "/engines/llama.cpp/v1/models"])
        self.fake.script("/engines/llama.cpp/v1/models/ai/nope", text_reply(404, "File Not Found"))
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.model("ai/nope")
        self.assertIn("its list has docker.io/ai/mxbai-embed-large:latest, docker.io/ai/smollm2:latest",
                      str(caught.exception))

    def test_dmr_calls_on_a_server_that_is_not_dmr_say_so(self):
        listing = {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "openai"}]}
        self.fake.script("/models", json_reply(200, listing))   # a gateway's /models is the OpenAI list
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            self.client().local_models()
        self.assertIn("the server at %s is a gateway or another OpenAI-compatible server" % self.fake.url,
                      str(caught.exception))
        self.assertIn("models() lists what it serves", str(caught.exception))
        self.fake.script("/models", json_reply(200, {"data": "nope"}))   # not a model list: no such advice
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            self.client().local_models()
        self.assertNotIn("gateway", str(caught.exception))
        self.fake.script("/models/create", json_reply(405, {"detail": "Method Not Allowed"}))
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            self.client().pull("ai/smollm2")
        self.assertIn("does not serve Docker Model Runner's own API", caught.exception.hint)
        self.fake.script("/engines/_configure", json_reply(200, listing))   # DMR's own routes, on a gateway
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            self.client().configuration()
        self.assertIn("is a gateway or another OpenAI-compatible server", str(caught.exception))
        for path, call in (("/engines/_configure", lambda c: c.configuration()),
                           ("/engines/requests", lambda c: c.requests()),
                           ("/engines/requests", lambda c: c.requests(follow=True))):
            self.fake.script(path, json_reply(405, {"detail": "Method Not Allowed"}))
            with self.assertRaises(dmr_client.APIStatusError) as caught:
                call(self.client())
            self.assertIn("does not serve Docker Model Runner's own API", caught.exception.hint)

    def test_a_missing_model_is_advice_that_fits_the_url(self):
        missing = json_reply(404, {"error": {"message": "The model `nope` does not exist", "code": 404}})
        self.fake.script("/engines/llama.cpp/v1/models/nope", missing)
        self.fake.script("/v1/models/nope", missing)
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client().model("nope")
        self.assertEqual(caught.exception.hint, "no model 'nope' here: see models() or `docker model ls`")
        with self.assertRaises(dmr_client.NotFoundError) as caught:   # a gateway's /v1: not DMR's advice
            self.client(self.fake.url + "/v1").model("nope")
        self.assertEqual(caught.exception.hint, "no model 'nope' here: see models()")

    def test_disk_usage_metrics_and_running_models(self):
        client = self.client()
        self.assertEqual(client.disk_usage().models_disk_usage, 2684354560)
        metrics = client.metrics()
        self.assertEqual(self.last.headers["Accept"], "text/plain")
        self.assertEqual(metrics["go_goroutines"], [({}, 42.0)])
        self.assertEqual(client.running_models()[0].model_name, "ai/smollm2")

    def test_count_tokens_and_fits(self):
        client = self.client()
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three"}]
        self.assertEqual(client.count_tokens("ai/smollm2", messages), 5)
        self.assertEqual(self.last.path, "/engines/llama.cpp/v1/messages/count_tokens")
        self.assertEqual(self.last.json, {"model": "ai/smollm2", "system": "Be brief.",
                                          "messages": [{"role": "user", "content": "one two three"}]})
        unknown = client.fits("ai/smollm2", messages, max_tokens=10)
        self.assertIsNone(unknown.fits)
        self.assertEqual(unknown.prompt_tokens, 5)
        self.assertIn("no context size is configured", unknown.reason)
        self.fake.configs["ai/smollm2"] = {"context-size": 16, "backend": "llama.cpp"}
        self.assertTrue(client.fits("ai/smollm2", messages, max_tokens=11).fits)
        answer = client.fits("ai/smollm2", messages, max_tokens=12)
        self.assertEqual((answer.fits, answer.context_size), (False, 16))
        self.assertIn("do not fit in the configured 16", answer.reason)

    def test_fits_from_the_context_llama_cpp_tells(self):
        # llama.cpp's own server: no DMR configuration, but meta.n_ctx in its model list
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(200, {"object": "list", "data": [
            {"id": "other", "meta": {"n_ctx": 99}}, dict(LLAMA_SERVER_MODEL, id="x", aliases=["ai/smollm2"])]}))
        client = self.client()
        messages = [{"role": "user", "content": "one two three"}]
        answer = client.fits("ai/smollm2", messages, max_tokens=8189)
        self.assertEqual((answer.fits, answer.context_size, answer.prompt_tokens), (True, 8192, 3))
        self.assertEqual(answer.reason, "3 prompt + 8189 answer tokens fit in the server's context of 8192")
        self.assertFalse(client.fits("ai/smollm2", messages, max_tokens=8190).fits)
        self.fake.configs["ai/smollm2"] = {"context-size": 16, "backend": "llama.cpp"}   # DMR's own word wins
        self.assertEqual(client.fits("ai/smollm2", messages).context_size, 16)
        for meta in ({"n_ctx": 0}, {"n_ctx": "8192"}, {"n_ctx": True}, None):
            with self.subTest(meta=meta):
                self.assertIsNone(dmr_client._served_context({"id": "m", "meta": meta}, "m"))

    def test_stats_of_results_and_streams(self):
        client = self.client()
        reply = client.chat("ai/smollm2", HI)   # the captured reply carries llama.cpp's timings
        self.assertIsInstance(reply, dmr_client.Completion)
        self.assertEqual(reply.stats.source, "server")
        self.assertGreater(reply.stats.generated_tokens_per_s, 0)
        self.assertNotIn("stats", json.loads(json.dumps(reply)))
        stream = client.chat("ai/smollm2", HI, stream=True)
        self.assertIsNone(stream.stats)   # not complete yet
        final = stream.final()
        self.assertTrue(0 <= final.first_token <= final.elapsed, (final.first_token, final.elapsed))   # our clock
        self.assertEqual((final.stats.source, stream.stats.source), ("server", "server"))
        self.assertGreater(final.stats.total_s, 0)
        self.assertGreaterEqual(final.stats.total_s, final.stats.time_to_first_token_s)
        events = [e for e in sse_events("chat-stream-no-usage.http") if b"timings" not in e]
        self.fake.script(TestChat.PATH if hasattr(TestChat, "PATH") else "/engines/llama.cpp/v1/chat/completions",
                         sse_reply(events))
        stats = client.chat("ai/smollm2", HI, stream=True).final().stats
        self.assertEqual(stats.source, "client, chunks counted")
        self.assertEqual(stats.completion_tokens, 8)   # the 8 text chunks, not the role or finish chunks
        self.fake.script(CHAT_PATH, sse_reply(sse_events("chat-stream.http")))
        with client.chat("ai/smollm2", HI, stream=True) as stream:   # usage in the last chunk, after the finish
            for _ in stream:
                pass
        self.assertEqual((stream.stats.prompt_tokens, stream.stats.completion_tokens, stream.stats.context_tokens),
                         (27, 9, 36))

    def test_think_maps_to_the_template_switch(self):
        client = self.client()
        client.chat("ai/smollm2", HI, think=False)
        self.assertEqual(self.last.json["chat_template_kwargs"], {"enable_thinking": False})
        client.chat("ai/smollm2", HI, think=True, chat_template_kwargs={"other": 1})
        self.assertEqual(self.last.json["chat_template_kwargs"], {"other": 1, "enable_thinking": True})
        client.chat("ai/smollm2", HI)
        self.assertNotIn("chat_template_kwargs", self.last.json)
        with self.assertRaises(TypeError):
            client.chat("ai/smollm2", HI, think="yes")

    def test_reasoning_stays_apart_from_the_answer(self):
        client = self.client()
        self.fake.script("/engines/llama.cpp/v1/chat/completions", sse_reply(sse_events("chat-stream-reasoning.http")))
        reply = client.chat("ai/smollm2", HI, stream=True).final()
        message = reply.choices[0].message
        self.assertTrue(message.reasoning_content)
        self.assertNotIn(message.reasoning_content, message.content)


# -- over the wire: models in and out (export, import, tag, push, repackage, purge, engines) --


@for_both_clients
class TestModelsInAndOut(FakeDMRTestCase):
    """The air-gapped path, end to end against the fake DMR: export_model() writes DMR's tar to
    a file, import_model() streams it back up to /models/load; and the other calls of `docker
    model` that change the store or the engines."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name="smollm2.tar"):
        return os.path.join(self.dir, name)

    def test_export_then_import_is_the_same_model(self):
        self.fake.export_size = 3 << 20
        client, seen = self.client(), []
        written = client.export_model("ai/smollm2", self.path(), progress=lambda done, total: seen.append((done, total)))
        expected, model_id = model_tar(3 << 20, "ai/smollm2")
        self.assertEqual(written, {"path": self.path(), "bytes": len(expected)})
        with open(self.path(), "rb") as file:
            self.assertEqual(file.read(), expected)
        self.assertEqual((self.last.method, self.last.path, self.last.headers["Accept"]),
                         ("GET", "/models/ai/smollm2/export", "application/x-tar"))
        self.assertEqual(seen[-1], (len(expected), None))   # bytes counted: DMR sends no length
        self.assertGreater(len(seen), 1)
        self.assertEqual(os.listdir(self.dir), ["smollm2.tar"])   # no temporary file left
        seen.clear()
        loaded = client.import_model(self.path(), progress=lambda done, total: seen.append((done, total)))
        self.assertEqual((loaded.type, loaded.message, loaded.id), ("success", "Model loaded successfully", model_id))
        self.assertEqual(self.fake.loaded, [(model_id, 3 << 20 | 0) if False else self.fake.loaded[0]])
        self.assertEqual(self.fake.loaded[0][0], model_id)
        self.assertEqual((self.last.path, self.last.headers["Content-Type"], self.last.headers["Content-Length"]),
                         ("/models/load", "application/x-tar", str(len(expected))))
        self.assertEqual(seen[-1], (len(expected), len(expected)))
        self.assertEqual([total for _, total in seen], [len(expected)] * len(seen))
        self.assertIn(model_id, self.fake.models)

    def test_import_with_a_tag_names_the_model(self):
        with open(self.path(), "wb") as file:
            file.write(model_tar(1000, "ai/other")[0])
        loaded = self.client().import_model(self.path(), tag="myorg/other:v2")
        self.assertEqual(loaded.tagged, "myorg/other:v2")
        self.assertEqual(self.last.path, "/models/%s/tag?repo=myorg/other&tag=v2" % loaded.id)
        self.assertIn("myorg/other:v2", self.fake.models)

    def test_what_cannot_be_imported_is_refused_before_sending(self):
        with open(self.path("notes.txt"), "w") as file:
            file.write("not a tar\n" * 100)
        import tarfile
        with tarfile.open(self.path("plain.tar"), "w") as archive:
            archive.add(self.path("notes.txt"), "notes.txt")
        client = self.client()
        for path, said in ((self.path("notes.txt"), "is not a tar archive"),
                           (self.path("plain.tar"), "is a tar archive, but not an exported model (it has no "
                                                    "manifest.json)"),
                           (self.path("missing.tar"), "cannot be read"), (self.dir, "cannot be read")):
            with self.subTest(path=path):
                with self.assertRaises(ValueError) as caught:
                    client.import_model(path)
                self.assertIn(path + " " + said, str(caught.exception))
        with self.assertRaises(ValueError):
            client.import_model(self.path("notes.txt"), tag="no tag")
        self.assertEqual(self.fake.requests, [])

    def test_an_error_in_the_middle_of_the_upload_is_the_servers_answer(self):
        self.fake.load_fault = "no space left on device"
        with open(self.path(), "wb") as file:
            file.write(model_tar(24 << 20)[0])
        with self.assertRaises(dmr_client.InternalServerError) as caught:
            self.client(max_retries=3).import_model(self.path())
        self.assertEqual(caught.exception.status_code, 500)
        self.assertIn("writing blob: no space left on device", str(caught.exception))
        self.assertEqual((len(self.fake.requests), self.sleeps), (1, []))   # never sent twice

    def test_an_export_that_fails_leaves_no_file(self):
        client = self.client()
        for fault, error, said in (("cut", dmr_client.APIConnectionError, "/models/ai/smollm2/export was cut after"),
                                   ("error", dmr_client.InvalidResponseError,
                                    "ended without the end of a tar archive")):
            with self.subTest(fault=fault):
                self.fake.export_fault = fault
                self.fake.export_size = 2 << 20
                with self.assertRaises(error) as caught:
                    client.export_model("ai/smollm2", self.path())
                self.assertIn(said, str(caught.exception))
                self.assertIn("no file was written", str(caught.exception))
                self.assertEqual(os.listdir(self.dir), [])
        self.assertIn("export model: add layer entry: read: input/output error: no file", str(caught.exception))

    def test_an_export_that_cannot_start_leaves_no_file(self):
        client = self.client()
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.export_model("ai/nothing", self.path())
        self.assertIn("no model 'ai/nothing' in DMR's store", caught.exception.hint)
        sent = len(self.fake.requests)
        for path in (self.dir, os.path.join(self.dir, "no", "such.tar")):
            with self.subTest(path=path):
                with self.assertRaises(ValueError):
                    client.export_model("ai/smollm2", path)
        self.assertEqual((len(self.fake.requests), os.listdir(self.dir)), (sent, []))

    def test_an_existing_file_is_replaced_only_by_a_whole_tar(self):
        with open(self.path(), "wb") as file:
            file.write(b"the old one")
        self.fake.export_fault = "cut"
        with self.assertRaises(dmr_client.APIConnectionError):
            self.client().export_model("ai/smollm2", self.path())
        with open(self.path(), "rb") as file:
            self.assertEqual(file.read(), b"the old one")
        self.fake.export_fault = None
        self.client().export_model("ai/smollm2", self.path())
        with open(self.path(), "rb") as file:
            self.assertEqual(file.read(), model_tar(4096)[0])

    def test_tag(self):
        client = self.client()
        self.assertEqual(client.tag_model("ai/smollm2", "myorg/smollm2:v2"),
                         {"message": 'Model tagged successfully with "myorg/smollm2:v2"', "target": "myorg/smollm2:v2"})
        self.assertEqual((self.last.method, self.last.path), ("POST", "/models/ai/smollm2/tag?repo=myorg/smollm2&tag=v2"))
        client.tag_model("ai/smollm2", "registry.local:5000/team/smollm2")
        self.assertEqual(self.last.path, "/models/ai/smollm2/tag?repo=registry.local:5000/team/smollm2&tag=latest")
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.tag_model("ai/nothing", "x:y")
        self.assertIn("no model 'ai/nothing' in DMR's store", caught.exception.hint)
        sent = len(self.fake.requests)
        for bad in ("", "a b", "repo:", "repo:bad/tag?", "repo:" + "t" * 200):
            with self.subTest(target=bad):
                with self.assertRaises(ValueError):
                    client.tag_model("ai/smollm2", bad)
        self.assertEqual(len(self.fake.requests), sent)

    def test_push_reports_progress_like_pull(self):
        client = self.client()
        done = client.push_model("ai/smollm2")
        self.assertEqual((done.type, done.message, done.mode), ("success", "Model pushed successfully", "push"))
        self.assertEqual((self.last.path, self.last.body), ("/models/ai/smollm2/push", b""))
        with client.push_model("ai/smollm2", stream=True, bearer_token="hf_x") as events:
            kinds = [event.type for event in events]
        self.assertEqual((kinds, events.result.message), (["progress", "progress", "success"], "Model pushed successfully"))
        self.assertEqual(self.last.json, {"bearer-token": "hf_x"})
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.push_model("ai/nothing")
        self.assertIn("no model 'ai/nothing' in DMR's store", caught.exception.hint)
        self.fake.script("/models/ai/smollm2/push", pull_reply(["progress"], mode="push"))
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            client.push_model("ai/smollm2")
        self.assertIn("the push of ai/smollm2 ended without DMR reporting success", str(caught.exception))

    def test_repackage_purge_and_remote_inspect(self):
        client = self.client()
        self.assertEqual(client.repackage("ai/smollm2", "ai/smollm2-32k", context_size=32768).target, "ai/smollm2-32k")
        self.assertEqual((self.last.path, self.last.json), ("/models/ai/smollm2/repackage",
                                                            {"target": "ai/smollm2-32k", "context_size": 32768}))
        with self.assertRaises(ValueError):
            client.repackage("ai/smollm2", "x", context_size=0)
        self.assertEqual(client.inspect_model("ai/gemma3", remote=True).id, REGISTRY["ai/gemma3"]["id"])
        self.assertEqual(self.last.path, "/models/ai/gemma3?remote=true")
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            client.inspect_model("ai/nothing", remote=True)
        self.assertEqual(caught.exception.hint, "no model 'ai/nothing' in its registry: check the name and tag")
        self.assertIsNone(client.purge_models())
        self.assertEqual((self.last.method, self.last.path, client.local_models()), ("DELETE", "/models/purge", []))

    def test_engines_install_and_the_412_that_names_it(self):
        client = self.client()
        self.fake.diffusers = False
        self.fake.models.add("ai/stable-diffusion")
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            client.images("ai/stable-diffusion", "a cat")
        self.assertEqual(caught.exception.status_code, 412)
        self.assertIn('install_backend("diffusers")', caught.exception.hint)
        self.assertIsNone(client.install_backend("diffusers"))
        self.assertEqual((self.last.path, self.last.json), ("/engines/install-backend", {"backend": "diffusers"}))
        self.assertEqual(len(client.images("ai/stable-diffusion", "a cat").data), 1)
        client.install_backend("vllm", version="latest")
        self.assertEqual(self.last.json, {"backend": "vllm", "version": "latest"})
        client.uninstall_backend("diffusers")
        self.assertEqual((self.last.path, self.fake.diffusers), ("/engines/uninstall-backend", False))
        with self.assertRaises(ValueError):
            client.install_backend("ollama")
        self.fake.script("/engines/v1/chat/completions", text_reply(
            412, 'backend "vllm" is not installed; run: docker model install-runner --backend vllm'))
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            self.client(self.fake.url + "/engines/v1").chat("ai/smollm2", HI)
        self.assertIn("install_backend('vllm')", caught.exception.hint)


MEMORY_PROBE = """
import asyncio, json, sys, tracemalloc
import dmr_client
url, directory = sys.argv[1:3]
peaks = {}
tracemalloc.start()
with dmr_client.Client(url) as client:
    client.version()   # what any first call costs (http.client's import) is not the transfer's
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    peaks["Client.export_model"] = client.export_model("ai/smollm2", directory + "/a.tar").bytes, \\
        tracemalloc.get_traced_memory()[1] - base
    tracemalloc.reset_peak()
    client.import_model(directory + "/a.tar")
    peaks["Client.import_model"] = None, tracemalloc.get_traced_memory()[1] - base
async def main():
    async with dmr_client.AsyncClient(url) as client:
        await client.version()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        peaks["AsyncClient.export_model"] = (await client.export_model("ai/smollm2", directory + "/b.tar")).bytes, \\
            tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        await client.import_model(directory + "/b.tar")
        peaks["AsyncClient.import_model"] = None, tracemalloc.get_traced_memory()[1] - base
asyncio.run(main())
print(json.dumps(peaks))
"""


@SLOW_TIER
class TestTransferMemory(FakeDMRTestCase):
    """A 50 MB model goes out and back in without the file ever in memory: the peak of what
    Python allocates (tracemalloc, in a process of its own) stays a few MiB, for both clients."""

    def test_fifty_megabytes_out_and_in(self):
        self.fake.export_size = 50 * 1000 * 1000
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, self.fake.url, directory], capture_output=True,
                                text=True, timeout=120, env=dict(os.environ, PYTHONPATH=HERE))
        self.assertEqual(result.returncode, 0, result.stderr)
        peaks = json.loads(result.stdout)
        sys.stderr.write("\n  peak memory of a 50 MB transfer: %s\n" % ", ".join(
            "%s %.1f MiB" % (call, peak / (1 << 20)) for call, (_, peak) in peaks.items()))
        for call, (size, peak) in peaks.items():
            with self.subTest(call=call):
                if size is not None:
                    self.assertGreater(size, 50 * 1000 * 1000)
                self.assertLess(peak, 6 << 20)
        self.assertEqual(len(self.fake.loaded), 2)
        self.assertTrue(all(total > 50 * 1000 * 1000 for _, total in self.fake.loaded), self.fake.loaded)


class TestReadme(FakeDMRTestCase):
    """The README's Python examples, run in order in one namespace (as a reader would type them)
    against the fake DMR: an example that does not run is a README that lies.  Blocks fenced
    ```py are other libraries' code (ollama-python, openai-python), shown for comparison: not run."""

    def test_every_python_example_runs(self):
        import contextlib
        import io

        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            blocks = re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)
        self.assertGreaterEqual(len(blocks), 8)
        self.fake.models.update({"ai/qwen3", "ai/qwen3-reranker", "smollm2", "ai/stable-diffusion", "ai/gemma3"})
        folder, here = tempfile.mkdtemp(), os.getcwd()
        os.chdir(folder)   # the examples write files (fox.png) and read them (cat.png)
        shutil.copy(os.path.join(MEDIA, "tiny.png"), os.path.join(folder, "cat.png"))
        self.addCleanup(shutil.rmtree, folder)
        self.addCleanup(os.chdir, here)
        self.fake.runners.clear()   # configure() first: a model that is loaded keeps its settings
        namespace = {}
        out = io.StringIO()
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_BASE": self.fake.url}), \
                contextlib.redirect_stdout(out):
            for number, block in enumerate(blocks, 1):
                block = block.replace("http://localhost:4000", self.fake.url)   # the gateway example
                block = block.replace("http://localhost:12434", self.fake.url)  # openai-python's way
                with self.subTest(block=number, first_line=block.splitlines()[0]):
                    # dont_inherit: compiled as a reader's script is, without this file's
                    # `from __future__ import annotations` (the examples' types are read at run time)
                    exec(compile(block, "README.md python block %d" % number, "exec", dont_inherit=True), namespace)
        namespace["client"].close()
        self.assertIn(PHRASE, out.getvalue())
        # The typed examples did what they say: an answer built as the dataclass, the misfit's path,
        # one tool call run by run_tools() without an error.
        self.assertIsInstance(namespace["city"], namespace["City"])
        self.assertIn('$.population — expected integer, got "many"', out.getvalue())
        self.assertEqual([(step.name, step.error) for step in namespace["steps"]], [("get_weather", None)])


class TestFakeTypedTurn(unittest.TestCase):
    """The fake model's answers to tools and schemas (typed_turn): what the README's examples see."""

    def test_a_schema_gets_the_smallest_json_that_fits(self):
        for tp in (Address, bool, List[Address], Dict[str, int], Literal["a", "b"], Tuple[int, str]):
            schema = dmr_client.json_schema(tp)
            with self.subTest(tp=tp):
                message, finish = typed_turn({"messages": [], "response_format": {
                    "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
                dmr_client.validate(json.loads(message["content"]), schema)
                self.assertEqual(finish, "stop")
        schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}, "required": ["n"]}
        self.assertEqual(typed_turn({"response_format": {"type": "json_object", "schema": schema}})[0]["content"],
                         '{"n": 3}')
        for ignored in ({"type": "json_schema", "schema": schema}, {"type": "text"}, None):   # as llama.cpp
            self.assertIsNone(typed_turn({"messages": [], "response_format": ignored}))

    def test_tools_are_called_once_each_then_the_phrase(self):
        def size(obj):
            return len(obj)
        tools = [dmr_client.function_tool(get_weather), dmr_client.function_tool(size)]
        message, finish = typed_turn({"messages": [], "tools": tools})
        self.assertEqual(finish, "tool_calls")
        self.assertEqual([(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                          for c in message["tool_calls"]], [("call_1", "get_weather", {"city": ""}),
                                                            ("call_2", "size", {"obj": None})])
        self.assertIsNone(typed_turn({"messages": [{"role": "tool", "content": "x"}], "tools": tools}))
        self.assertIsNone(typed_turn({"messages": [], "tools": tools, "tool_choice": "none"}))


CHAT_PATH = "/engines/llama.cpp/v1/chat/completions"


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather in a city.

    Args:
        city: The city's name.
        unit: Celsius or Fahrenheit.
    """
    if city == "Atlantis":
        raise LookupError("no weather under the sea")
    return "sunny in %s" % city


def sse_of(*objects):
    return [b"data: %s\n\n" % json.dumps(obj).encode() for obj in objects] + [b"data: [DONE]\n\n"]


@for_both_clients
class TestTypedAnswers(FakeDMRTestCase):
    """chat(schema=) and tools=[functions]: what is sent, and what the reply becomes."""

    def answer(self, *messages, finish="stop"):
        self.fake.script(CHAT_PATH, *(json_reply(200, completion_of(message, finish)) for message in messages))

    def test_the_schema_is_sent_as_response_format_and_the_answer_parsed(self):
        self.answer({"content": '{"street": "Main St", "zip": null}'})
        reply = self.client().chat("ai/smollm2", HI, schema=Address, temperature=0)
        self.assertEqual(self.last.json["response_format"], {"type": "json_schema", "json_schema": {
            "name": "Address", "schema": dmr_client.json_schema(Address)}})
        self.assertEqual(self.last.json["temperature"], 0)
        self.assertIsInstance(reply, dmr_client.ParsedChatCompletion)
        self.assertEqual(reply.parsed, Address("Main St"))
        self.assertIs(reply.choices[0].message.parsed, reply.parsed)
        self.assertEqual(reply.stats.completion_tokens, 3)
        self.client().chat("ai/smollm2", HI, schema={"type": "object"}, strict=True)
        self.assertEqual(self.last.json["response_format"]["json_schema"],
                         {"name": "answer", "schema": {"type": "object"}, "strict": True})

    def test_an_answer_that_does_not_fit_is_an_invalid_response_and_not_sent_again(self):
        self.answer({"content": '{"zip": "1"}'})
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:
            self.client().chat("ai/smollm2", HI, schema=Address)
        self.assertEqual((caught.exception.path, caught.exception.body), ("$.street", '{"zip": "1"}'))
        self.assertEqual(len(self.fake.requests), 1)
        self.answer({"content": '{"street": "M'}, finish="length")
        with self.assertRaises(dmr_client.LengthFinishReasonError):
            self.client().chat("ai/smollm2", HI, schema=Address, max_tokens=3)

    def test_a_slip_of_a_known_keyword_is_refused_naming_the_one_meant(self):
        client = self.client()
        for kwargs, meant in ((dict(temprature=0.2), "temperature"), (dict(max_token=5), "max_tokens"),
                              (dict(shcema=Address), "schema"), (dict(tool=[get_weather]), "tools")):
            with self.subTest(kwargs=kwargs), self.assertRaises(TypeError) as caught:
                client.chat("ai/smollm2", HI, **kwargs)
            name = next(iter(kwargs))
            self.assertEqual(str(caught.exception), "chat() got %s=: did you mean %s=? (to send %r as it is, pass "
                                                    "extra_body={%r: ...})" % (name, meant, name, name))
        self.assertEqual(self.fake.requests, [])
        client.chat("ai/smollm2", HI, n_predict=3, x_vendor_field=1, extra_body={"temprature": 1})
        self.assertEqual((self.last.json["n_predict"], self.last.json["x_vendor_field"], self.last.json["temprature"]),
                         (3, 1, 1))   # what is no slip goes as it is
        with self.assertRaises(TypeError):
            client.chat("ai/smollm2", HI, stream="yes")

    def test_plain_chat_is_untouched(self):
        self.answer({"content": "Hello"})
        reply = self.client().chat("ai/smollm2", HI)
        self.assertIs(type(reply), dmr_client.ChatCompletion)
        self.assertNotIn("response_format", self.last.json)

    def test_wrong_uses_are_refused_before_sending(self):
        client = self.client()
        for kwargs, error, words in (
                (dict(schema=Address, response_format={"type": "json_object"}), TypeError, "not both"),
                (dict(strict=True), TypeError, "strict= goes with schema="),
                (dict(response_format=Address), TypeError, "pass schema=Address"),
                (dict(schema=Tagged), TypeError, "a set"),
                (dict(schema={"type": "json_schema", "schema": {}}), TypeError, "keeps its schema under 'json_schema'"),
                (dict(tools=[lambda city: city]), ValueError, "not one a model can call")):
            with self.subTest(kwargs=kwargs), self.assertRaises(error) as caught:
                client.chat("ai/smollm2", HI, **kwargs)
            self.assertIn(words, str(caught.exception))
        self.assertEqual(self.fake.requests, [])

    def test_functions_are_sent_as_tools_and_their_calls_checked(self):
        raw = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
        self.answer({"content": "", "tool_calls": [tool_call(1, "get_weather", '{"city": "Paris", "unit": "f"}'),
                                                   tool_call(2, "get_weather", '{"unit": "f"}')]}, finish="tool_calls")
        reply = self.client().chat("ai/smollm2", HI, tools=[get_weather, raw], tool_choice="auto")
        self.assertEqual(self.last.json["tools"], [dmr_client.function_tool(get_weather), raw])
        self.assertEqual(self.last.json["tool_choice"], "auto")
        first, second = reply.choices[0].message.tool_calls
        self.assertEqual(first.function.parsed_arguments, {"city": "Paris", "unit": "f"})
        with self.assertRaises(dmr_client.ValidationError) as caught:
            _ = second.function.parsed_arguments
        self.assertEqual(caught.exception.path, "$.city")

    def test_a_stream_folds_into_the_parsed_answer(self):
        pieces = ['{"street"', ': "Main', ' St"}']
        self.fake.script(CHAT_PATH, sse_reply(sse_of(*[chunk({"content": p}) for p in pieces], chunk(finish="stop"))))
        with self.client().chat("ai/smollm2", HI, stream=True, schema=Address) as stream:
            self.assertEqual(text_of(stream), "".join(pieces))
            final = stream.final()
        self.assertEqual(final.parsed, Address("Main St"))
        self.assertIsNotNone(final.stats.total_s)   # timed, as every final()

    def test_a_stream_of_tool_call_deltas_gets_parsed_arguments(self):
        self.fake.script(CHAT_PATH, sse_reply(sse_events("chat-stream-tools.http")))
        with self.client().chat("ai/tiny", HI, stream=True, tools=[get_weather]) as stream:
            final = stream.final()
        [call] = final.choices[0].message.tool_calls
        self.assertEqual(call.function.parsed_arguments, {"city": "Paris"})


@for_both_clients
class TestComingFromOllama(FakeDMRTestCase):
    """ollama-python's keywords of a chat are mapped to what DMR reads, or refused saying our way:
    never sent as body fields an OpenAI server ignores."""

    def test_format_options_and_images_become_what_dmr_reads(self):
        self.fake.script(CHAT_PATH, json_reply(200, completion_of({"content": '{"street": "Main"}'})))
        picture = os.path.join(MEDIA, "tiny.png")
        asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where?"}]
        reply = self.client().chat("ai/smollm2", asked, format=dmr_client.json_schema(Address),
                                   options={"temperature": 0, "num_predict": 64, "top_k": 20, "seed": 7},
                                   images=[picture])
        body = self.last.json
        self.assertEqual(reply.parsed, {"street": "Main"})
        self.assertEqual(body["response_format"], {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": dmr_client.json_schema(Address)}})
        self.assertEqual((body["temperature"], body["max_tokens"], body["top_k"], body["seed"]), (0, 64, 20, 7))
        self.assertEqual(body["messages"], [asked[0], dmr_client.user("Where?", dmr_client.image(picture))])
        for key in ("format", "options", "images", "keep_alive"):
            self.assertNotIn(key, body)
        self.assertEqual(asked[1], {"role": "user", "content": "Where?"})   # the caller's list is left alone
        self.client().chat("ai/smollm2", HI, format="json", options={"temperature": 1}, temperature=0.5)
        self.assertEqual((self.last.json["response_format"], self.last.json["temperature"]),
                         ({"type": "json_object"}, 0.5))   # a keyword of our own wins over options
        self.client().completions("ai/smollm2", "Say", format=Address, options={"num_predict": 3})
        self.assertEqual((self.last.json["json_schema"], self.last.json["max_tokens"]),
                         (dmr_client.json_schema(Address), 3))

    def test_what_has_no_per_request_meaning_is_refused_saying_where_it_goes(self):
        client = self.client()
        table = [(dict(keep_alive="10m"), "client.configure(model, keep_alive=...)"),
                 (dict(options={"num_ctx": 8192}), "client.configure(model, context_size=N) for num_ctx"),
                 (dict(options={"tfs_z": 1}), "options['tfs_z'] is not an option DMR's engines read; they read: "),
                 (dict(options=[("top_k", 1)]), "options must be a dict"),
                 (dict(format="yaml"), "format takes 'json', a JSON Schema or a type"),
                 (dict(format={"type": "object"}, schema=Address), "not both"),
                 (dict(images="cat.png"), "images must be a list")]
        for kwargs, words in table:
            with self.subTest(kwargs=kwargs), self.assertRaises(TypeError) as caught:
                client.chat("ai/smollm2", HI, **kwargs)
            self.assertIn(words, str(caught.exception))
        with self.assertRaises(TypeError):
            client.completions("ai/smollm2", "Say", images=[os.path.join(MEDIA, "tiny.png")])
        with self.assertRaises(ValueError):
            client.chat("ai/smollm2", [{"role": "system", "content": "x"}], images=[os.path.join(MEDIA, "tiny.png")])
        self.assertEqual(self.fake.requests, [])


@for_both_clients
class TestToolLoop(FakeDMRTestCase):
    """run_tools() against a scripted model."""

    def script(self, *turns):
        self.fake.script(CHAT_PATH, *(json_reply(200, completion_of(turn, "tool_calls" if turn.get("tool_calls")
                                                                    else "stop")) for turn in turns))

    def test_every_call_of_a_turn_is_run_and_answered_then_the_model_answers(self):
        self.script({"content": "", "tool_calls": [tool_call(1, "get_weather", '{"city": "Paris"}'),
                                                   tool_call(2, "get_weather", '{"city": "Atlantis"}'),
                                                   tool_call(3, "get_time", "{}"),
                                                   tool_call(4, "get_weather", '{"city": 7}'),
                                                   tool_call(5, "get_weather", "__import__('os')")]},
                    {"content": "Sunny in Paris."})
        steps = []
        ask = [{"role": "user", "content": "Weather?"}]
        reply = self.client().run_tools("ai/smollm2", ask, tools=[get_weather], on_step=steps.append,
                                        temperature=0)
        self.assertEqual(reply.choices[0].message.content, "Sunny in Paris.")
        self.assertEqual(ask, [{"role": "user", "content": "Weather?"}])   # the caller's list is left alone
        contents = ["sunny in Paris", "error: LookupError: no weather under the sea",
                    'error: there is no tool named "get_time"; the tools are: get_weather',
                    "error: invalid arguments for get_weather: $.city: expected string, got 7",
                    "error: invalid arguments for get_weather: $: the arguments are not JSON"]
        tool_messages = reply.messages[2:7]
        self.assertEqual([m["tool_call_id"] for m in tool_messages], ["call_%d" % n for n in range(1, 6)])
        for message, content in zip(tool_messages, contents):
            self.assertTrue(message["content"].startswith(content), message["content"])
        self.assertEqual([m["role"] for m in reply.messages], ["user", "assistant"] + ["tool"] * 5 + ["assistant"])
        steps.sort(key=lambda step: step.id)   # AsyncClient: in the order they ended
        self.assertEqual([(s.round, s.name, s.arguments, s.result) for s in steps[:2]],
                         [(1, "get_weather", {"city": "Paris"}, "sunny in Paris"),
                          (1, "get_weather", {"city": "Atlantis"}, None)])
        self.assertEqual(steps[1].error, "LookupError: no weather under the sea")
        self.assertEqual(steps[3].arguments, '{"city": 7}')   # what the model sent, when it did not fit
        second = self.fake.requests[-1].json
        self.assertEqual(second["messages"], reply.messages[:-1])
        self.assertEqual(second["tools"], [dmr_client.function_tool(get_weather)])
        self.assertEqual(second["temperature"], 0)

    def test_an_on_step_that_raises_stops_the_loop_with_its_error(self):
        self.script({"content": "", "tool_calls": [tool_call(1, "get_weather", '{"city": "Paris"}'),
                                                   tool_call(2, "get_weather", '{"city": "Rome"}')]})
        seen = []

        def on_step(step):
            seen.append(step.arguments["city"])
            raise KeyError("stop here")

        with self.assertRaises(KeyError):
            self.client().run_tools("ai/smollm2", HI, tools=[get_weather], on_step=on_step)
        self.assertEqual(len(self.fake.requests), 1)
        self.assertIn("Paris", seen)

    def test_a_forced_tool_choice_holds_for_the_first_turn_only(self):
        self.script({"content": "", "tool_calls": [tool_call(1, "get_weather", '{"city": "Paris"}')]},
                    {"content": "Sunny."})
        self.client().run_tools("ai/smollm2", HI, tools=[get_weather], tool_choice="required")
        self.assertEqual([request.json["tool_choice"] for request in self.fake.requests], ["required", "auto"])

    def test_more_rounds_than_allowed_raise_with_the_conversation(self):
        self.script({"content": "", "tool_calls": [tool_call(1, "get_weather", '{"city": "Paris"}')]})
        with self.assertRaises(dmr_client.ToolLoopError) as caught:
            self.client().run_tools("ai/smollm2", HI, tools=[get_weather], max_rounds=3)
        self.assertEqual(len(self.fake.requests), 3)
        self.assertIsInstance(caught.exception, dmr_client.DMRError)
        self.assertIn("after 3 rounds", str(caught.exception))
        self.assertEqual([m["role"] for m in caught.exception.messages], ["user"] + ["assistant", "tool"] * 3)

    def test_wrong_uses_are_refused_before_sending(self):
        async def later(city: str) -> str:
            return city

        raw = {"type": "function", "function": {"name": "raw", "parameters": {}}}
        client = self.client()
        table = [(dict(tools=[]), ValueError, "tools is empty"), (dict(tools=[raw]), TypeError, "is a dict"),
                 (dict(tools=[get_weather], max_rounds=0), ValueError, "max_rounds"),
                 (dict(tools=[get_weather], on_step=1), TypeError, "on_step"),
                 (dict(tools=[get_weather], stream=True), TypeError, "does not stream")]
        if self.make_client is Client:
            table.append((dict(tools=[later]), TypeError, "use AsyncClient.run_tools()"))
        for kwargs, error, words in table:
            with self.subTest(kwargs=kwargs), self.assertRaises(error) as caught:
                client.run_tools("ai/smollm2", HI, **kwargs)
            self.assertIn(words, str(caught.exception))
        self.assertEqual(self.fake.requests, [])


# ---------------------------------------------------------------------------
# Clients: Client and AsyncClient
# ---------------------------------------------------------------------------


def python_names(qualname):
    """How Python's argument errors name a function: by ``__qualname__`` from 3.10, by its
    bare name before."""
    return qualname if sys.version_info >= (3, 10) else qualname.rsplit(".", 1)[-1]


class TestPublicNames(unittest.TestCase):
    """Errors about a call's arguments name what the user wrote (Client, AsyncClient, OpenAI,
    chat.completions.create), never a private class, and suggest the keyword meant."""

    def said(self, call):
        with self.assertRaises(TypeError) as caught:
            call()
        return str(caught.exception)

    def test_constructors_name_themselves_and_suggest_the_close_match(self):
        for cls in (Client, dmr_client.AsyncClient, dmr_client.OpenAI, dmr_client.AsyncOpenAI):
            with self.subTest(cls=cls.__name__):
                said = self.said(lambda cls=cls: cls(base_ur="http://127.0.0.1:9"))
                self.assertTrue(said.startswith("%s() got an unexpected keyword argument 'base_ur' (did you mean "
                                                "'base_url'?); it takes " % cls.__name__), said)
                self.assertNotIn("_", said.split(";")[0].replace("base_ur", ""))
        said = self.said(lambda: Client(bogus=1, timout=3))
        self.assertIn("unexpected keyword arguments 'bogus', 'timout' (did you mean 'timeout'?)", said)
        self.assertTrue(self.said(lambda: Client(1, 2, 3)).startswith(python_names("Client.__init__") + "() takes"))

    def test_methods_written_once_carry_each_clients_name(self):
        client, other = Client("http://127.0.0.1:9"), dmr_client.AsyncClient("http://127.0.0.1:9")
        self.addCleanup(client.close)
        self.assertTrue(self.said(lambda: client.pull()).startswith(python_names("Client.pull") + "() missing 1 required"))
        self.assertTrue(self.said(lambda: other.pull()).startswith(python_names("AsyncClient.pull") + "() missing 1 required"))
        self.assertTrue(self.said(lambda: client.chat("m")).startswith(python_names("Client.chat") + "() missing"))
        self.assertTrue(self.said(lambda: client.run_tools("m", HI)).startswith(python_names(
            "Client.run_tools") + "() missing 1 required keyword-only argument: 'tools'"))
        self.assertEqual(Client.chat.__doc__, dmr_client._OpenAICalls.chat.__doc__)
        for name in ("chat", "pull", "models", "run_tools", "running_models", "__init__"):
            self.assertEqual(getattr(Client, name).__qualname__, "Client." + name)
            self.assertEqual(getattr(dmr_client.AsyncClient, name).__qualname__, "AsyncClient." + name)
        openai = dmr_client.OpenAI(base_url="http://127.0.0.1:9/engines/v1")
        self.addCleanup(openai.close)
        self.assertTrue(self.said(lambda: openai.chat.completions.create(messages=HI)).startswith(python_names(
            "chat.completions.create") + "() missing 1 required keyword-only argument: 'model'"))
        self.assertTrue(self.said(lambda: openai.models.retrieve()).startswith(python_names("models.retrieve") + "() missing"))


class UnixSocketTestCase(unittest.TestCase):
    def start(self, name, prefix=""):
        folder = tempfile.mkdtemp(prefix="dmr-")
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, name)
        self.fake = FakeDMR(unix_socket=path, prefix=prefix)
        self.addCleanup(self.fake.close)
        return path

    make_client = Client

    def client(self, **kwargs):
        client = self.make_client(**kwargs)
        self.addCleanup(client.close)
        return client


@for_both_clients
@unittest.skipUnless(hasattr(socket, "AF_UNIX"), "no Unix sockets here")
class TestUnixSocket(UnixSocketTestCase):
    def test_dmr_socket_has_no_prefix(self):
        path = self.start("model-runner.sock")
        client = self.client(unix_socket=path)
        self.assertEqual(client.base_url, "http://localhost/engines/llama.cpp/v1")
        for _ in range(3):
            self.assertEqual(client.chat("ai/smollm2", HI).choices[0].message.content, PHRASE)
            self.assertEqual(text_of(client.chat("ai/smollm2", HI, stream=True)), PHRASE)
        self.assertEqual(self.fake.connections, 1)
        self.assertEqual(self.fake.requests[-1].path, "/engines/llama.cpp/v1/chat/completions")
        self.assertIn("unix_socket", repr(client))

    def test_docker_socket_uses_the_experimental_prefix(self):
        path = self.start("docker.sock", prefix="/exp/vDD4.40")
        client = self.client(unix_socket=path)
        self.assertEqual(client.base_url, "http://localhost/exp/vDD4.40/engines/llama.cpp/v1")
        self.assertEqual(client.chat("ai/smollm2", HI).choices[0].message.content, PHRASE)
        self.assertEqual(self.fake.requests[-1].path, "/exp/vDD4.40/engines/llama.cpp/v1/chat/completions")
        self.assertEqual(client.version(), "v1.2.6")
        self.assertEqual(self.fake.requests[-1].path, "/exp/vDD4.40/version")
        self.assertTrue(client.ping())

    def test_missing_socket(self):
        client = self.client(unix_socket="/nonexistent/dmr.sock", max_retries=0)
        with self.assertRaises(dmr_client.APIConnectionError) as caught:
            client.chat("ai/smollm2", HI)
        self.assertIn("/nonexistent/dmr.sock", str(caught.exception))
        self.assertFalse(client.ping())


class TestDiscovery(UnixSocketTestCase):
    def setUp(self):
        env = mock.patch.dict(os.environ, {}, clear=True)
        env.start()
        self.addCleanup(env.stop)

    def test_inside_a_container_with_docker_desktop(self):
        with mock.patch("dmr_client._running_in_container", return_value=True), \
                mock.patch("dmr_client._resolves", return_value=True) as resolves:
            with self.assertLogs("dmr_client", logging.DEBUG) as logs:
                client = self.client()
        self.assertEqual(client.base_url, "http://model-runner.docker.internal/engines/llama.cpp/v1")
        resolves.assert_called_with("model-runner.docker.internal")
        self.assertIn("model-runner.docker.internal", "\n".join(logs.output))

    def test_on_the_host(self):
        for in_container, resolves in ((False, True), (True, False)):
            with mock.patch("dmr_client._running_in_container", return_value=in_container), \
                    mock.patch("dmr_client._resolves", return_value=resolves):
                self.assertEqual(self.client().base_url, "http://localhost:12434/engines/llama.cpp/v1")

    def test_configured_url_is_never_second_guessed(self):
        with mock.patch.dict(os.environ, {"MODEL_RUNNER_HOST": "http://127.0.0.1:1"}), \
                mock.patch("dmr_client._running_in_container", return_value=True), \
                mock.patch("dmr_client._resolves", return_value=True):
            self.assertEqual(self.client().base_url, "http://127.0.0.1:1/engines/llama.cpp/v1")

    @unittest.skipUnless(hasattr(socket, "AF_UNIX"), "no Unix sockets here")
    def test_refused_tcp_falls_back_to_docker_desktops_socket(self):
        if port_is_open(12434):
            self.skipTest("something listens on localhost:12434 here")
        path = self.start("docker.sock", prefix="/exp/vDD4.40")
        with mock.patch("dmr_client._running_in_container", return_value=False), \
                mock.patch("dmr_client.DOCKER_SOCKET_PATHS", ("/nonexistent/docker.sock", path)):
            client = self.client()
            client._sleep = self.fail
            with self.assertLogs("dmr_client", logging.DEBUG) as logs:
                reply = client.chat("ai/smollm2", HI)
        self.assertEqual(reply.choices[0].message.content, PHRASE)
        self.assertEqual(client.unix_socket, path)
        self.assertEqual(self.fake.requests[-1].path, "/exp/vDD4.40/engines/llama.cpp/v1/chat/completions")
        self.assertIn("using Docker Desktop's socket " + path, "\n".join(logs.output))

    def test_refused_tcp_without_a_socket_explains(self):
        if port_is_open(12434):
            self.skipTest("something listens on localhost:12434 here")
        with mock.patch("dmr_client._running_in_container", return_value=False), \
                mock.patch("dmr_client.DOCKER_SOCKET_PATHS", ("/nonexistent/docker.sock",)):
            client = self.client(max_retries=0)
            with self.assertRaises(dmr_client.APIConnectionError) as caught:
                client.chat("ai/smollm2", HI)
        self.assertIn("docker desktop enable model-runner --tcp 12434", str(caught.exception))


# ---------------------------------------------------------------------------
# Compatibility: the openai-python shape
# ---------------------------------------------------------------------------


@for_both_clients
class TestOpenAICompat(FakeDMRTestCase):
    """Programs as openai-python's README and Docker's Model Runner docs write them, with only the
    import changed: ``from dmr_client import OpenAI`` (AsyncOpenAI for the Async variant)."""

    make_client = dmr_client.OpenAI
    async_client = BlockingAsyncOpenAI

    def openai(self, **kwargs):
        kwargs.setdefault("base_url", self.fake.url + "/engines/v1")
        kwargs.setdefault("api_key", "docker")
        client = self.make_client(**kwargs)
        self.addCleanup(client.close)
        return client

    def test_chat_as_docker_docs_show_it(self):
        client = self.openai()
        completion = client.chat.completions.create(model="ai/smollm2", messages=HI, temperature=0.7)
        self.assertEqual(completion.choices[0].message.content, PHRASE)
        self.assertIsNone(completion.choices[0].message.tool_calls)
        self.assertEqual(completion.usage.total_tokens, 36)
        self.assertEqual(completion.model_dump()["choices"][0]["message"]["refusal"], None)
        self.assertEqual((self.last.path, self.last.headers.get("Authorization")),
                         ("/engines/v1/chat/completions", "Bearer docker"))

    def test_parse_as_openai_python_writes_it(self):
        self.fake.script("/engines/v1/chat/completions", json_reply(200, completion_of({"content": '{"street": "Rue"}'})),
                         json_reply(200, completion_of({"content": None, "tool_calls": [
                             tool_call(1, "get_weather", '{"city": "Paris"}')]}, "tool_calls")),
                         json_reply(200, completion_of({"content": '{"street": "Rue"}'})))
        client = self.openai()
        completion = client.chat.completions.parse(model="ai/smollm2", messages=HI, response_format=Address)
        message = completion.choices[0].message
        self.assertIsInstance(completion, dmr_client.ParsedChatCompletion)
        self.assertEqual((message.parsed, message.refusal), (Address("Rue"), None))
        self.assertEqual(self.last.json["response_format"]["type"], "json_schema")
        completion = client.chat.completions.parse(model="ai/smollm2", messages=HI, tools=[get_weather])
        self.assertEqual(completion.choices[0].message.tool_calls[0].function.parsed_arguments, {"city": "Paris"})
        completion = client.beta.chat.completions.parse(model="ai/smollm2", messages=HI, response_format=Address)
        self.assertEqual(completion.choices[0].message.parsed, Address("Rue"))   # the path of openai-python 1.x
        with self.assertRaises(TypeError):   # create() takes no type, as in openai-python
            client.chat.completions.create(model="ai/smollm2", messages=HI, response_format=Address)

    def test_streaming_with_delta_content(self):
        stream = self.openai().chat.completions.create(model="ai/smollm2", messages=HI, stream=True,
                                                       stream_options={"include_usage": True})
        text = ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content is not None:
                text += chunk.choices[0].delta.content
        self.assertEqual(text, PHRASE)
        self.assertEqual(self.last.json["stream_options"], {"include_usage": True})
        with self.openai().chat.completions.create(model="ai/smollm2", messages=HI, stream=True) as again:
            self.assertEqual((again.response.status_code, again.response.headers["Content-Type"]),
                             (200, "text/event-stream"))
            self.assertEqual(again.text(), PHRASE)
        dropped = self.openai().chat.completions.create(model="ai/smollm2", messages=HI, stream=True)
        next(iter(dropped))
        dropped.close()   # await stream.close() on AsyncOpenAI, as openai-python has it

    def test_raw_response_and_with_options(self):
        client = self.openai(default_query={"trace": "1"})
        raw = client.chat.completions.with_raw_response.create(model="ai/smollm2", messages=HI)
        self.assertEqual(raw.status_code, 200)
        self.assertIn("json", raw.headers["Content-Type"])
        self.assertEqual(raw.parse().choices[0].message.content, PHRASE)
        self.assertTrue(self.last.path.endswith("?trace=1"))
        quick = client.with_options(max_retries=0, timeout=20, default_headers={"X-Team": "a"})
        quick.chat.completions.create(model="ai/smollm2", messages=HI, extra_headers={"X-Call": "b"})
        self.assertEqual((self.last.headers.get("X-Team"), self.last.headers.get("X-Call")), ("a", "b"))
        self.assertEqual((quick.max_retries, quick.timeout, client.max_retries), (0, 20, 2))
        self.assertNotIn("timeout", self.last.json)
        self.assertEqual(self.fake.connections, 1)   # the copy shares the connections
        raw_stream = client.chat.completions.with_raw_response.create(model="ai/smollm2", messages=HI, stream=True)
        self.assertEqual((raw_stream.status_code, text_of(raw_stream.parse())), (200, PHRASE))

    def test_embeddings_come_as_floats_asked_as_base64(self):
        client = self.openai()
        reply = client.embeddings.create(model="ai/mxbai-embed-large", input=["ab", "c"])
        self.assertEqual(self.last.json["encoding_format"], "base64")
        self.assertEqual([item.embedding for item in reply.data], [[2.0, 0.0], [1.0, 1.0]])
        plain = client.embeddings.create(model="ai/mxbai-embed-large", input="ab", encoding_format="float")
        self.assertEqual(plain.data[0].embedding, [2.0, 0.0])
        raw = client.embeddings.create(model="ai/mxbai-embed-large", input="ab", encoding_format="base64")
        self.assertIsInstance(raw.data[0].embedding, str)   # asked for: given as it came

    def test_models_and_errors_by_openai_python_names(self):
        client = self.openai()
        page = client.models.list()
        self.assertEqual([model.id for model in page], [model.id for model in page.data])
        self.assertIn("docker.io/ai/smollm2:latest", [model.id for model in page])
        self.assertEqual(client.models.retrieve("ai/smollm2").id, "docker.io/ai/smollm2:latest")
        try:
            client.chat.completions.create(model="ai/missing", messages=HI)
        except dmr_client.APIStatusError as error:
            self.assertIsInstance(error, dmr_client.NotFoundError)
            self.assertEqual((error.status_code, error.response.status_code), (404, 404))
            self.assertIn("model not found", error.message)
        else:
            self.fail("no error")
        with self.assertRaises(dmr_client.APIError):
            client.models.retrieve("ai/missing")

    def test_responses_as_openai_python_has_them(self):
        client = self.openai()
        response = client.responses.create(model="ai/smollm2", input="Say hello.")
        self.assertEqual(response.output_text, PHRASE)
        self.assertEqual(client.responses.retrieve(response.id).id, response.id)
        self.assertEqual(client.responses.input_items.list(response.id).data[0]["role"], "user")
        stream = client.responses.create(model="ai/smollm2", input="Say hello.", stream=True)
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        self.assertEqual("".join(deltas), PHRASE)
        self.assertTrue(client.responses.delete(response.id).deleted)

    def test_images_generate(self):
        self.fake.models.add("ai/stable-diffusion")
        reply = self.openai().images.generate(model="ai/stable-diffusion", prompt="a red fox", size="256x256")
        self.assertEqual(base64.b64decode(reply.data[0].b64_json), TINY_PNG)

    def test_what_openai_python_takes_that_we_cannot(self):
        for kwargs, words in (({"http_client": object()}, r"OpenAI\(http_client=\) is not supported"),
                              ({"websocket_base_url": "ws://x"}, "no Realtime"),
                              ({"timeout": object()}, "no httpx.Timeout")):
            with self.subTest(kwargs=list(kwargs)), self.assertRaisesRegex(TypeError, words):
                self.make_client(**kwargs)

    def test_where_it_goes_and_which_key(self):
        clean = {name: value for name, value in os.environ.items()
                 if not name.startswith(("DOCKER_MODEL_RUNNER", "MODEL_RUNNER", "OPENAI_"))}
        with mock.patch.dict(os.environ, clean, clear=True):
            client = self.make_client()
            self.addCleanup(client.close)
            self.assertTrue(client.base_url.startswith(("http://localhost:12434/", "http://model-runner.")))
            self.assertEqual(client.api_key, dmr_client.DEFAULT_API_KEY)
        openai_env = dict(clean, OPENAI_BASE_URL=self.fake.url + "/v1", OPENAI_API_KEY="sk-openai")
        with mock.patch.dict(os.environ, openai_env, clear=True):
            client = self.make_client()
            self.addCleanup(client.close)
            self.assertEqual((client.base_url, client.api_key), (self.fake.url + "/v1", "sk-openai"))
        dmr_first = dict(openai_env, DOCKER_MODEL_RUNNER_API_BASE=self.fake.url + "/engines/llama.cpp")
        with mock.patch.dict(os.environ, dmr_first, clear=True):
            client = self.make_client()
            self.addCleanup(client.close)   # DMR's variable wins, and the OpenAI key stays with OpenAI's URL
            self.assertEqual((client.base_url, client.api_key),
                             (self.fake.url + "/engines/llama.cpp/v1", dmr_client.DEFAULT_API_KEY))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

MODULE = os.path.join(HERE, "dmr_client.py")
#: The command line as the tests run it: `python -m dmr_client`, compiled once for all of them into a
#: temporary bytecode cache (run as a script, the 5,000-line module would be compiled at every run).
CLI = [sys.executable, "-S", "-m", "dmr_client"]   # -S: no site-packages (nothing there is needed), faster start
_CLI_CACHE = tempfile.mkdtemp(prefix="dmr-cli-pyc-")
atexit.register(shutil.rmtree, _CLI_CACHE, True)


class TestCommandLineParams(unittest.TestCase):
    """chat's -p KEY=VALUE, parsed as the command line parses it (no process, no I/O)."""

    def params(self, *params):
        import argparse

        argv = ["chat", "-m", "ai/x", "--temperature", "0.3"] + [word for p in params for word in ("-p", p)] + ["Hi"]
        return dmr_client._cli_params(dmr_client._cli_parser(argparse).parse_args(argv))

    def test_table(self):
        for param, key, value in (("top_k=40", "top_k", 40), ('stop=["\\n"]', "stop", ["\n"]), ("user=me", "user", "me"),
                                  ("seed=-1", "seed", -1), ("x=a=b", "x", "a=b"), ("x=", "x", ""),
                                  ("x={oops", "x", "{oops"), ("x=null", "x", None), ("temperature=1", "temperature", 1)):
            with self.subTest(param=param):
                params = self.params(param)
                self.assertEqual(params[key], value)
                self.assertEqual({k: v for k, v in params.items() if k != key},
                                 {k: v for k, v in {"temperature": 0.3, "max_tokens": None, "think": None}.items()
                                  if k != key})

    def test_a_param_without_a_key_or_an_equals_sign_is_refused(self):
        for param in ("=5", "=", "oops", ""):
            with self.subTest(param=param):
                with self.assertRaises(ValueError) as caught:
                    self.params("top_k=40", param)
                self.assertIn("-p takes KEY=VALUE", str(caught.exception))
                self.assertIn(repr(param), str(caught.exception))


class TestCommandLineDocs(unittest.TestCase):
    """The README and --help say what the command line does, to the letter (no process)."""

    def setUp(self):
        import argparse

        self.parser = dmr_client._cli_parser(argparse)
        self.commands = [action for action in self.parser._actions
                         if isinstance(action, argparse._SubParsersAction)][0].choices
        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            self.readme = f.read()

    def test_every_command_is_in_the_readme_table(self):
        table = self.readme.split("| command | does |", 1)[1].split("\n\n", 1)[0]
        listed = [name for row in re.findall(r"^\| ([^|]+)\|", table, re.M)   # a row may name several
                  for name in re.findall(r"`(\w+)", row)]
        self.assertEqual(sorted(listed), sorted(self.commands))

    def test_every_option_has_help(self):
        self.assertEqual([(name, action.option_strings) for name, command in self.commands.items()
                          for action in command._actions if action.option_strings and not action.help], [])

    def test_the_spinner_says_what_the_readme_says(self):
        self.assertIn("`%s 12s`" % dmr_client._Spinner.WORDS, self.readme)

    def test_the_first_screen_says_what_the_tests_cost(self):
        first = re.search(r"^```sh\n(.*?)^```", self.readme, re.M | re.S).group(1)
        self.assertIn("python3 dmr_client.py chat -m", first)
        self.assertRegex(first, r"about \d+ s; the slow and real-server tiers\n# show as skipped[^\n]*\n"
                                r"python3 -m unittest")


class TestBenchRules(unittest.TestCase):
    """bench's arguments and table, as the command line makes them (no process, no I/O)."""

    def plan(self, *argv):
        import argparse

        return dmr_client._bench_plan(dmr_client._cli_parser(argparse).parse_args(["bench"] + list(argv)))

    def test_plans(self):
        prompt = dmr_client.BENCH_PROMPT
        for argv, expected in (
                (["-m", "ai/x"], dict(model="ai/x", levels=[1, 2, 4, 8], duration_s=30.0, requests=None)),
                (["ai/x"], dict(model="ai/x", levels=[1, 2, 4, 8], duration_s=30.0, requests=None)),
                (["-m", "ai/x", "ai/x"], dict(model="ai/x")),
                (["-m", "ai/x", "--requests", "5"], dict(duration_s=None, requests=5)),
                (["-m", "ai/x", "--requests", "5", "--duration", "2.5"], dict(duration_s=2.5, requests=5)),
                (["-m", "ai/x", "--duration", "10"], dict(duration_s=10.0, requests=None)),
                (["-m", "ai/x", "--concurrency", "4, 1,16"], dict(levels=[4, 1, 16])),
                (["-m", "ai/x", "--concurrency", "3"], dict(levels=[3])),
                (["-m", "ai/x"], dict(prompt=prompt, max_tokens=None)),
                (["-m", "ai/x", "--prompt", "Hi", "--max-tokens", "64"], dict(prompt="Hi", max_tokens=64))):
            with self.subTest(argv=argv):
                plan = self.plan(*argv)
                self.assertEqual({key: plan[key] for key in expected}, expected)
        self.assertEqual(prompt, "Write a comprehensive 100 word summary on whales and their impact on society.")

    def test_bad_plans_are_refused(self):
        for argv, said in ((["-m", "ai/x", "--concurrency", "1,0"], "--concurrency takes whole numbers >= 1"),
                           (["-m", "ai/x", "--concurrency", "1,,2"], "(got '1,,2')"),
                           (["-m", "ai/x", "--concurrency", "two"], "e.g. 1,2,4"),
                           (["-m", "ai/x", "--concurrency", "-1"], "--concurrency"),
                           (["-m", "ai/x", "--duration", "0"], "--duration takes seconds > 0 (got 0.0)"),
                           (["-m", "ai/x", "--duration", "nan"], "--duration takes seconds > 0"),
                           (["-m", "ai/x", "--duration", "-3"], "--duration"),
                           (["-m", "ai/x", "--requests", "0"], "--requests takes a whole number >= 1 (got 0)"),
                           (["-m", "ai/x", "--max-tokens", "0"], "--max-tokens takes a whole number >= 1"),
                           ([], "bench needs a model"), (["-m", "ai/x", "ai/y"], "not both")):
            with self.subTest(argv=argv):
                with self.assertRaises(ValueError) as caught:
                    self.plan(*argv)
                self.assertIn(said, str(caught.exception))

    def test_the_first_text_of_a_chunk(self):
        for chunk, has in (({"choices": [{"delta": {"role": "assistant", "content": None}}]}, False),
                           ({"choices": [{"delta": {"content": ""}}]}, False),
                           ({"choices": [], "usage": {"completion_tokens": 3}}, False), ({}, False),
                           ({"choices": [{"delta": None}]}, False), ({"choices": ["x"]}, False),
                           ({"choices": [{"delta": {"content": "Hi"}}]}, True),
                           ({"choices": [{"delta": {"reasoning_content": "Hmm"}}]}, True),
                           ({"choices": [{"delta": {}}, {"delta": {"tool_calls": [{"index": 0}]}}]}, True)):
            with self.subTest(chunk=chunk):
                self.assertIs(dmr_client._has_text(chunk), has)

    def level(self, concurrency, tokens_per_s, stopped=False, source="server", requests=3):
        return dmr_client.AttrDict(concurrency=concurrency, requests=requests, failed=1, completion_tokens=120,
                                   tokens_per_s=tokens_per_s, requests_per_s=0.5, ttft_p50_s=0.0812,
                                   ttft_p95_s=None if tokens_per_s is None else 0.25, stream_tokens_per_s=40.04,
                                   source=source, stopped=stopped)

    def test_the_table(self):
        header = ("CONCURRENCY", "REQUESTS", "FAILED", "TOKENS", "TOKENS/S", "REL", "REQUESTS/S", "TTFT P50",
                  "TTFT P95", "STREAM TOKENS/S")
        rows = dmr_client._bench_rows([self.level(2, 50.0), self.level(1, 40.0), self.level(4, 100.0, stopped=True)])
        self.assertEqual(rows, [header,
                                ("2", "3", "1", "120", "50.0", "1.25x", "0.50", "0.081 s", "0.250 s", "40.0"),
                                ("1", "3", "1", "120", "40.0", "1.00x", "0.50", "0.081 s", "0.250 s", "40.0"),
                                ("4*", "3", "1", "120", "100.0", "2.50x", "0.50", "0.081 s", "0.250 s", "40.0")])
        # Without concurrency 1, relative to the first level; unknown figures are dashes.
        rows = dmr_client._bench_rows([self.level(2, 50.0), self.level(8, None, requests=0)])
        self.assertEqual(rows[1][5], "1.00x")
        self.assertEqual(rows[2], ("8", "0", "1", "120", "-", "-", "0.50", "0.081 s", "-", "40.0"))
        self.assertEqual(dmr_client._bench_rows([]), [header])

    def test_the_notes_under_the_table(self):
        notes = dmr_client._bench_notes([self.level(1, 40.0), self.level(4, 100.0, stopped=True)])
        self.assertEqual(notes[:2], ["best: concurrency 4, 100.0 tokens/s",
                                     "*: stopped by Ctrl-C; the requests that finished before it"])
        self.assertTrue(notes[2].endswith("from llama.cpp's own timings"), notes[2])
        for sources, said in ((("client", "client"), "from this client's clock"),
                              (("server", "client"), "llama.cpp's timings where it sent them, else this client's "
                                                     "clock")):
            notes = dmr_client._bench_notes([self.level(1, 40.0, source=sources[0]),
                                             self.level(2, 40.0, source=sources[1])])
            self.assertEqual(len(notes), 2)
            self.assertTrue(notes[1].endswith(said), notes[1])
        self.assertEqual(len(dmr_client._bench_notes([self.level(1, None, requests=0)])), 1)   # no best


@SLOW_TIER
class CLITestCase(FakeDMRTestCase):
    """The command line as a user runs it: a subprocess against the fake DMR."""

    def env(self, **extra):
        env = {key: value for key, value in os.environ.items()
               if not key.lower().endswith("_proxy") and not key.startswith(("DOCKER_MODEL_RUNNER", "MODEL_RUNNER"))}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(DOCKER_MODEL_RUNNER_API_BASE=self.fake.url, PYTHONUNBUFFERED="1", PYTHONPATH=HERE,
                   PYTHONPYCACHEPREFIX=_CLI_CACHE)
        env.update(extra)
        return env

    def run_cli(self, *args, input=None, env=None, timeout=30):
        # Nothing piped unless the test pipes it: never the test runner's own stdin.
        stdin = subprocess.DEVNULL if input is None else None
        return subprocess.run(CLI + list(args), input=input, stdin=stdin, capture_output=True,
                              text=True, env=env or self.env(), timeout=timeout)


class TestCLI(CLITestCase):
    PATH = "/engines/llama.cpp/v1/chat/completions"

    def contexts(self, text):
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)
        os.makedirs(os.path.join(home, "model"))
        with open(os.path.join(home, "model", "contexts.json"), "w") as file:
            file.write(text)
        return home

    def test_contexts_listed_used_and_said_by_status_and_ping(self):
        home = self.contexts(json.dumps({"version": 1, "current": "lab", "contexts": {
            "lab": {"host": self.fake.url, "tls": {"enabled": False}, "description": "the fake"},
            "secure": {"host": "https://gpu-box:12444", "tls": {"enabled": True, "skipVerify": True}}}}))
        env = self.env(DOCKER_CONFIG=home)
        listed = self.run_cli("context", "ls", env=env)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual([line.split()[0] for line in listed.stdout.splitlines()], ["NAME", "default", "lab", "secure"])
        self.assertTrue(listed.stdout.splitlines()[2].endswith("*"), listed.stdout)
        self.assertIn("skip-verify", listed.stdout)
        rows = json.loads(self.run_cli("context", "ls", "--json", env=env).stdout)
        self.assertEqual([(row["name"], row["current"]) for row in rows],
                         [("default", False), ("lab", True), ("secure", False)])
        env.pop("DOCKER_MODEL_RUNNER_API_BASE")
        ping = self.run_cli("ping", env=env)   # the active context, as `docker model` would use it
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertIn("(context lab (%s); TLS: off)" % os.path.join(home, "model", "contexts.json"), ping.stdout)
        status = self.run_cli("--context", "lab", "status", env=env)
        self.assertIn("context lab", status.stdout.splitlines()[1])
        unknown = self.run_cli("ping", "--context", "nope", env=env)
        self.assertEqual(unknown.returncode, 2)
        self.assertIn("no model context 'nope'", unknown.stderr)
        self.assertIn("known: default, lab, secure", unknown.stderr)

    def test_insecure_warns_once_and_a_broken_contexts_file_is_one_warning(self):
        home = self.contexts("{not json")
        ping = self.run_cli("ping", "--insecure", env=self.env(DOCKER_CONFIG=home))
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertEqual(ping.stderr.count("\n"), 1, ping.stderr)
        self.assertIn("--insecure: the server's TLS certificate is not checked", ping.stderr)
        env = self.env(DOCKER_CONFIG=home)
        env.pop("DOCKER_MODEL_RUNNER_API_BASE")
        env["MODEL_RUNNER_HOST"] = self.fake.url
        self.assertEqual(self.run_cli("ping", env=env).stderr, "")   # MODEL_RUNNER_HOST: the file is not read
        env.pop("MODEL_RUNNER_HOST")
        broken = self.run_cli("ping", "--timeout", "1", env=env)
        self.assertEqual(broken.stderr.count(os.path.join(home, "model", "contexts.json") + " is not JSON"), 1,
                         broken.stderr)
        listed = self.run_cli("context", "ls", env=env)
        self.assertEqual(listed.returncode, 2)
        self.assertIn("is not JSON", listed.stderr)
        with open(os.path.join(home, "model", "contexts.json")) as file:
            self.assertEqual(file.read(), "{not json")

    def test_chat_with_pictures(self):
        jpeg, gif = os.path.join(MEDIA, "tiny.jpg"), os.path.join(MEDIA, "tiny.gif")
        result = self.run_cli("chat", "-m", "ai/smollm2", "--image", jpeg, "--image", gif, "What is this?")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, PHRASE + "\n", ""))
        self.assertEqual(self.last.json["messages"], [dmr_client.user("What is this?", dmr_client.image(jpeg),
                                                                      dmr_client.image(gif))])

    def test_chat_with_something_that_is_not_a_picture(self):
        requests = len(self.fake.requests)
        for path, said in ((os.path.join(MEDIA, "tiny.wav"), "looks like a WAV sound; --image takes PNG, JPEG, GIF "
                                                             "or WebP pictures"),
                           (os.path.join(MEDIA, "make.py"), "looks like text"),
                           (os.path.join(MEDIA, "nope.png"), "--image %s: no such file" % os.path.join(MEDIA, "nope.png")),
                           (MEDIA, "--image %s: " % MEDIA)):
            with self.subTest(path=path):
                result = self.run_cli("chat", "-m", "ai/smollm2", "--image", path, "Hi")
                self.assertEqual(result.returncode, 2)
                self.assertIn(said, result.stderr)
                self.assertEqual(result.stderr.count("\n"), 1, result.stderr)   # one line, no traceback
                self.assertEqual(result.stdout, "")
        self.assertEqual(len(self.fake.requests), requests)   # nothing sent

    def test_a_text_only_model_refusing_a_picture(self):
        self.fake.script(self.PATH, json_reply(500, TestMediaMessages.NO_VISION))
        result = self.run_cli("chat", "-m", "ai/smollm2", "--image", os.path.join(MEDIA, "tiny.png"), "Hi")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("no vision support", result.stderr)
        self.assertEqual(len(self.fake.requests), 1)

    def test_chat_with_a_schema_prints_the_checked_json(self):
        schema_file = os.path.join(self.temp_folder(), "address.json")
        with open(schema_file, "w") as f:
            json.dump(dmr_client.json_schema(Address), f)
        self.fake.script(self.PATH, json_reply(200, completion_of({"content": '{"street":"Main St","zip":null}'})),
                         json_reply(200, completion_of({"content": '{"zip": "1"}'})))
        result = self.run_cli("chat", "-m", "ai/smollm2", "--schema", schema_file, "Where?")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(json.loads(result.stdout), {"street": "Main St", "zip": None})
        self.assertEqual(self.last.json["response_format"]["json_schema"]["schema"], dmr_client.json_schema(Address))
        self.assertFalse(self.last.json.get("stream"))
        result = self.run_cli("chat", "-m", "ai/smollm2", "--schema", schema_file, "Where?")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr, "dmr-client: the answer does not fit the schema: $.street: is required "
                                        "but missing (the answer: \"{\\\"zip\\\": \\\"1\\\"}\")\n")
        requests = len(self.fake.requests)
        for bad, said in (("nope.json", "nope.json: no such file"), ("[1]", "not a JSON Schema object"),
                          ("{oops", "is not JSON")):
            path = os.path.join(os.path.dirname(schema_file), "bad.json")
            if bad != "nope.json":
                with open(path, "w") as f:
                    f.write(bad)
            else:
                path = os.path.join(os.path.dirname(schema_file), bad)
            with self.subTest(bad=bad):
                result = self.run_cli("chat", "-m", "ai/smollm2", "--schema", path, "Where?")
                self.assertEqual(result.returncode, 2)
                self.assertIn(said, result.stderr)
                self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertEqual(len(self.fake.requests), requests)   # nothing sent

    def test_what_a_newcomer_got_wrong_is_one_clear_line(self):
        folder = self.temp_folder()
        typo = os.path.join(folder, "typo.json")
        with open(typo, "w") as f:
            json.dump({"type": "object", "properties": {"name": {"type": "strin"}}}, f)
        requests = len(self.fake.requests)
        for argv, said in ((("-p", "stream=false", "Hi"), "dmr-client: -p stream: the answer streams unless --no-stream\n"),
                           (("-p", "model=x", "Hi"), "dmr-client: -p model: the model is -m MODEL\n"),
                           (("",), "dmr-client: PROMPT is empty: say something, or pipe a prompt in\n"),
                           (("--schema", typo, "Hi"), "dmr-client: --schema %s: unknown type \"strin\" at "
                                                      "$.properties.name.type" % typo)):
            with self.subTest(argv=argv):
                result = self.run_cli("chat", "-m", "ai/smollm2", *argv)
                self.assertEqual((result.returncode, result.stdout), (2, ""))
                self.assertTrue(result.stderr.startswith(said), result.stderr)
                self.assertEqual(result.stderr.count("\n"), 1)
        self.assertEqual(len(self.fake.requests), requests)   # nothing sent

    def test_schema_json_prints_the_raw_response_even_when_it_does_not_fit(self):
        schema_file = os.path.join(self.temp_folder(), "address.json")
        with open(schema_file, "w") as f:
            json.dump(dmr_client.json_schema(Address), f)
        cut = completion_of({"content": '{"street": "Ma'}, "length")
        self.fake.script(self.PATH, json_reply(200, cut))
        result = self.run_cli("chat", "-m", "ai/smollm2", "--schema", schema_file, "--json", "Where?")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(json.loads(result.stdout)["choices"], cut["choices"])
        self.assertIn("filled the model's context (3 tokens generated)", result.stderr)
        self.assertEqual(self.last.json["response_format"]["json_schema"]["schema"], dmr_client.json_schema(Address))

    def temp_folder(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        return folder

    def test_chat_prints_the_answer(self):
        result = self.run_cli("chat", "-m", "ai/smollm2", "Hello there")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, PHRASE + "\n", ""))
        self.assertEqual(self.last.json["messages"], [{"role": "user", "content": "Hello there"}])
        self.assertTrue(self.last.json["stream"])

    def test_tokens_arrive_before_the_server_finishes(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=3))
        process = subprocess.Popen(CLI + ["chat", "-m", "ai/smollm2", "Hi"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=self.env())
        self.addCleanup(process.kill)
        seen = b""
        deadline = time.monotonic() + 20
        while b"Hello from" not in seen and time.monotonic() < deadline:
            seen += os.read(process.stdout.fileno(), 1024)
        self.assertEqual(seen, b"Hello from")
        self.assertFalse(gate.is_set())
        self.assertIsNone(process.poll())
        gate.set()
        rest, _ = process.communicate(timeout=20)
        self.assertEqual((seen + rest).decode(), PHRASE + "\n")
        self.assertEqual(process.returncode, 0)

    def test_prompt_from_stdin(self):
        result = self.run_cli("chat", "-m", "ai/smollm2", "--system", "Be brief.", input="What is DMR?\n")
        self.assertEqual((result.returncode, result.stdout), (0, PHRASE + "\n"))
        self.assertEqual(self.last.json["messages"], [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "What is DMR?"}])
        result = self.run_cli("chat", "-m", "ai/smollm2", "-", input="from a dash\n")
        self.assertEqual(self.last.json["messages"][-1]["content"], "from a dash")

    def test_parameters(self):
        self.run_cli("chat", "-m", "ai/smollm2", "--temperature", "0.3", "--max-tokens", "5", "-p", "top_k=40",
                     "-p", 'stop=["\\n"]', "-p", "user=me", "--no-stream", "Hi")
        body = self.last.json
        self.assertEqual((body["temperature"], body["max_tokens"], body["top_k"], body["stop"], body["user"]),
                         (0.3, 5, 40, ["\n"], "me"))
        self.assertNotIn("stream", body)

    def test_json_output_parses(self):
        result = self.run_cli("chat", "-m", "ai/smollm2", "--json", "Hi")
        chunks = [json.loads(line, object_pairs_hook=AttrDict) for line in result.stdout.splitlines()]
        self.assertEqual(len(chunks), 10)
        self.assertEqual(text_of(chunks), PHRASE)
        result = self.run_cli("chat", "-m", "ai/smollm2", "--json", "--no-stream", "Hi")
        self.assertEqual(json.loads(result.stdout)["choices"][0]["message"]["content"], PHRASE)

    def test_image_writes_the_files(self):
        self.fake.models.add("ai/stable-diffusion")
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        one = self.run_cli("image", "-m", "ai/stable-diffusion", "a fox", "-o", os.path.join(folder, "fox.png"))
        self.assertEqual((one.returncode, one.stdout, one.stderr), (0, os.path.join(folder, "fox.png") + "\n", ""))
        two = self.run_cli("image", "-m", "ai/stable-diffusion", "a fox", "-n", "2", "-o", os.path.join(folder, "f.png"))
        self.assertEqual(two.stdout.split(), [os.path.join(folder, "f-1.png"), os.path.join(folder, "f-2.png")])
        with open(os.path.join(folder, "f-2.png"), "rb") as f:
            self.assertEqual(f.read(), TINY_PNG)

    def test_exit_codes_and_one_line_errors(self):
        refused = self.run_cli("chat", "-m", "ai/smollm2", "Hi", env=self.env(
            DOCKER_MODEL_RUNNER_API_BASE="http://127.0.0.1:%d" % free_port()))
        self.assertEqual(refused.returncode, 1)
        self.assertIn("connection refused", refused.stderr)
        missing = self.run_cli("chat", "-m", "ai/missing", "Hi")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("model not found", missing.stderr)
        self.assertIn("dmr-client pull ai/missing", missing.stderr)
        self.assertEqual(len(missing.stderr.strip().splitlines()), 1)
        self.assertNotIn("Traceback", missing.stderr)
        self.fake.script(self.PATH, text_reply(503, "backend installation failed: disk full"))
        plain = self.run_cli("chat", "-m", "ai/smollm2", "Hi")
        self.assertEqual(plain.returncode, 1)
        self.assertIn("backend installation failed: disk full", plain.stderr)
        self.assertEqual(self.run_cli("chat", "Hi").returncode, 2)                      # no -m
        self.assertEqual(self.run_cli("chat", "-m", "x", "-p", "oops", "Hi").returncode, 2)
        deep = self.run_cli("chat", "-m", "x", "-p", "stop=" + "[" * 40000 + "]" * 40000, "Hi")   # 3.13 parses 5,000
        self.assertEqual((deep.returncode, deep.stderr), (2, "dmr-client: -p stop: the JSON value is nested "
                                                             "too deeply to send\n"))
        sent = len(self.fake.requests)
        for param in ("=5", "="):
            no_key = self.run_cli("chat", "-m", "ai/smollm2", "-p", param, "Hi")
            self.assertEqual((no_key.returncode, no_key.stdout), (2, ""))
            self.assertIn("-p takes KEY=VALUE", no_key.stderr)
        self.assertEqual(len(self.fake.requests), sent)   # a usage error sends nothing
        self.assertEqual(self.run_cli("--base-url", "ftp://x", "ping").returncode, 2)
        self.assertEqual(self.run_cli("nonsense").returncode, 2)

    def test_debug_shows_the_traceback(self):
        result = self.run_cli("--debug", "chat", "-m", "ai/missing", "Hi")
        self.assertEqual(result.returncode, 1)
        self.assertIn("Traceback", result.stderr)
        self.assertIn("dmr_client: POST", result.stderr)

    def test_mid_stream_error(self):
        events = sse_events("chat-stream.http")[:3] + [b'data: {"error":{"message":"out of memory"}}\n\n']
        self.fake.script(self.PATH, sse_reply(events, end="cut"))
        result = self.run_cli("chat", "-m", "ai/smollm2", "Hi")
        self.assertEqual((result.returncode, result.stdout), (1, "Hello from\n"))   # its line ended (issue 13)
        self.assertEqual(result.stderr, "dmr-client: error in the middle of the stream: out of memory\n")

    def test_ctrl_c_exits_130(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=2))
        process = subprocess.Popen(CLI + ["chat", "-m", "ai/smollm2", "Hi"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=self.env())
        self.addCleanup(process.kill)
        self.assertEqual(os.read(process.stdout.fileno(), 100), b"Hello")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
        self.assertEqual(process.returncode, 130)
        self.assertNotIn(b"Traceback", err)

    def test_export_import_tag_push_in_a_pipe(self):
        self.fake.export_size = 3 << 20
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        tar = os.path.join(directory, "smollm2.tar")
        result = self.run_cli("export", "ai/smollm2", tar)
        size = os.path.getsize(tar)
        self.assertEqual((result.returncode, result.stdout), (0, "ai/smollm2: %s written to %s\n"
                                                              % (dmr_client._size(size), tar)))
        self.assertNotIn("\r", result.stderr)
        self.assertIn("\nai/smollm2  %s  " % dmr_client._size(size), result.stderr)   # plain lines, bytes counted
        result = self.run_cli("import", tar, "--tag", "myorg/smollm2:v2")
        model_id = model_tar(3 << 20)[1]
        self.assertEqual((result.returncode, result.stdout), (0, "%s: loaded %s as myorg/smollm2:v2\n" % (tar, model_id)))
        self.assertIn("smollm2.tar  100%", result.stderr)
        self.assertEqual(result.stderr.count("\n"), len(set(result.stderr.splitlines())))
        result = self.run_cli("tag", "ai/smollm2", "myorg/smollm2:v3")
        self.assertEqual((result.returncode, result.stdout), (0, "Model ai/smollm2 tagged myorg/smollm2:v3\n"))
        result = self.run_cli("push", "ai/smollm2")
        self.assertEqual((result.returncode, result.stdout), (0, "Model pushed successfully\n"))
        self.assertIn("ai/smollm2   33%", result.stderr)
        result = self.run_cli("import", os.path.join(directory, "nope.tar"))
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)

    def test_ctrl_c_during_an_export_leaves_no_file(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def half_then_wait(handler, request):
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: "
                                b"chunked\r\n\r\n" + chunked_body(bytes(300000), end=b""))
            handler.wfile.flush()
            gate.wait(20)
            handler.close_connection = True
        self.fake.script("/models/ai/smollm2/export", half_then_wait)
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        process = subprocess.Popen(CLI + ["export", "ai/smollm2", os.path.join(directory, "out.tar")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        self.addCleanup(process.communicate)
        self.addCleanup(process.kill)
        self.assertTrue(os.read(process.stderr.fileno(), 200).startswith(b"ai/smollm2  "))   # it is writing
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
        self.assertEqual((process.returncode, out), (130, b""))
        self.assertNotIn(b"Traceback", err)
        self.assertEqual(os.listdir(directory), [])   # nor a temporary file

    def test_ping_names_dockers_gateway(self):
        self.fake.script("/", json_reply(200, {"status": "healthy", "version": "0.1.0", "models": ["smollm2"]}))
        result = self.run_cli("ping")
        self.assertEqual((result.returncode, result.stdout), (0, "Docker's model gateway (`docker model gateway` "
                         "0.1.0, not Docker Model Runner) is answering at %s/engines/llama.cpp/v1 (no context "
                         "($DOCKER_MODEL_RUNNER_API_BASE); TLS: off): chat and models work; pull, rm, status and "
                         "configure need DMR\n" % self.fake.url))

    def test_no_spinner_or_escape_codes_in_a_pipe(self):
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), before=1.5))
        result = self.run_cli("chat", "-m", "ai/smollm2", "Hi")
        self.assertEqual((result.stdout, result.stderr), (PHRASE + "\n", ""))

    def test_models_table_and_json(self):
        result = self.run_cli("models")
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["MODEL", "PARAMETERS", "QUANTIZATION", "SIZE"])
        self.assertIn("ai/smollm2:latest", lines[2])
        self.assertIn("Q4_K_M", lines[2])
        self.assertEqual(json.loads(self.run_cli("models", "--json").stdout)[1]["config"]["size"], "256.35 MiB")

    def test_pull_in_a_pipe(self):
        self.fake.script("/models/create", pull_reply(["progress", "progress", "warning", "progress", "success"]))
        result = self.run_cli("pull", "ai/smollm2")
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout, "Model pulled successfully\n")
        progress = [line for line in result.stderr.splitlines() if "%" in line]
        self.assertEqual(len(progress), 3)
        self.assertIn(" 33%", progress[0])
        self.assertIn("100%", progress[-1])
        self.assertIn('warning: disk is "almost" full', result.stderr)
        self.assertNotIn("\r", result.stderr)

    def test_pull_failure(self):
        self.fake.script("/models/create", pull_reply(["progress", "error"]))
        result = self.run_cli("pull", "ai/smollm2")
        self.assertEqual(result.returncode, 1)
        self.assertIn("registry said <no>", result.stderr)

    def test_rm_status_ping(self):
        result = self.run_cli("rm", "ai/smollm2")
        self.assertEqual((result.returncode, result.stdout.splitlines()[0]), (0, "Untagged: docker.io/ai/smollm2:latest"))
        conflict = self.run_cli("rm", SHARED_ID)
        self.assertEqual(conflict.returncode, 1)
        self.assertIn("use --force", conflict.stderr)
        self.assertEqual(self.run_cli("rm", "--force", SHARED_ID).returncode, 0)
        status = self.run_cli("status")
        self.assertIn("llama.cpp  Running", status.stdout)
        self.assertIn("ai/smollm2 (llama.cpp, completion)", status.stdout)
        self.assertEqual(self.run_cli("ping").returncode, 0)
        self.assertEqual(self.run_cli("ping", env=self.env(
            DOCKER_MODEL_RUNNER_API_BASE="http://127.0.0.1:%d" % free_port())).returncode, 1)

    def test_a_prompt_and_piped_input_are_both_sent(self):
        result = self.run_cli("chat", "-m", "ai/smollm2", "--no-stream", "Review:", input="+ added a line\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.last.json["messages"][-1]["content"], "Review:\n\n+ added a line")
        self.run_cli("chat", "-m", "ai/smollm2", "--no-stream", "Just this")
        self.assertEqual(self.last.json["messages"][-1]["content"], "Just this")

    def test_global_options_before_or_after_the_command(self):
        elsewhere = "http://127.0.0.1:%d" % free_port()
        env = self.env(DOCKER_MODEL_RUNNER_API_BASE=elsewhere)
        after = self.run_cli("chat", "--base-url", self.fake.url, "-m", "ai/smollm2", "--timeout", "5",
                             "--no-stream", "Hi", env=env)
        self.assertEqual((after.returncode, after.stdout), (0, PHRASE + "\n"), after.stderr)
        before = self.run_cli("--base-url", self.fake.url, "models", env=env)
        self.assertEqual(before.returncode, 0, before.stderr)
        self.assertEqual(self.run_cli("models", env=env).returncode, 1)   # the environment's URL, where nothing is

    def test_a_closed_pipe_ends_quietly_with_141(self):
        events = [b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "word %d\n" % i},
                                                       "finish_reason": None}]}).encode() + b"\n\n"
                  for i in range(20000)]
        self.fake.script(self.PATH, sse_reply(events + [b"data: [DONE]\n\n"]))
        process = subprocess.Popen(CLI + ["chat", "-m", "ai/smollm2", "Hi"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        self.assertEqual(process.stdout.readline(), b"word 0\n")
        process.stdout.close()   # `| head -1`
        try:
            self.assertEqual(process.wait(30), 141)
            self.assertEqual(process.stderr.read(), b"")
        finally:
            process.stderr.close()

    def assertOneLine(self, result, code, words):
        stderr = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
        self.assertEqual(result.returncode, code, stderr)
        self.assertIn(words, stderr)
        self.assertEqual(stderr.count("\n"), 1, stderr)   # one line: no traceback, no "Exception ignored"

    def test_stdout_that_cannot_be_written_is_one_line_and_exit_74(self):
        long_answer = sse_reply([b"data: " + json.dumps({"choices": [{"index": 0, "delta": {
            "content": "word %d\n" % i}, "finish_reason": None}]}).encode() + b"\n\n" for i in range(3000)]
                                + [b"data: [DONE]\n\n"])   # fails mid-answer, not at the last flush
        for command in (["models"], ["chat", "-m", "ai/smollm2", "--no-stream", "Hi"], ["status"], ["--help"],
                        ["chat", "-m", "ai/smollm2", "Hi"], ["chat", "-m", "ai/smollm2", "--json", "Hi"]):
            if command[-1] == "Hi" and "--no-stream" not in command:
                self.fake.script(self.PATH, long_answer)
            with self.subTest(command=command, stdout="closed"):   # `>&-`: Python's sys.stdout is None
                closed = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh"] + CLI + command, stdin=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=self.env(), timeout=30)
                self.assertOneLine(closed, 74, "stdout is closed")
            if not os.path.exists("/dev/full"):
                continue
            with self.subTest(command=command, stdout="/dev/full"), open("/dev/full", "w") as full:
                result = subprocess.run(CLI + command, stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE,
                                        env=self.env(PYTHONUNBUFFERED=""), timeout=30)
                self.assertOneLine(result, 74, "cannot write to stdout: No space left on device")
        self.assertIn("74 stdout cannot be written", " ".join(self.run_cli("--help").stdout.split()))   # documented

    def test_stdin_or_a_prompt_that_is_not_utf8_is_refused_before_sending(self):
        sent = len(self.fake.requests)
        for locale in ("C.UTF-8", "C"):   # strict stdin, and the C locale's surrogateescape
            for args in (["chat", "-m", "ai/smollm2"], ["chat", "-m", "ai/smollm2", "-"],
                         ["chat", "-m", "ai/smollm2", "Review:"]):
                with self.subTest(locale=locale, args=args):
                    result = subprocess.run(CLI + args, input="Grüße, café\n".encode("latin-1"), capture_output=True,
                                            env=self.env(LC_ALL=locale, PYTHONUTF8=""), timeout=30)
                    self.assertOneLine(result, 2, "stdin is not UTF-8 (byte 0xfc at offset 2): convert it first, "
                                                  "e.g. `iconv -f latin1 -t utf-8")
                    self.assertEqual(result.stdout, b"")
            with self.subTest(locale=locale, prompt="argv"):   # a prompt typed at a Latin-1 terminal
                for option in ([], ["--system", "caf\xe9"]):
                    result = subprocess.run([os.fsencode(word) for word in CLI + ["chat", "-m", "ai/smollm2"]] + [
                        os.fsencode(word) for word in option] + [b"caf\xe9"], stdin=subprocess.DEVNULL,
                        capture_output=True, env=self.env(LC_ALL=locale), timeout=30)
                    self.assertOneLine(result, 2, "is not UTF-8 (byte 0xe9 at character 3): set the terminal to UTF-8")
        self.assertEqual(len(self.fake.requests), sent)   # nothing sent
        result = subprocess.run(CLI + ["chat", "-m", "ai/smollm2", "--no-stream"], input="Grüße\r\n".encode(),
                                capture_output=True, env=self.env(LC_ALL="C"), timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.last.json["messages"], [{"role": "user", "content": "Grüße"}])   # UTF-8 whatever the locale

    def test_a_url_that_is_almost_right_is_a_usage_error_naming_the_fix(self):
        port = self.fake.url.rsplit(":", 1)[1]
        started = time.monotonic()
        result = self.run_cli("--base-url", "http//127.0.0.1:" + port, "models")
        self.assertOneLine(result, 2, "did you mean http://127.0.0.1:%s?" % port)
        self.assertLess(time.monotonic() - started, 10)   # no retries

    def test_models_on_a_server_that_is_not_dmr(self):
        listing = {"object": "list", "data": [LLAMA_SERVER_MODEL, {"id": "other", "object": "model"}]}
        self.fake.script("/models", json_reply(200, listing))   # llama.cpp answers /models with the OpenAI list
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(200, listing))
        result = self.run_cli("models")
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(result.stdout, "MODEL    PARAMETERS  QUANTIZATION   SIZE       CONTEXT\n"
                                        "ai/tiny  361.82 M    Q4_K - Medium  256.3 MiB  8,192\n"
                                        "other\n")
        self.assertEqual(json.loads(self.run_cli("models", "--json").stdout), listing["data"])
        plain = {"object": "list", "data": [{"id": "ai/tiny", "object": "model"}]}   # a gateway tells names only
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(200, plain))
        self.assertEqual(self.run_cli("models").stdout, "MODEL\nai/tiny\n")

    def test_a_gateway_url_without_v1_gets_the_url_that_works(self):
        self.fake.script("/engines/llama.cpp/v1/chat/completions", text_reply(404, "404 page not found"))
        result = self.run_cli("--base-url", self.fake.url, "chat", "-m", "ai/smollm2", "--no-stream", "Hi")
        self.assertIn("use %s/v1 as the base URL" % self.fake.url, result.stderr)

    def test_ping_says_what_answers(self):
        self.assertIn("Docker Model Runner is answering", self.run_cli("ping").stdout)
        def page(handler, request):
            write_response(handler, 200, b"<html><title>llama.cpp</title></html>", "text/html")
        self.fake.script("/", page)   # llama.cpp's web UI at the root, its OpenAI API under /v1
        other = self.run_cli("ping", "--debug")
        self.assertEqual(other.returncode, 0)
        self.assertIn("an OpenAI-compatible server (not Docker Model Runner)", other.stdout)
        self.assertIn("GET %s/ -> 200" % self.fake.url, other.stderr)
        self.fake.script("/engines/llama.cpp/v1/models", page)   # a web server that is neither
        neither = self.run_cli("ping")
        self.assertEqual((neither.returncode, neither.stdout), (1, ""))
        self.assertIn("neither DMR nor an OpenAI-compatible server answers", neither.stderr)
        forbidden = {"error": {"message": "Forbidden: this key may not list models", "type": "permission_error",
                               "code": 403}}
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(403, forbidden))   # OpenAI's error shape
        refused = self.run_cli("ping", "--api-key", "sk-wrong")
        self.assertEqual((refused.returncode, refused.stdout), (1, ""))
        self.assertIn("an OpenAI-compatible server (not Docker Model Runner) is answering", refused.stderr)
        self.assertIn("refuses this client's API key", refused.stderr)
        self.assertIn("Forbidden: this key may not list models", refused.stderr)
        self.assertNotIn("sk-wrong", refused.stderr)

    def test_ping_through_a_gateway_says_what_is_wrong(self):
        self.fake.script("/", json_reply(200, "LiteLLM: RUNNING"))   # LiteLLM's proxy at its root
        wanted = {"error": {"message": "Authentication Error, No api key passed in.", "type": "auth_error",
                            "code": "401"}}
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(401, wanted))
        no_key = self.run_cli("ping")
        self.assertEqual((no_key.returncode, no_key.stdout), (1, ""))
        self.assertIn("LiteLLM's proxy (a gateway, not Docker Model Runner) is answering", no_key.stderr)
        self.assertIn("refuses this client's API key", no_key.stderr)
        self.assertIn("pass --api-key or set DOCKER_MODEL_RUNNER_API_KEY", no_key.stderr)
        self.assertNotIn("Authorization", self.fake.requests[-1].headers)   # the dummy key is not sent
        unchecked = {"error": {"message": "No connected db.", "type": "no_db_connection", "code": "400"}}
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(400, unchecked))
        wrong_key = self.run_cli("ping", "--api-key", "sk-not-the-master-key")
        self.assertEqual((wrong_key.returncode, wrong_key.stdout), (1, ""))
        self.assertIn("refuses this client's API key", wrong_key.stderr)
        self.assertIn("takes only its master key", wrong_key.stderr)
        self.assertNotIn("sk-not-the-master-key", wrong_key.stderr)
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(404, {"detail": "Not Found"}))
        wrong_root = self.run_cli("ping", "--api-key", "sk-1")
        self.assertEqual(wrong_root.returncode, 1)
        self.assertIn("is answering, but not at %s/engines/llama.cpp/v1" % self.fake.url, wrong_root.stderr)
        self.assertIn("use %s/v1 as the base URL" % self.fake.url, wrong_root.stderr)
        self.assertEqual(self.fake.requests[-1].headers["Authorization"], "Bearer sk-1")
        self.fake.script("/engines/llama.cpp/v1/models", json_reply(200, {"object": "list", "data": []}))
        fine = self.run_cli("ping", "--api-key", "sk-1")
        self.assertEqual((fine.returncode, fine.stderr), (0, ""))
        self.assertIn("LiteLLM's proxy (a gateway, not Docker Model Runner) is answering", fine.stdout)

    def test_dmr_commands_on_a_gateway_print_nothing_untrue(self):
        self.fake.script("/engines/status", json_reply(404, {"detail": "Not Found"}))
        self.fake.script("/models/create", json_reply(405, {"detail": "Method Not Allowed"}))
        for command in (["status"], ["pull", "ai/smollm2"]):
            with self.subTest(command=command):
                result = self.run_cli(*command)
                self.assertEqual((result.returncode, result.stdout), (1, ""))
                self.assertIn("does not serve Docker Model Runner's own API", result.stderr)

    def test_an_html_error_page_is_one_line(self):
        page = (b"<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center>"
                b"<h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n")
        self.fake.script(self.PATH, lambda h, r: write_response(h, 502, page, "text/html"))
        result = self.run_cli("--timeout", "5", "chat", "-m", "ai/smollm2", "--no-stream", "Hi")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn("502 Bad Gateway", result.stderr)

    def test_running_models_commands(self):
        self.fake.runners.clear()
        configured = self.run_cli("configure", "ai/smollm2", "--context-size", "8192", "--keep-alive", "10m",
                                  "--runtime-flag=--threads", "--runtime-flag=4")
        self.assertEqual(configured.returncode, 0, configured.stderr)
        self.assertEqual(self.fake.requests[-1].json, {"model": "ai/smollm2", "context-size": 8192,
                                                       "keep_alive": "10m", "runtime-flags": ["--threads", "4"]})
        again = self.run_cli("configure", "ai/smollm2", "--context-size", "4096")
        self.assertEqual(again.returncode, 1)
        self.assertEqual(len(again.stderr.splitlines()), 1)
        self.assertIn("use --reload", again.stderr)
        self.assertEqual(self.run_cli("configure", "ai/smollm2", "--context-size", "4096", "--reload").returncode, 0)
        shown = self.run_cli("configure", "--show")
        self.assertEqual(shown.stdout, 'ai/smollm2 (llama.cpp): context-size 4096\n')
        self.assertEqual(self.run_cli("configure", "ai/smollm2", "--keep-alive", "soon").returncode, 2)
        self.fake.runners["ai/mxbai-embed-large"] = 1
        ps = self.run_cli("ps")
        self.assertIn("loading", ps.stdout)
        self.assertRegex(ps.stdout, r"ai/smollm2\s+llama.cpp\s+completion\s+idle")
        loaded = self.run_cli("load", "ai/mxbai-embed-large")
        self.assertEqual(loaded.returncode, 0, loaded.stderr)
        self.assertIn("ai/mxbai-embed-large is loaded", loaded.stdout)
        self.assertEqual(self.run_cli("df").stdout, "models          2.7 GB\ndefault engine  104.9 MB\n")
        metrics = self.run_cli("metrics")
        self.assertIn('llamacpp:prompt_tokens_total{backend="llama.cpp",model="ai/smollm2"} 1234\n', metrics.stdout)
        self.assertEqual(self.run_cli("logs", "-f", "--no-engines").stdout,
                         'time=1 level=INFO msg="Listening"\ntime=2 level=INFO msg="done"\n')
        self.assertEqual(self.run_cli("logs").stdout.count("\n"), 3)
        self.assertEqual([json.loads(line)["id"] for line in self.run_cli("requests", "-f").stdout.splitlines()],
                         ["r-1"])

    def test_chat_stats_and_thinking(self):
        stats = self.run_cli("chat", "-m", "ai/smollm2", "--stats", "Hi")
        self.assertEqual(stats.stdout, PHRASE + "\n")
        self.assertRegex(stats.stderr, r"^\[stats\] first token [\d.]+ s, prompt [\d.]+ tokens/s, generation "
                                       r"[\d.]+ tokens/s; 9 tokens generated, 36 context tokens used, in [\d.]+ s "
                                       r"\(measured by the server\)\n$")
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream-reasoning.http")))
        thought = self.run_cli("chat", "-m", "ai/smollm2", "--think", "Hi")
        self.assertEqual(self.fake.requests[-1].json["chat_template_kwargs"], {"enable_thinking": True})
        self.assertNotIn("[thinking]", thought.stdout)   # the answer alone on stdout
        self.assertTrue(thought.stderr.startswith("[thinking] "), thought.stderr)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream-reasoning.http")))
        as_json = self.run_cli("chat", "-m", "ai/smollm2", "--no-think", "--json", "Hi")
        self.assertEqual(self.fake.requests[-1].json["chat_template_kwargs"], {"enable_thinking": False})
        self.assertEqual(as_json.stderr, "")
        self.assertTrue(all(json.loads(line) for line in as_json.stdout.splitlines()))
        # --json is the raw response: the thinking is in it, as the README and --help say
        self.assertTrue(any(chunk["choices"] and chunk["choices"][0]["delta"].get("reasoning_content")
                            for chunk in map(json.loads, as_json.stdout.splitlines())))
        self.assertIn("thinking (reasoning_content) included", " ".join(self.run_cli("chat", "--help").stdout.split()))

    def chat_requests(self):
        return [request for request in self.fake.requests if request.path == self.PATH]

    def test_bench_with_a_few_requests_a_level_as_json(self):
        timings = [json.loads(event[len(b"data: "):]) for event in sse_events("chat-stream.http")
                   if b'"timings"' in event][0]["timings"]
        result = self.run_cli("bench", "-m", "ai/smollm2", "--requests", "3", "--concurrency", "1,2", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual({key: report[key] for key in report if key != "results"},
                         {"model": "ai/smollm2", "base_url": self.fake.url + "/engines/llama.cpp/v1",
                          "prompt": dmr_client.BENCH_PROMPT, "max_tokens": None, "duration_s": None,
                          "requests_per_level": 3, "stopped": False})
        self.assertEqual([(level["concurrency"], level["requests"], level["failed"], level["completion_tokens"],
                           level["source"], level["stopped"]) for level in report["results"]],
                         [(1, 3, 0, 27, "server", False), (2, 3, 0, 27, "server", False)])
        for level in report["results"]:
            self.assertAlmostEqual(level["stream_tokens_per_s"], timings["predicted_per_second"], places=3)
            self.assertAlmostEqual(level["prompt_tokens_per_s"], timings["prompt_per_second"], places=3)
            self.assertGreater(level["tokens_per_s"], 0)
            self.assertAlmostEqual(level["tokens_per_s"], 27 / level["elapsed_s"], delta=level["tokens_per_s"] / 100)
            self.assertLessEqual(level["ttft_p50_s"], level["ttft_p95_s"])
            self.assertLess(level["ttft_p95_s"], level["elapsed_s"])
        sent = [request.json for request in self.chat_requests()]
        self.assertEqual(len(sent), 1 + 3 + 3)   # the warm-up, then 3 a level
        self.assertEqual((sent[0].get("stream"), sent[0]["max_tokens"]), (None, 1))
        for body in sent[1:]:
            self.assertEqual(body, {"model": "ai/smollm2", "stream": True, "stream_options": {"include_usage": True},
                                    "messages": [{"role": "user", "content": dmr_client.BENCH_PROMPT}]})
        self.assertEqual(result.stderr.splitlines()[:2],
                         ["ai/smollm2 at %s/engines/llama.cpp/v1: concurrency 1, 2; 3 requests a level" % self.fake.url,
                          "warming up ai/smollm2 (the first answer loads the model)"])
        self.assertRegex(result.stderr.splitlines()[2], r"^concurrency 1: 3 requests \(0 failed\) in [\d.]+ s, "
                                                        r"[\d.]+ tokens/s, first token p50 [\d.]+ s$")
        self.assertEqual(len(result.stderr.splitlines()), 4)

    def test_bench_prints_a_table(self):
        result = self.run_cli("bench", "ai/smollm2", "--requests", "2", "--concurrency", "2,1", "--max-tokens", "9",
                              "--prompt", "Hi")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["CONCURRENCY", "REQUESTS", "FAILED", "TOKENS", "TOKENS/S", "REL",
                                            "REQUESTS/S", "TTFT", "P50", "TTFT", "P95", "STREAM", "TOKENS/S"])
        self.assertEqual([line.split()[:4] for line in lines[1:3]], [["2", "2", "0", "18"], ["1", "2", "0", "18"]])
        self.assertEqual(lines[2].split()[5], "1.00x")
        self.assertTrue(lines[3].startswith("best: concurrency "), lines[3])
        self.assertTrue(lines[4].endswith("from llama.cpp's own timings"), lines[4])
        self.assertEqual(len(lines), 5)
        self.assertEqual({(body["max_tokens"], body["messages"][0]["content"])
                          for body in (request.json for request in self.chat_requests()[1:])}, {(9, "Hi")})

    def test_bench_times_the_first_text_not_the_first_chunk(self):
        def late_text(handler, request):   # llama.cpp's role-only chunk at once, the text 0.3 s later
            gate = threading.Event()
            threading.Timer(0.3, gate.set).start()
            sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=1)(handler, request)
        self.fake.script(self.PATH, self.fake.route, late_text)
        result = self.run_cli("bench", "-m", "ai/smollm2", "--requests", "2", "--concurrency", "1", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        level = json.loads(result.stdout)["results"][0]
        self.assertGreaterEqual(level["ttft_p50_s"], 0.3)
        self.assertGreaterEqual(level["elapsed_s"], 0.6)

    def test_bench_on_a_model_that_is_not_there(self):
        result = self.run_cli("bench", "-m", "ai/nope", "--requests", "1")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertIn("model not found", result.stderr.splitlines()[-1])
        self.assertEqual(len(self.chat_requests()), 1)   # the warm-up said it: no level ran

    def test_bench_arguments_are_checked_before_anything_is_sent(self):
        for argv in (["--requests", "0"], ["--concurrency", "1,x"], ["--duration", "0"]):
            with self.subTest(argv=argv):
                result = self.run_cli("bench", "-m", "ai/smollm2", *argv)
                self.assertEqual((result.returncode, result.stdout), (2, ""))
                self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertEqual(self.fake.requests, [])

    def test_a_level_where_every_request_fails_stops_the_bench(self):
        self.fake.script(self.PATH, self.fake.route, text_reply(400, "invalid request"))   # the warm-up works
        result = self.run_cli("bench", "-m", "ai/smollm2", "--concurrency", "1,2", "--duration", "20", "--json")
        self.assertEqual(result.returncode, 1, result.stderr)
        levels = json.loads(result.stdout)["results"]
        self.assertEqual([(level["concurrency"], level["requests"], level["failed"]) for level in levels], [(1, 0, 1)])
        self.assertEqual(result.stderr.count("a request failed: "), 1, result.stderr)
        self.assertIn("invalid request", result.stderr)
        self.assertEqual(len(self.chat_requests()), 2)   # not 20 s of failures, and no next level

    @unittest.skipIf(sys.platform == "win32", "sends SIGINT")
    def test_bench_stopped_by_ctrl_c_prints_what_was_measured(self):
        for output in ("table", "--json"):
            with self.subTest(output=output):
                before = len(self.chat_requests())
                argv = ["bench", "-m", "ai/smollm2", "--concurrency", "2,4"] + (["--json"] if output == "--json" else [])
                process = subprocess.Popen(CLI + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           env=self.env())
                self.addCleanup(process.kill)
                deadline = time.monotonic() + 20
                while len(self.chat_requests()) < before + 6 and time.monotonic() < deadline:
                    time.sleep(0.01)
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=20)
                self.assertEqual(process.returncode, 130, err)
                self.assertNotIn("Traceback", err)
                if output == "--json":
                    report = json.loads(out)
                    self.assertTrue(report["stopped"])
                    self.assertEqual([(level["concurrency"], level["stopped"]) for level in report["results"]],
                                     [(2, True)])
                    self.assertGreater(report["results"][0]["requests"], 0)
                else:
                    lines = out.splitlines()
                    self.assertEqual(lines[1].split()[0], "2*")
                    self.assertGreater(int(lines[1].split()[1]), 0)
                    self.assertIn("*: stopped by Ctrl-C; the requests that finished before it", lines)

    def test_listing_commands_take_json(self):
        for command, check in (
                ("models", lambda doc: self.assertEqual(doc[1]["config"]["size"], "256.35 MiB")),
                ("ps", lambda doc: self.assertEqual(doc[0]["model_name"], "ai/smollm2")),
                ("df", lambda doc: self.assertIn("models_disk_usage", doc)),
                ("status", lambda doc: self.assertEqual(doc, {
                    "running": True, "endpoint": self.fake.url + "/engines/llama.cpp/v1",
                    "backends": {"llama.cpp": "Running: llama.cpp b9879", "vllm": "Not Installed: no GPU"},
                    "models": [{"backend_name": "llama.cpp", "model_name": "ai/smollm2", "mode": "completion"}]})),
                ("requests", lambda doc: self.assertEqual([record["id"] for record in doc], ["r-1"]))):
            with self.subTest(command=command):
                result = self.run_cli(command, "--json")
                self.assertEqual((result.returncode, result.stderr), (0, ""))
                check(json.loads(result.stdout))
        self.assertEqual(json.loads(self.run_cli("requests").stdout)["id"], "r-1")   # one record a line, as before

    def test_same_program_three_ways(self):
        by_file = subprocess.run([sys.executable, MODULE, "--version"], capture_output=True, text=True,
                                 env=self.env())
        by_module = subprocess.run([sys.executable, "-m", "dmr_client", "--version"], capture_output=True, text=True,
                                   cwd=HERE, env=self.env())
        self.assertEqual(by_file.stdout, by_module.stdout)
        self.assertEqual(by_file.stdout.strip(), "dmr-client " + dmr_client.__version__)
        with open(os.path.join(HERE, "setup.cfg")) as f:
            self.assertIn("dmr-client = dmr_client:main", f.read())


@unittest.skipUnless(hasattr(os, "openpty") and sys.platform != "win32", "needs a pseudo-terminal")
class TestCLIInteractive(CLITestCase):
    """The conversation mode, driven through a pseudo-terminal as a person would."""

    def spawn(self, *args, env=None, stdout=None):
        import fcntl
        import termios

        def own_the_terminal():   # what pty.fork() does, without forking a threaded test process
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        fd, terminal = os.openpty()
        try:
            process = subprocess.Popen(CLI + list(args), stdin=terminal, stdout=terminal if stdout is None else stdout,
                                       stderr=terminal, env=env or self.env(), preexec_fn=own_the_terminal)
        finally:
            os.close(terminal)
        self.addCleanup(self._reap, process, fd)
        self.processes = getattr(self, "processes", {})
        self.processes[process.pid] = process
        return process.pid, fd

    def _reap(self, process, fd):
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(fd)

    def read_until(self, fd, text, timeout=20):
        import select as select_module

        seen = b""
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "never saw %r in %r" % (text, seen))
            if select_module.select([fd], [], [], left)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                seen += data
        return seen.decode("utf-8", "replace")

    def test_pictures_go_with_the_first_message_only(self):
        png = os.path.join(MEDIA, "tiny.png")
        pid, fd = self.spawn("chat", "-m", "ai/smollm2", "--image", png)
        self.assertIn("1 picture will go with your first message", self.read_until(fd, ">>> "))
        os.write(fd, b"what is this?\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        os.write(fd, b"and now?\n")
        self.read_until(fd, ">>> ")
        self.assertEqual(self.last.json["messages"], [dmr_client.user("what is this?", dmr_client.image(png)),
                                                      {"role": "assistant", "content": PHRASE},
                                                      {"role": "user", "content": "and now?"}])

    def test_a_line_that_is_not_utf8_is_not_sent(self):
        """In the C locale input() gives the byte as a lone surrogate: refused, not sent.  (Under a
        UTF-8 locale readline drops the byte itself: what is sent is still text.)"""
        pid, fd = self.spawn("chat", "-m", "ai/smollm2", env=self.env(LC_ALL="C"))
        self.read_until(fd, ">>> ")
        sent = len(self.fake.requests)
        os.write(fd, "café\n".encode("latin-1"))
        said = self.read_until(fd, ">>> ")
        self.assertIn("that line is not UTF-8 (byte 0xe9 at character 3)", said)
        self.assertIn("(not sent)", said)
        self.assertNotIn("Traceback", said)
        self.assertEqual(len(self.fake.requests), sent)
        os.write(fd, "café\n".encode())
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual(self.last.json["messages"], [{"role": "user", "content": "café"}])

    def test_two_turns_then_exit(self):
        pid, fd = self.spawn("chat", "-m", "ai/smollm2", "--system", "Be brief.")
        self.read_until(fd, ">>> ")
        os.write(fd, b"first question\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        os.write(fd, b"second question\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual([m["role"] for m in self.last.json["messages"]],
                         ["system", "user", "assistant", "user"])
        self.assertEqual(self.last.json["messages"][2]["content"], PHRASE)
        os.write(fd, b"/reset\n")
        self.read_until(fd, ">>> ")
        os.write(fd, b"third\n")
        self.read_until(fd, ">>> ")
        self.assertEqual(len(self.last.json["messages"]), 2)
        os.write(fd, b"/exit\n")
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode")
                         else status >> 8, 0)

    def test_help_and_unknown_commands_stay_local(self):
        pid, fd = self.spawn("chat", "-m", "ai/smollm2")
        self.read_until(fd, ">>> ")
        checks = len(self.fake.requests)   # the server and the model, checked at the start
        os.write(fd, b"/help\n")
        self.assertIn("/reset", self.read_until(fd, ">>> "))
        os.write(fd, b"/nonsense\n")
        self.assertIn("unknown command /nonsense (not sent", self.read_until(fd, ">>> "))
        self.assertEqual(len(self.fake.requests), checks)
        os.write(fd, b"//etc is a folder\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual(len(self.fake.requests), checks + 1)
        self.assertEqual(self.last.json["messages"][-1]["content"], "/etc is a folder")
        os.write(fd, b"/exit\n")
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)

    def test_loading_spinner_and_ctrl_c_keeps_the_session(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        self.fake.script(self.PATH, sse_reply(sse_events("chat-stream.http"), before=1.6),
                         sse_reply(sse_events("chat-stream.http"), gate=gate, gate_after=2), self.fake.route)
        pid, fd = self.spawn("chat", "-m", "ai/smollm2", env=self.env(NO_COLOR="1"))
        self.read_until(fd, ">>> ")
        os.write(fd, b"load it\n")
        screen = self.read_until(fd, ">>> ")
        self.assertIn("loading model...", screen)
        self.assertIn(PHRASE, screen)
        self.assertNotIn("\x1b[", screen)   # NO_COLOR: no escape codes
        os.write(fd, b"interrupt me\n")
        self.read_until(fd, "Hello")
        os.kill(pid, signal.SIGINT)
        self.assertIn("(answer stopped)", self.read_until(fd, ">>> "))
        os.write(fd, b"still here?\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        os.write(fd, b"\x04")   # Ctrl-D leaves
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status >> 8, 0)

    def exit_code(self, pid, timeout=20):
        return self.processes[pid].wait(timeout)

    def chats(self):
        return [request for request in self.fake.requests if request.path == self.PATH]

    def test_a_pasted_block_is_one_turn(self):
        env = self.env(TERM="xterm")
        env.pop("NO_COLOR", None)
        pid, fd = self.spawn("chat", "-m", "ai/smollm2", env=env)
        self.assertIn("\x1b[?2004h", self.read_until(fd, ">>> "))   # bracketed paste asked of the terminal
        os.write(fd, b"first line\nsecond line\n\nfourth line\n")   # a terminal without bracketed paste
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual([chat.json["messages"][-1]["content"] for chat in self.chats()],
                         ["first line\nsecond line\n\nfourth line"])
        os.write(fd, b"\x1b[200~pasted\nblock\x1b[201~")   # one with it: sent at Enter, not at each newline
        self.read_until(fd, "block")
        time.sleep(0.3)
        self.assertEqual(len(self.chats()), 1)
        os.write(fd, b"\r")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual(self.last.json["messages"][-1], {"role": "user", "content": "pasted\nblock"})
        os.write(fd, b"typed\n")
        self.read_until(fd, ">>> ")
        self.assertEqual([m["content"] for m in self.last.json["messages"] if m["role"] == "user"],
                         ["first line\nsecond line\n\nfourth line", "pasted\nblock", "typed"])
        os.write(fd, b"/exit\n")
        self.assertEqual(self.exit_code(pid), 0)

    def test_prompts_go_to_the_terminal_and_only_answers_to_a_redirected_stdout(self):
        with tempfile.TemporaryFile() as log:   # `dmr-client chat -m M | tee log`
            pid, fd = self.spawn("chat", "-m", "ai/smollm2", stdout=log)
            self.assertIn("Chatting with ai/smollm2", self.read_until(fd, ">>> "))
            os.write(fd, b"hi\n")
            self.assertNotIn(PHRASE, self.read_until(fd, ">>> "))   # the answer went to stdout, the prompt here
            os.write(fd, b"/help\n")
            self.assertIn("/reset", self.read_until(fd, ">>> "))
            os.write(fd, b"/exit\n")
            self.assertEqual(self.exit_code(pid), 0)
            log.seek(0)
            self.assertEqual(log.read().decode(), PHRASE + "\n")

    def test_the_server_and_the_model_are_checked_before_the_first_message(self):
        nobody = "http://127.0.0.1:%d" % free_port()
        for args, env, line in (
                (["-m", "ai/smollm2"], self.env(DOCKER_MODEL_RUNNER_API_BASE=nobody),
                 "dmr-client: neither DMR nor an OpenAI-compatible server answers at %s/engines/llama.cpp/v1: start "
                 "DMR, or pass --base-url or set DOCKER_MODEL_RUNNER_API_BASE" % nobody),
                (["-m", "ai/absent"], None, "dmr-client: Docker Model Runner at %s/engines/llama.cpp/v1 has no model "
                 "ai/absent: `dmr-client pull ai/absent` fetches it, `dmr-client models` lists what it has"
                 % self.fake.url)):
            with self.subTest(line=line):
                pid, fd = self.spawn("chat", *args, env=env)
                screen = self.read_until(fd, "\n")
                self.assertEqual(self.exit_code(pid), 1)
                self.assertIn(line, screen)
                self.assertEqual(screen.count("\n"), 1, screen)
                self.assertNotIn(">>>", screen)
        self.assertEqual(self.chats(), [])
        self.fake.script("/", text_reply(404, "404 page not found"))   # llama.cpp's server answers any model name
        pid, fd = self.spawn("chat", "-m", "ai/absent")
        screen = self.read_until(fd, ">>> ")
        self.assertIn("(the server at %s/engines/llama.cpp/v1 does not list ai/absent; sending to it anyway" %
                      self.fake.url, screen)
        os.write(fd, b"/exit\n")
        self.assertEqual(self.exit_code(pid), 0)

    def test_errors_in_a_turn_speak_the_command_line(self):
        pid, fd = self.spawn("chat", "-m", "ai/smollm2")
        self.read_until(fd, ">>> ")
        self.fake.models.discard("ai/smollm2")   # removed while the conversation goes on
        os.write(fd, b"still there?\n")
        screen = self.read_until(fd, ">>> ")
        self.assertIn("run `dmr-client pull ai/smollm2`", screen)
        self.assertNotIn("docker model", screen)
        self.fake.models.add("ai/smollm2")
        os.write(fd, b"and now?\n")
        self.assertIn(PHRASE, self.read_until(fd, ">>> "))
        self.assertEqual(self.last.json["messages"], [{"role": "user", "content": "and now?"}])
        os.write(fd, b"/exit\n")
        self.assertEqual(self.exit_code(pid), 0)

    def test_pull_progress_bar_at_a_terminal(self):
        self.fake.script("/models/create", pull_reply(["progress", "progress", "progress", "success"]))
        pid, fd = self.spawn("pull", "ai/smollm2")
        screen = self.read_until(fd, "Model pulled successfully")
        self.assertIn("\r[#####", screen)
        self.assertIn("100%", screen)
        self.assertRegex(screen, r"[KMG]?B/s")
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status >> 8, 0)

    PATH = "/engines/llama.cpp/v1/chat/completions"


# ---------------------------------------------------------------------------
# Command line: chat
# ---------------------------------------------------------------------------


class TestStatsLine(unittest.TestCase):
    """chat --stats: the line it writes on stderr (no process)."""

    def test_table(self):
        import io
        import types

        server = dmr_client.speed_stats({"usage": {"prompt_tokens": 27, "completion_tokens": 9, "total_tokens": 36},
                                         "timings": {"predicted_per_second": 50.0, "prompt_per_second": 200.0}},
                                        elapsed=0.5, first_token=0.25)
        counted = dmr_client.speed_stats({}, elapsed=1.0, first_token=0.5, chunks=8)
        for stats, line in (
                (server, "[stats] first token 0.25 s, prompt 200.0 tokens/s, generation 50.0 tokens/s; 9 tokens "
                         "generated, 36 context tokens used, in 0.50 s (measured by the server)\n"),
                (counted, "[stats] first token 0.50 s, prompt ?, generation 16.0 tokens/s; 8 tokens "
                          "generated, in 1.00 s (measured here)\n")):   # the context's use unknown: not said
            with self.subTest(line=line):
                terminal = types.SimpleNamespace(stderr=io.StringIO())
                dmr_client._cli_stats(terminal, types.SimpleNamespace(stats=True), stats, {})
                self.assertEqual(terminal.stderr.getvalue(), line)


@unittest.skipUnless(hasattr(os, "openpty") and sys.platform != "win32", "needs a pseudo-terminal")
class TestConversationTurns(unittest.TestCase):
    """What the conversation takes as one turn, read from a real terminal (a pty, in-process): the
    lines a paste or type-ahead left waiting go with the line read."""

    def turns(self, *steps):
        """Each step: (bytes the person sends, the turn expected, or EOFError)."""
        import io

        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        stdin = os.fdopen(slave, "r", encoding="utf-8")
        self.addCleanup(stdin.close)
        stderr = io.StringIO()
        turns = dmr_client._Turns(stdin, io.StringIO(), stderr)
        self.assertFalse(turns.editing)   # not the process's stdin: prompts on stderr, lines from stdin
        for sent, expected in steps:
            os.write(master, sent)
            if expected is EOFError:
                self.assertRaises(EOFError, turns.turn)
            else:
                self.assertEqual(turns.turn(), expected)
        return stderr.getvalue()

    def test_table(self):
        for steps, prompts in (
                ([(b"one\n", "one"), (b"two\n", "two")], ">>> >>> "),
                ([(b"one\ntwo\n\nfour\n", "one\ntwo\n\nfour"), (b"next\n", "next")], ">>> ... ... ... >>> "),
                ([(b"/help\n", "/help"), (b"\x04", EOFError)], ">>> >>> "),
                ([(b"a\nb\n\x04", "a\nb"), (b"unread\n", EOFError)], ">>> ... ... "),   # Ctrl-D in a paste: its turn, then out
                ([(b"  indented\n\tcode\n", "  indented\n\tcode")], ">>> ... ")):
            with self.subTest(steps=steps):
                self.assertEqual(self.turns(*steps), prompts)

    def test_without_a_terminal_a_line_is_a_turn(self):
        import io

        turns = dmr_client._Turns(io.StringIO("one\ntwo\n"), io.StringIO(), io.StringIO())
        self.assertEqual([turns.turn(), turns.turn()], ["one", "two"])
        self.assertRaises(EOFError, turns.turn)


# ---------------------------------------------------------------------------
# Adversarial tier
# ---------------------------------------------------------------------------
# A raw-socket server that misbehaves on purpose.


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers with whatever bytes a test scripts.

    answer(n) gives the reply to request number n (counted over all
    connections): bytes to write and keep the connection, a
    ``(bytes, "close")`` pair to write and hang up, or a callable(conn) that
    does as it likes (returning "close" to hang up).  It reads each request
    head and its Content-Length body first (only the head with
    ``read_body=False``: the answer's callable may read the body, or not),
    keeps them in ``requests``, and counts ``connections``; every socket it
    opens it closes, and wait_closed() tells when the client has closed all
    of its own.
    """

    def __init__(self, answer, read_body=True, tls=None):
        self.answer = answer
        self.read_body = read_body
        self.tls = tls   # an ssl.SSLContext: the server speaks HTTPS
        self.requests = []
        self.connections = 0
        self.open = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.listener.settimeout(0.05)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.listener.getsockname()[1])
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.open += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _read_request(self, conn, buffer):
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return None, b""
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(length.group(1)) if length and self.read_body else 0
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _serve(self, conn):
        conn.settimeout(10)
        buffer = b""
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            while not self.stop.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                with self.lock:
                    number = len(self.requests)
                    self.requests.append(request)
                reply = self.answer(number)
                if callable(reply):
                    if reply(conn) == "close":
                        return
                elif isinstance(reply, tuple):
                    conn.sendall(reply[0])
                    return
                else:
                    conn.sendall(reply)
        except OSError:
            return
        finally:
            conn.close()
            with self.lock:
                self.open -= 1

    def wait_closed(self, timeout=5.0):
        """True once every connection the client opened is closed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.open:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(10)


def until_hangup(conn, seconds):
    """A stalling server's wait: until the client hangs up (it timed out), *seconds* at most."""
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def http_reply(body=b"", status="200 OK", headers=(), length=True):
    lines = ["HTTP/1.1 " + status] + ["%s: %s" % pair for pair in headers]
    if length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_http(obj, headers=(), **kwargs):
    return http_reply(json.dumps(obj).encode(), headers=[("Content-Type", "application/json")] + list(headers),
                      **kwargs)


def chunked_body(*pieces, end=b"0\r\n\r\n"):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + end


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
HELLO = b'data: {"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
DONE = b"data: [DONE]\n\n"


def reply_for(number):
    """A chat reply whose text names the request it answers: the proof that no answer is read twice."""
    return json_http({"choices": [{"index": 0, "message": {"role": "assistant", "content": "answer %d" % number},
                                   "finish_reason": "stop"}]})


class AdversarialTestCase(unittest.TestCase):
    """One misbehaving server per test; the client's retry sleeps are recorded, not slept.

    Every test also checks, on the way out, that the client closed every
    socket it opened (server side) and that no ResourceWarning or
    "Exception ignored" came from the library.
    """

    TIMEOUT = 1.0

    def setUp(self):
        warnings_context = warnings.catch_warnings(record=True)
        self.warnings = warnings_context.__enter__()
        warnings.simplefilter("always", ResourceWarning)
        self.addCleanup(warnings_context.__exit__, None, None, None)
        self.unraisable = []
        hook, sys.unraisablehook = sys.unraisablehook, self.unraisable.append
        self.addCleanup(setattr, sys, "unraisablehook", hook)
        self.sleeps = []
        self.server = None
        self.clients = []
        self.addCleanup(self.end_round)

    def serve(self, *answers, read_body=True, tls=None):
        """Answer request n with answers[n] (the last one repeats); reply_for(n) for a None.
        A test may serve several rounds: the one before is checked and closed first."""
        self.end_round()

        def answer(number):
            reply = answers[min(number, len(answers) - 1)]
            return reply_for(number) if reply is None else reply
        self.server = RawServer(answer, read_body, tls)
        return self.server

    make_client = Client

    def client(self, **kwargs):
        kwargs.setdefault("timeout", self.TIMEOUT)
        client = self.make_client(self.server.url, **kwargs)
        client._sleep = self.sleeps.append
        self.clients.append(client)
        return client

    def end_round(self):
        """Close the clients, then check that no socket, warning or ignored exception is left."""
        if self.server is None:
            return
        server, self.server = self.server, None
        try:
            for client in self.clients:
                client.close()
            self.clients = []
            gc.collect()
            self.assertTrue(server.wait_closed(), "the client left %d connections open" % server.open)
            leaks = [w for w in self.warnings if issubclass(w.category, ResourceWarning)]
            self.assertEqual(leaks, [], "unclosed resources: %s" % [str(w.message) for w in leaks])
            self.assertEqual(self.unraisable, [], "exceptions ignored in __del__")
        finally:
            server.close()

    def assertRaisesFast(self, error, call, *args, within=None, **kwargs):
        """call() raises exactly *error* (a subclass is another error), within the timeout."""
        started = time.monotonic()
        with self.assertRaises(error) as caught:
            call(*args, **kwargs)
        elapsed = time.monotonic() - started
        self.assertIs(type(caught.exception), error, caught.exception)
        self.assertLess(elapsed, within or self.TIMEOUT * 2 + 0.5, "took %.2f s" % elapsed)
        return caught.exception

    def assertOwnAnswer(self, client, number):
        """The next call gets the answer to its own request (number *number*), not a stale one."""
        reply = client.chat("m", HI)
        self.assertEqual(reply.choices[0].message.content, "answer %d" % number)


def stream_text(client, **kwargs):
    with client.chat("m", HI, stream=True, **kwargs) as stream:
        return text_of(stream)


@for_both_clients
class TestHostileFraming(AdversarialTestCase):
    def test_bad_chunk_sizes_fail_fast_and_never_reach_the_pool(self):
        for size in (b"-5", b"0x1a", b"+1a", b"1_a", b" 1a", b"1a ", b"ffffffffffffffffff"):
            with self.subTest(size=size):
                self.serve(SSE_HEAD + size + b"\r\n" + HELLO + b"\r\n0\r\n\r\n", None)
                client = self.client()
                error = self.assertRaisesFast(dmr_client.ProtocolError, stream_text, client)
                self.assertIn("chunk size", str(error))
                self.assertOwnAnswer(client, 1)
                self.assertEqual(self.server.connections, 2)

    def test_a_chunk_is_handed_over_before_the_rest_of_its_read_is_decoded(self):
        # The whole answer in one write, so (on loopback) in one read: a good event, then a fault
        # in a later HTTP chunk's size, in a later chunk's event, or in a later event of the same
        # chunk. The good chunk comes out first; the fault is raised with the next one.
        broken = b"data: {not json\n\n"
        for name, body, error in (
                ("chunk size", chunked_body(HELLO, end=b"") + b"zz\r\n" + STOP + b"\r\n0\r\n\r\n",
                 dmr_client.ProtocolError),
                ("later chunk", chunked_body(HELLO, broken, STOP, DONE), dmr_client.InvalidResponseError),
                ("same chunk", chunked_body(HELLO + broken, STOP, DONE), dmr_client.InvalidResponseError)):
            with self.subTest(name):
                self.serve(SSE_HEAD + body, None)
                client = self.client()
                with client.chat("m", HI, stream=True) as stream:
                    self.assertEqual(next(stream).choices[0].delta.content, "Hello")
                    self.assertEqual(stream.chunks_received, 1)
                    with self.assertRaises(error):
                        next(stream)
                self.assertOwnAnswer(client, 1)

    def test_bad_framing_of_a_whole_body(self):
        bodies = {
            "negative chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n",
            "no CRLF after data": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
            "bare LF chunk lines": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\n0\n\n",
            "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            "signed length": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
            "length of 10**30": b"HTTP/1.1 200 OK\r\nContent-Length: 1" + b"0" * 30 + b"\r\n\r\n{}",
            "gzip coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
            "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "fold before any field": b"HTTP/1.1 200 OK\r\n X: a\r\nContent-Length: 2\r\n\r\n{}",
            "NUL in a header": b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
            "head too big": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70000 + b"\r\n\r\n",
            "endless 1xx": b"HTTP/1.1 103 Early Hints\r\n\r\n" * (dmr_client.MAX_INTERIM_RESPONSES + 1),
        }
        for name, raw in bodies.items():
            with self.subTest(name=name):
                self.serve(raw, raw, None)
                client = self.client()
                self.assertRaisesFast(dmr_client.ProtocolError, client.chat, "m", HI)
                self.assertFalse(client.ping())            # documented: never raises
                self.assertOwnAnswer(client, 2)

    def test_interim_responses_are_skipped(self):
        early = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                 b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        self.serve(early + reply_for(0), early + SSE_HEAD + chunked_body(HELLO, STOP, DONE), None)
        client = self.client()
        self.assertEqual(client.chat("m", HI).choices[0].message.content, "answer 0")
        self.assertEqual(stream_text(client), "Hello")
        self.assertOwnAnswer(client, 2)
        self.assertEqual(self.server.connections, 1)

    def test_transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused(self):
        body = json.dumps({"choices": [{"index": 0, "message": {"content": "chunked"}}]}).encode()
        self.serve(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + chunked_body(body), None)
        client = self.client()
        self.assertEqual(client.chat("m", HI).choices[0].message.content, "chunked")
        self.assertOwnAnswer(client, 1)
        self.assertEqual(self.server.connections, 2)

    def test_connection_close_and_extra_bytes_keep_a_connection_out_of_the_pool(self):
        for first in (json_http({"choices": []}, headers=[("Connection", "close")]),
                      json_http({"choices": []}) + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged",
                      b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n" + b'{"choices":[]}' + b"!"):
            with self.subTest(first=first[-30:]):
                self.serve(first, None)
                client = self.client()
                client.chat("m", HI)
                self.assertOwnAnswer(client, 1)
                self.assertEqual(self.server.connections, 2)

    def test_length_framed_stream_cut_after_finish_reason_is_not_complete(self):
        body = HELLO + STOP
        self.serve((b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
                    % (len(body) + 100) + body, "close"), None)
        client = self.client()
        with client.chat("m", HI, stream=True) as stream:
            error = self.assertRaisesFast(dmr_client.APIConnectionError, stream.final)
        self.assertEqual(error.chunks_received, 2)
        self.assertFalse(stream.completed)

    def test_stream_with_nothing_but_a_clean_end_is_not_complete(self):
        self.serve(SSE_HEAD + chunked_body(b": keep-alive\n\n"), None)
        client = self.client()
        error = self.assertRaisesFast(dmr_client.APIConnectionError, stream_text, client)
        self.assertIn("after 0 chunks", str(error))
        self.assertOwnAnswer(client, 1)

    def test_cut_head_and_stalled_head(self):
        def stall(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-")
            until_hangup(conn, self.TIMEOUT + 2)
            return "close"
        self.serve((b"HTTP/1.1 200 OK\r\nContent-", "close"), stall, None)
        client = self.client(max_retries=3)
        url = self.server.url + "/engines/llama.cpp/v1/chat/completions"
        cut = self.assertRaisesFast(dmr_client.ProtocolError, client.chat, "m", HI)
        self.assertEqual(cut.url, url)
        self.assertIn("the response from %s broke HTTP/1.1 framing" % url, str(cut))
        stalled = self.assertRaisesFast(dmr_client.APITimeoutError, client.chat, "m", HI)
        self.assertEqual(stalled.url, url)
        self.assertIn("no response from %s within %s s" % (url, float(self.TIMEOUT)), str(stalled))
        self.assertEqual(len(self.server.requests), 2)   # an answer had begun: never resent
        self.assertOwnAnswer(client, 2)


@for_both_clients
class TestHostileSizes(AdversarialTestCase):
    def test_bodies_in_many_pieces_are_joined_exactly(self):
        reply = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 3000},
                                         "finish_reason": "stop"}]}).encode()
        pieces = [reply[i:i + 1000] for i in range(0, len(reply), 1000)]

        def chunked(conn):   # several HTTP chunks, each in a write of its own
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                time.sleep(0.02)
                conn.sendall(chunked_body(piece, end=b""))
            conn.sendall(b"0\r\n\r\n")

        def dribbled(conn):   # a Content-Length body in several reads
            conn.sendall(http_reply(b"")[:-2].replace(b"Content-Length: 0", b"Content-Length: %d" % len(reply))
                         + b"\r\n")
            for piece in pieces:
                time.sleep(0.02)
                conn.sendall(piece)

        def framing_apart(conn):   # each chunk's size line in a read of its own: a read with no payload yet
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                time.sleep(0.02)
                conn.sendall(b"%x\r\n" % len(piece))
                time.sleep(0.02)
                conn.sendall(piece + b"\r\n")
            time.sleep(0.02)
            conn.sendall(b"0\r\n\r\n")
        self.serve(chunked, dribbled, framing_apart, None)
        client = self.client()
        for _ in range(3):
            self.assertEqual(client.chat("m", HI).choices[0].message.content, "x" * 3000)
        self.assertOwnAnswer(client, 3)
        self.assertEqual(self.server.connections, 1)

    def test_a_body_that_reaches_the_limit_in_one_read_and_goes_on_is_refused(self):
        def exactly_then_more(conn):   # the first read ends exactly at the limit; one byte follows later
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunked_body(b"{" + b" " * 98 + b" ", end=b""))
            time.sleep(0.05)
            conn.sendall(chunked_body(b"}"))
            return "close"
        self.serve(exactly_then_more, None)
        error = self.assertRaisesFast(dmr_client.InvalidResponseError, self.client(max_response_bytes=100).chat,
                                      "m", HI)
        self.assertIn("over 100 bytes", str(error))

    def test_a_json_answer_to_a_stream_is_cut_to_the_error_body_limit(self):
        big = json.dumps({"error": {"message": "x" * (dmr_client.MAX_ERROR_BODY + 10)}}).encode()
        self.serve(http_reply(big, headers=[("Content-Type", "application/json")]), None)
        with self.assertRaises((dmr_client.StreamError, dmr_client.InvalidResponseError)) as caught:
            list(self.client().chat("m", HI, stream=True))
        self.assertEqual(len(caught.exception.body), dmr_client.MAX_ERROR_BODY)   # cut, not refused as too big

    def test_deep_json_and_wrong_shapes_are_invalid_responses(self):
        deep = b"[" * 100000 + b"]" * 100000
        for call, body in ((lambda c: c.chat("m", HI), deep),
                           (lambda c: c.chat("m", HI), b"null"), (lambda c: c.chat("m", HI), b"[]"),
                           (lambda c: c.chat("m", HI), b"42"), (lambda c: c.chat("m", HI), b'{"choices": 5}'),
                           (lambda c: c.chat("m", HI), b'{"choices": [1]}'),
                           (lambda c: c.completions("m", "p"), b'{"id": 1}'),
                           (lambda c: c.embeddings("m", "x"), b'{"data": 5}'),
                           (lambda c: c.embeddings("m", "x"), b'{"data": [5]}'),
                           (lambda c: c.embeddings("m", "x"), b'{"data": [{"index": 0}]}'),
                           (lambda c: c.embeddings("m", "x"), b'{"data": [{"embedding": [1], "index": "a"}]}'),
                           (lambda c: c.models(), b'{"data": "x"}'), (lambda c: c.models(), b'"x"'),
                           (lambda c: c.model("m"), b"[]"), (lambda c: c.local_models(), b'{"data": []}'),
                           (lambda c: c.running_models(), b"{}"), (lambda c: c.engine_status(), b"[]"),
                           (lambda c: c.rerank("m", "q", ["d"]), b'{"results": {}}'),
                           (lambda c: c.delete_model("m"), b"{}"), (lambda c: c.unload(all=True), b"[]"),
                           (lambda c: stream_text(c), SSE_HEAD + chunked_body(b"data: " + deep + b"\n\n")),
                           (lambda c: stream_text(c), SSE_HEAD + chunked_body(b'data: {"choices": 5}\n\n'))):
            with self.subTest(body=body[:40]):
                self.serve(body if body.startswith(b"HTTP/") else http_reply(body), None)
                client = self.client()
                self.assertRaisesFast(dmr_client.InvalidResponseError, call, client)
                self.assertOwnAnswer(client, 1)

    def test_response_size_cap(self):
        declared = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 ** 62)
        growing = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b" " * 1024 + b"\r\n"
        for raw in (declared, growing * 1 + (b"400\r\n" + b" " * 1024 + b"\r\n") * 200):
            with self.subTest(raw=raw[:60]):
                self.serve((raw, "close"), None)
                client = self.client(max_response_bytes=100 * 1024)
                error = self.assertRaisesFast(dmr_client.InvalidResponseError, client.chat, "m", HI)
                self.assertIn("max_response_bytes", str(error))
                self.assertEqual(error.status_code, 200)
                self.assertOwnAnswer(client, 1)

    def test_large_bodies_are_read_whole_and_exactly(self):
        text = "y" * (3 * 1024 * 1024)
        big = json_http({"choices": [{"index": 0, "message": {"content": text}}]})

        def stall(conn):
            conn.sendall(big[:len(big) // 2])
            until_hangup(conn, self.TIMEOUT + 2)
            return "close"
        self.serve(big, big + b"HTTP/1.1 200 OK\r\n", (big[:-10], "close"), stall, None)
        client = self.client()
        self.assertEqual(client.chat("m", HI).choices[0].message.content, text)
        self.assertEqual(client.chat("m", HI).choices[0].message.content, text)   # then bytes past the body
        url = self.server.url + "/engines/llama.cpp/v1/chat/completions"
        cut = self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
        self.assertEqual(cut.url, url)
        self.assertIn("the response from %s was cut" % url, str(cut))
        stalled = self.assertRaisesFast(dmr_client.APITimeoutError, client.chat, "m", HI)
        self.assertEqual(stalled.url, url)
        self.assertIn("the response from %s stalled: nothing for %s s" % (url, float(self.TIMEOUT)), str(stalled))
        self.assertOwnAnswer(client, 4)
        self.assertEqual(self.server.connections, 4)   # reused once; never after extra bytes, a cut or a stall

    def test_limits_are_exact_and_error_bodies_are_cut_not_refused(self):
        body = json.dumps({"choices": [{"index": 0, "message": {"content": "z" * 1000}}]}).encode()
        huge_error = http_reply(b"E" * (dmr_client.MAX_ERROR_BODY + 4096), status="500 Internal Server Error")
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body(body)
                         if chunked else http_reply(body))
                self.serve(reply, reply, (huge_error, "close"), None)
                client = self.client(max_response_bytes=len(body), max_retries=0)
                self.assertEqual(len(client.chat("m", HI).choices[0].message.content), 1000)   # exactly the cap
                client.max_response_bytes = len(body) - 1
                self.assertRaisesFast(dmr_client.InvalidResponseError, client.chat, "m", HI)
                error = self.assertRaisesFast(dmr_client.InternalServerError, client.chat, "m", HI)
                self.assertEqual(error.body, "E" * dmr_client.MAX_ERROR_BODY)   # the first bytes, as sent
                self.assertOwnAnswer(client, 3)

    def test_huge_chunk_size_then_a_cut(self):
        self.serve((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000000000000000\r\n{", "close"), None)
        client = self.client()
        self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
        self.assertOwnAnswer(client, 1)

    def test_pull_line_that_never_ends(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"

        def endless(conn):
            conn.sendall(head)
            piece = b"x" * 65536
            try:
                for _ in range(1024 * 1024 // len(piece) + 8):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                pass
            return "close"
        self.serve(endless, None)
        client = self.client()
        with mock.patch.object(dmr_client, "MAX_EVENT_BYTES", 1024 * 1024):
            self.assertRaisesFast(dmr_client.InvalidResponseError, client.pull, "ai/x", within=10)


@for_both_clients
@SLOW_TIER
class TestHostileTiming(AdversarialTestCase):
    def test_drain_after_done_is_bounded_in_total(self):
        def trickle(conn):
            conn.sendall(SSE_HEAD + chunked_body(HELLO, STOP, DONE, end=b""))
            try:
                for _ in range(100):
                    conn.sendall(chunked_body(b": still here\n\n", end=b""))
                    time.sleep(0.05)
            except OSError:
                pass
            return "close"
        self.serve(trickle, None)
        client = self.client()
        with mock.patch.object(dmr_client, "DRAIN_SECONDS", 0.3):
            started = time.monotonic()
            self.assertEqual(stream_text(client), "Hello")
            self.assertLess(time.monotonic() - started, 1.0)
        self.assertOwnAnswer(client, 1)
        self.assertEqual(self.server.connections, 2)   # the trickling connection was dropped

    def test_the_drain_stops_at_its_byte_budget_and_at_a_close(self):
        def flood(conn):   # [DONE], then more than DRAIN_BYTES of comments at once, then silence
            conn.sendall(SSE_HEAD + chunked_body(HELLO, STOP, DONE, end=b""))
            # After the stream's end is read: bytes in the same network read as [DONE] are not
            # drained (they are in memory already, within one read's bound), only what follows.
            time.sleep(0.2)
            try:
                conn.sendall(chunked_body(*[b": " + b"f" * 1021 + b"\n\n"] * (2 * dmr_client.DRAIN_BYTES // 1024),
                                          end=b""))
            except OSError:
                pass
            until_hangup(conn, 5)
            return "close"

        def close_after_done(conn):   # [DONE], then a close without the chunked terminator
            conn.sendall(SSE_HEAD + chunked_body(HELLO, STOP, DONE, end=b""))
            return "close"
        for answer in (flood, close_after_done):
            with self.subTest(answer=answer.__name__):
                self.serve(answer, None)
                client = self.client(timeout=5)
                with mock.patch.object(dmr_client, "DRAIN_SECONDS", 3.0):
                    started = time.monotonic()
                    self.assertEqual(stream_text(client), "Hello")
                    self.assertLess(time.monotonic() - started, 1.5)   # the budget or the close, not the 3 s
                self.assertOwnAnswer(client, 1)
                self.assertEqual(self.server.connections, 2)

    def test_silence_after_done_ends_the_drain_in_time(self):
        def silent(conn):   # [DONE], then neither the chunked terminator nor a close, until the client hangs up
            conn.sendall(SSE_HEAD + chunked_body(HELLO, STOP, DONE, end=b""))
            conn.settimeout(3)
            try:
                conn.recv(1)
            except OSError:
                pass
            return "close"
        self.serve(silent, None)
        client = self.client(timeout=5)
        with mock.patch.object(dmr_client, "DRAIN_SECONDS", 0.3):
            started = time.monotonic()
            self.assertEqual(stream_text(client), "Hello")
            self.assertLess(time.monotonic() - started, 1.5)   # the drain's bound, not the 5 s read timeout
        self.assertOwnAnswer(client, 1)
        self.assertEqual(self.server.connections, 2)

    def test_drain_restores_the_read_timeout(self):
        def late_end(conn):
            conn.sendall(SSE_HEAD + chunked_body(HELLO, STOP, DONE, end=b""))
            time.sleep(0.1)
            conn.sendall(b"0\r\n\r\n")

        def slow_answer(conn):
            time.sleep(0.45)
            conn.sendall(reply_for(1))
        def stall(conn):
            until_hangup(conn, self.TIMEOUT + 2)
            return "close"
        self.serve(late_end, slow_answer, late_end, stall, None)
        client = self.client(timeout=0.6)   # past the drain's 0.3 s, and past the slow answer
        with mock.patch.object(dmr_client, "DRAIN_SECONDS", 0.3):
            self.assertEqual(stream_text(client), "Hello")
            self.assertEqual(client.chat("m", HI).choices[0].message.content, "answer 1")
            self.assertEqual(self.server.connections, 1)
            self.assertEqual(stream_text(client), "Hello")   # drained with a read of its own, then reused:
            self.assertRaisesFast(dmr_client.APITimeoutError, client.chat, "m", HI)   # never without a timeout
        self.assertEqual(self.server.connections, 1)

    def test_stall_mid_stream_times_out(self):
        def stall(conn):
            conn.sendall(SSE_HEAD + chunked_body(HELLO, end=b""))
            until_hangup(conn, self.TIMEOUT + 2)
            return "close"
        self.serve(stall, None)
        client = self.client()
        error = self.assertRaisesFast(dmr_client.APITimeoutError, stream_text, client)
        self.assertEqual(error.chunks_received, 1)
        self.assertOwnAnswer(client, 1)


@for_both_clients
class TestExactRetries(AdversarialTestCase):
    def test_max_retries_zero_sends_once(self):
        for call in (lambda c: c.delete_model("ai/x"), lambda c: c.chat("m", HI), lambda c: c.unload(all=True)):
            with self.subTest(call=call):
                self.serve((b"", "close"))
                client = self.client(max_retries=0)
                self.assertRaisesFast(dmr_client.APIConnectionError, call, client)
                self.assertEqual(len(self.server.requests), 1)

    def test_state_changing_calls_are_never_sent_twice(self):
        for call in (lambda c: c.delete_model("ai/x"), lambda c: c.pull("ai/x"), lambda c: c.unload(all=True)):
            with self.subTest(call=call):
                self.serve((b"", "close"))
                client = self.client(max_retries=3)
                error = self.assertRaisesFast(dmr_client.APIConnectionError, call, client)
                self.assertIn("not sent again", str(error))
                self.assertEqual(len(self.server.requests), 1)

    def test_inference_without_an_answer_is_sent_again_with_backoff(self):
        self.serve((b"", "close"), None)
        client = self.client(max_retries=1)
        self.assertEqual(client.chat("m", HI).choices[0].message.content, "answer 1")
        self.assertEqual(len(self.sleeps), 1)
        self.assertGreater(self.sleeps[0], 0)

    def test_stale_keep_alive_connection(self):
        # The second request goes out on the kept-alive connection, which the server drops
        # without a word: inference is sent again at once (a retry), a delete never.
        self.serve(None, (b"", "close"), None)
        client = self.client(max_retries=1)
        self.assertOwnAnswer(client, 0)
        self.assertOwnAnswer(client, 2)
        self.assertEqual(self.sleeps, [])
        self.assertEqual((len(self.server.requests), self.server.connections), (3, 2))

        self.serve(None, (b"", "close"), None)
        client = self.client(max_retries=0)
        self.assertOwnAnswer(client, 0)
        self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
        self.assertOwnAnswer(client, 2)

        self.serve(json_http([]), (b"", "close"), None)
        client = self.client(max_retries=2)
        client.delete_model("ai/a")
        self.assertRaisesFast(dmr_client.APIConnectionError, client.delete_model, "ai/b")
        self.assertEqual(len(self.server.requests), 2)

    def test_a_reset_while_the_request_is_sent_is_a_connection_failure(self):
        def answer_then_reset(conn):   # answers, then resets the kept-alive connection mid-request
            conn.sendall(reply_for(0))
            conn.settimeout(5)
            try:
                conn.recv(65536)   # the next request has begun to arrive
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close with RST
            return "close"
        self.serve(answer_then_reset, None)
        client = self.client(max_retries=0)
        self.assertOwnAnswer(client, 0)
        big = [{"role": "user", "content": "x" * (32 * 1024 * 1024)}]   # more than the socket buffers hold
        error = self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", big, within=10)
        url = self.server.url + "/engines/llama.cpp/v1/chat/completions"
        self.assertEqual(error.url, url)
        self.assertIn(url, str(error))
        self.assertOwnAnswer(client, 1)   # on a new connection

    def test_an_answer_that_began_is_never_resent(self):
        def reset_mid_head(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-")
            time.sleep(0.1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close with RST
            return "close"
        for first in ((b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", "close"), reset_mid_head):
            with self.subTest(first=first):
                self.serve(first, None)
                client = self.client(max_retries=3)
                self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
                self.assertEqual(len(self.server.requests), 1)


#: DMR's refusal of an inference body over 10 MiB (plain text, as DMR's own errors are).
TOO_LARGE = http_reply(b"request too large", "400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                                                 ("Connection", "close")])
#: A body DMR refuses: over 10 MiB, more than the socket buffers of both ends hold.
BIG = [{"role": "user", "content": "x" * (11 << 20)}]


def unread(reply, then="reset", wait=0.0):
    """A server that answers *reply* without reading the request's body, then hangs up:
    "reset" closes with the body unread (the kernel sends RST), "fin" shuts its side
    and reads the body to its end (as Go's server drains it) until the client hangs up,
    "stall" neither reads nor closes for *wait* seconds, then reads on, never answering
    again: what follows on that connection is the rest of a body to it."""
    def answer(conn):
        conn.sendall(reply)
        if then == "fin":
            conn.shutdown(socket.SHUT_WR)
            until_hangup(conn, 10)
        elif then == "stall":
            time.sleep(wait)
            until_hangup(conn, 10)
        return "close"
    return answer


@for_both_clients
@SLOW_TIER
class TestEarlyAnswers(AdversarialTestCase):
    """A server that answers before the request was sent whole (a body too large, no key):
    the answer is read and reported as it is, never resent, and the connection closed."""

    TIMEOUT = 0.5   # the stalled reader is waited out once per client

    def refused(self, error, *answers, **kwargs):
        server = self.serve(*answers, read_body=False)
        client = self.client(max_retries=2, **kwargs)
        failure = self.assertRaisesFast(error, client.chat, "m", BIG, within=5)
        self.assertEqual((server.connections, len(server.requests), self.sleeps), (1, 1, []))
        return failure

    def test_dmr_refusing_a_body_over_10_mib_with_a_reset(self):
        failure = self.refused(dmr_client.BadRequestError, unread(TOO_LARGE))
        self.assertEqual(failure.status_code, 400)
        self.assertIn("request too large", str(failure))
        self.assertIn("not sent again", str(failure))
        self.assertIn("the request body was 11.0 MiB", failure.hint)
        self.assertIn("DMR refuses requests over 10 MiB", failure.hint)

    def test_a_413_while_the_server_drains_the_body(self):
        body = json.dumps({"type": "error", "error": {"type": "request_too_large",
                                                      "message": "Request body too large"}}).encode()
        failure = self.refused(dmr_client.APIStatusError, unread(
            http_reply(body, "413 Request Entity Too Large", [("Content-Type", "application/json")]), "fin"))
        self.assertEqual(failure.status_code, 413)
        self.assertIn("Request body too large", str(failure))
        self.assertIn("over 10 MiB", failure.hint)

    def test_an_answer_that_would_be_retried_is_not_resent_when_early(self):
        failure = self.refused(dmr_client.InternalServerError,
                               unread(http_reply(b"overloaded", "503 Service Unavailable")))
        self.assertIn("overloaded", str(failure))
        self.assertIn("answered before the request was sent whole", str(failure))
        self.refused(dmr_client.AuthenticationError, unread(http_reply(b"no key", "401 Unauthorized"), "fin"))

    def test_a_server_that_stops_reading_and_answers(self):
        keeps_open = http_reply(b"request too large", "400 Bad Request")   # no Connection: close
        server = self.serve(unread(keeps_open, "stall", self.TIMEOUT + 0.2), None, read_body=False)
        client = self.client(max_retries=2)
        self.assertRaisesFast(dmr_client.BadRequestError, client.chat, "m", BIG, within=5)
        # Half a body is on that connection: the next request must never follow it there.
        self.assertOwnAnswer(client, 1)
        self.assertEqual((server.connections, self.sleeps), (2, []))

    def test_the_spent_connection_is_never_reused(self):
        server = self.serve(None, unread(http_reply(b"too big", "413 Payload Too Large"), "fin"), None,
                            read_body=False)
        client = self.client(max_retries=2)
        self.assertOwnAnswer(client, 0)
        with self.assertRaises(dmr_client.APIStatusError):
            client.chat("m", BIG)
        self.assertOwnAnswer(client, 2)
        self.assertEqual((server.connections, self.sleeps), (2, []))

    def test_a_reset_without_an_answer_is_still_a_connection_failure(self):
        server = self.serve(lambda conn: "close", read_body=False)
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(max_retries=1).chat, "m", BIG,
                                        within=5)
        self.assertIn("closed before any answer", str(failure))
        self.assertEqual(server.connections, 2)   # no answer came: retried as before


def read_some_then(count, reply):
    """A server that reads *count* bytes of the body, then answers *reply* and hangs up with the
    rest unread (as DMR's load failing in the middle: Go answers, then closes)."""
    def answer(conn):
        got = 0
        while got < count:
            data = conn.recv(65536)
            if not data:
                return "close"
            got += len(data)
        conn.sendall(reply)
        time.sleep(0.05)
        return "close"
    return answer


class TransferTestCase(AdversarialTestCase):
    """A directory of its own for the files a transfer test writes and reads."""

    TIMEOUT = 0.5

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.tar = os.path.join(self.dir, "model.tar")

    def write_tar(self, size):
        with open(self.tar, "wb") as file:
            file.write(model_tar(size)[0])


@for_both_clients
class TestTransfers(TransferTestCase):
    """export_model() and import_model() against servers that misbehave: a tar cut short, an
    error in the middle of an upload."""

    def test_a_cut_export_raises_and_leaves_no_file(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
        half = model_tar(1 << 20)[0][:600000]
        self.serve((head + chunked_body(half, end=b"100000\r\nabc"), "close"))
        out = os.path.join(self.dir, "out.tar")
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client().export_model, "ai/smollm2", out)
        self.assertIn("was cut after 600003 bytes", str(failure))   # the "abc" of the cut chunk too
        self.assertEqual(sorted(os.listdir(self.dir)), [])

    def test_an_error_in_the_middle_of_an_upload_is_its_status(self):
        self.write_tar(32 << 20)
        self.serve(read_some_then(4 << 20, http_reply(b"error while loading model: writing blob: disk full\n",
                                                      "500 Internal Server Error", [("Connection", "close")])),
                   read_body=False)
        sent = []
        failure = self.assertRaisesFast(dmr_client.InternalServerError, self.client(max_retries=2).import_model,
                                        self.tar, progress=lambda done, total: sent.append(done), within=5)
        self.assertEqual(failure.status_code, 500)
        self.assertIn("writing blob: disk full", str(failure))
        self.assertIn("answered before the request was sent whole", str(failure))
        self.assertEqual((self.server.connections, self.sleeps), (1, []))
        self.assertLess(sent[-1], 32 << 20)   # it stopped sending



@for_both_clients
@SLOW_TIER
class TestTransferStalls(TransferTestCase):
    """An upload to a server that stops reading without answering, waited out (the slow tier)."""

    def test_a_server_that_stops_reading_times_out_naming_the_upload(self):
        self.write_tar(64 << 20)
        self.serve(lambda conn: time.sleep(self.TIMEOUT * 4) or "close", read_body=False)
        failure = self.assertRaisesFast(dmr_client.APITimeoutError, self.client(max_retries=2).import_model,
                                        self.tar, within=5)
        self.assertRegex(str(failure), r"the upload to http://127\.0\.0\.1:\d+/models/load stalled: the server "
                                       r"took nothing for 0\.5 s after \d+ of %d bytes" % os.path.getsize(self.tar))
        self.assertEqual((self.server.connections, self.sleeps), (1, []))


TLS_DIR = os.path.join(HERE, "testdata", "tls")
CA = os.path.join(TLS_DIR, "ca.pem")


def tls_server_context(name="server", client_certificate=None):
    """The loopback HTTPS server's side: testdata/tls/<name>.pem, signed by the test CA;
    *client_certificate* ssl.CERT_REQUIRED or CERT_OPTIONAL asks the client for one."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(TLS_DIR, name + ".pem"), os.path.join(TLS_DIR, name + ".key"))
    if client_certificate is not None:
        context.load_verify_locations(CA)
        context.verify_mode = client_certificate
    return context


class PlainHTTPServer(RawServer):
    """A plain-HTTP server that answers whatever first bytes come (a TLS ClientHello too) with 400."""

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.open -= 1


class SilentServer(RawServer):
    """Accepts and never says a word: a TLS handshake with it never finishes."""

    def _serve(self, conn):
        try:
            until_hangup(conn, 5)
        finally:
            conn.close()
            with self.lock:
                self.open -= 1


class TunnelProxy(RawServer):
    """An HTTP proxy that tunnels CONNECT host:port to 127.0.0.1:port, for any host."""

    def __init__(self):
        super().__init__(None, read_body=False)

    def _serve(self, conn):
        import select

        upstream = None
        try:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            with self.lock:
                self.requests.append(head)
            port = int(re.match(rb"CONNECT [^ ]+:(\d+) ", head).group(1))
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            sockets = [conn, upstream]
            while not self.stop.is_set():
                ready, _, _ = select.select(sockets, [], [], 0.05)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is conn else conn).sendall(data)
        except OSError:
            return
        finally:
            if upstream is not None:
                upstream.close()
            conn.close()
            with self.lock:
                self.open -= 1


def reset_without_certificate(conn):
    """A server that asked for a client certificate, got none, and resets the connection
    (rather than sending TLS 1.3's certificate_required alert)."""
    if conn.getpeercert():
        conn.sendall(reply_for(0))
        return None
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return "close"


@for_both_clients
class TestTLS(AdversarialTestCase):
    """https:// over real TLS servers with committed test certificates (testdata/tls, made by
    its make.sh): each fault one line, bounded by connect_timeout, retried only if it can change."""

    def serve_with(self, cls):
        self.end_round()
        self.server = cls(lambda number: None)
        return self.server

    def test_https_with_a_ca_the_system_store_trusts(self):
        server = self.serve(None, None, None, SSE_HEAD + chunked_body(HELLO, STOP, DONE), tls=tls_server_context())
        with mock.patch.dict(os.environ, {"SSL_CERT_FILE": CA}):
            client = self.client()
            for number in range(3):
                self.assertOwnAnswer(client, number)
            self.assertEqual(stream_text(client), "Hello")
        self.assertEqual(server.connections, 1)

    def test_verify_takes_a_ca_file_and_the_context_is_built_once_per_client(self):
        server = self.serve(*[(reply_for(number), "close") for number in range(3)], tls=tls_server_context())
        with mock.patch.object(dmr_client, "_tls_context", wraps=dmr_client._tls_context) as built:
            client = self.client(verify=CA, max_retries=0)
            for number in range(3):   # a new connection each time
                self.assertOwnAnswer(client, number)
        self.assertEqual((built.call_count, server.connections), (1, 3))

    def test_an_unknown_ca_is_refused_once_and_says_what_to_pass(self):
        server = self.serve(None, tls=tls_server_context())
        with mock.patch.dict(os.environ, {"SSL_CERT_FILE": os.path.join(TLS_DIR, "absent.pem")}):   # the system's CAs
            failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(max_retries=2).chat, "m", HI)
        message = str(failure)
        self.assertIn("is signed by a CA this client does not trust", message)
        for option in ("verify=", "--cacert", "MODEL_RUNNER_TLS_CA_CERT"):
            self.assertIn(option, message)
        self.assertNotIn("\n", message)
        self.assertEqual((server.requests, server.connections, self.sleeps), ([], 1, []))   # never retried

    def test_a_certificate_for_another_name_is_refused_once(self):
        server = self.serve(None, tls=tls_server_context("other"))
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(verify=CA).chat, "m", HI)
        self.assertIn("is for another name", str(failure))
        self.assertIn("127.0.0.1", str(failure))
        self.assertEqual((server.connections, self.sleeps), (1, []))

    def test_an_expired_certificate_is_refused_once(self):
        server = self.serve(None, tls=tls_server_context("expired"))
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(verify=CA).chat, "m", HI)
        self.assertIn("has expired", str(failure))
        self.assertEqual((server.connections, self.sleeps), (1, []))

    def test_a_plain_http_server_is_named_in_under_a_second(self):
        server = self.serve_with(PlainHTTPServer)
        client = self.make_client(server.url.replace("http://", "https://"), verify=CA, timeout=5, connect_timeout=5)
        client._sleep = self.sleeps.append
        self.clients.append(client)
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI, within=1.0)
        self.assertEqual(str(failure), "the server at %s speaks plain HTTP: write the base URL with http://, not "
                                       "https://" % server.url[len("http://"):])
        self.assertEqual((server.connections, self.sleeps), (1, []))

    def test_mutual_tls_with_cert_and_a_refusal_without_it(self):
        import ssl

        server = self.serve(None, tls=tls_server_context(client_certificate=ssl.CERT_REQUIRED))
        client = self.client(verify=CA, cert=(os.path.join(TLS_DIR, "client.pem"), os.path.join(TLS_DIR, "client.key")))
        self.assertOwnAnswer(client, 0)
        self.assertEqual(server.connections, 1)
        server = self.serve(None, tls=tls_server_context(client_certificate=ssl.CERT_REQUIRED))   # its alert
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(verify=CA).chat, "m", HI)
        self.assertTrue(str(failure).startswith("client certificate required: "), failure)
        self.assertTrue(str(failure).endswith("pass cert="), failure)
        self.assertEqual((server.connections, self.sleeps), (1, []))

    def test_a_reset_after_asking_for_a_client_certificate_says_so(self):
        import ssl

        server = self.serve(reset_without_certificate, tls=tls_server_context(client_certificate=ssl.CERT_OPTIONAL))
        failure = self.assertRaisesFast(dmr_client.APIConnectionError, self.client(verify=CA).chat, "m", HI)
        self.assertTrue(str(failure).startswith("client certificate required: "), failure)
        self.assertEqual((server.connections, self.sleeps), (1, []))

    def test_through_an_http_proxy_tunnel_the_same_rules_hold(self):
        proxy = TunnelProxy()
        self.addCleanup(proxy.close)
        env = {"https_proxy": proxy.url, "HTTPS_PROXY": proxy.url, "no_proxy": "", "NO_PROXY": ""}
        for name, fault in (("server", None), ("other", "is for another name"), ("expired", "has expired"),
                            (None, "speaks plain HTTP: write the base URL with http://, not https://")):
            with self.subTest(certificate=name):
                server = self.serve(None, tls=tls_server_context(name)) if name else self.serve_with(PlainHTTPServer)
                url = "https://dmr.example.test:%s" % server.url.rsplit(":", 1)[1]
                with mock.patch.dict(os.environ, env):
                    client = self.make_client(url, verify=CA, timeout=self.TIMEOUT)
                client._sleep = self.sleeps.append
                self.clients.append(client)
                if fault is None:
                    self.assertOwnAnswer(client, 0)
                    self.assertOwnAnswer(client, 1)
                else:
                    failure = self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
                    self.assertIn(fault, str(failure))
                self.assertEqual((server.connections, self.sleeps), (1, []))
        self.assertTrue(all(request.startswith(b"CONNECT dmr.example.test:") for request in proxy.requests))

    def test_an_active_context_with_tls_and_its_ca_reaches_the_server(self):
        server = self.serve(None, tls=tls_server_context())
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home)
        os.makedirs(os.path.join(home, "model"))
        port = server.url.rsplit(":", 1)[1]
        with open(os.path.join(home, "model", "contexts.json"), "w") as file:   # as `docker model context create`
            json.dump({"version": 1, "current": "lab", "contexts": {"lab": {
                "host": "http://localhost:%s" % port, "tls": {"enabled": True, "caCert": CA}}}}, file)
        env = {"DOCKER_CONFIG": home}
        with mock.patch.dict(os.environ, env):
            for name in (dmr_client.ENV_BASE_URL, dmr_client.ENV_HOST, "MODEL_RUNNER_TLS", "MODEL_RUNNER_TLS_CA_CERT",
                         "MODEL_RUNNER_TLS_SKIP_VERIFY"):
                os.environ.pop(name, None)
            client = self.make_client(timeout=self.TIMEOUT)
        client._sleep = self.sleeps.append
        self.clients.append(client)
        self.assertEqual(client.base_url, "https://localhost:%s/engines/llama.cpp/v1" % port)
        self.assertEqual(client.context, "lab")
        self.assertOwnAnswer(client, 0)


@SLOW_TIER
@for_both_clients
class TestTLSStalls(AdversarialTestCase):
    """A TLS handshake that never finishes (waited out: the slow tier)."""

    serve_with = TestTLS.serve_with

    def test_a_handshake_that_never_finishes_times_out_and_is_tried_once_more(self):
        server = self.serve_with(SilentServer)
        client = self.make_client(server.url.replace("http://", "https://"), verify=CA, connect_timeout=0.3,
                                  max_retries=3)
        client._sleep = self.sleeps.append
        self.clients.append(client)
        failure = self.assertRaisesFast(dmr_client.APITimeoutError, client.chat, "m", HI, within=1.5)
        self.assertIn("the TLS handshake with 127.0.0.1:%d did not finish within 0.3 s" % int(server.url.rsplit(":", 1)[1]),
                      str(failure))
        self.assertIn("(after 2 attempts)", str(failure))
        self.assertEqual((server.connections, len(self.sleeps)), (2, 1))


@for_both_clients
class TestResourceRelease(AdversarialTestCase):
    def stream_server(self):
        def endless(conn):
            conn.sendall(SSE_HEAD)
            try:
                for _ in range(400):
                    conn.sendall(chunked_body(HELLO, end=b""))
                    time.sleep(0.01)
            except OSError:
                pass
            return "close"
        return self.serve(endless)

    def test_dropped_streams_close_their_sockets_without_the_gc(self):
        server = self.stream_server()
        client = self.client()
        gc.disable()
        try:
            for number in range(30):
                stream = client.chat("m", HI, stream=True)
                if number % 3 == 1:
                    next(iter(stream))
                elif number % 3 == 2:
                    for _ in stream:
                        break
                del stream
            for _ in client.chat("m", HI, stream=True):   # the for loop holds only the iterator
                break
            self.assertTrue(server.wait_closed(), "%d sockets still open" % server.open)
        finally:
            gc.enable()

    @sync_only
    def test_a_request_to_an_ascii_host_leaves_the_idna_codec_unloaded(self):
        # Memory: the idna codec imports stringprep and unicodedata (about 0.4 MB of a small
        # script's peak RSS); the name of an ASCII host resolves without it.
        self.serve(None)
        code = ("import sys, dmr_client; dmr_client.Client(%r, max_retries=0).chat('m', [{'role': 'user', "
                "'content': 'Hi'}]); print([name in sys.modules for name in ('encodings.idna', 'unicodedata')])"
                % self.server.url)
        out = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout.strip(), "[False, False]", out.stderr)
        self.assertEqual(len(self.server.requests), 1)

    @sync_only
    def test_a_client_never_closed_closes_its_idle_connections_quietly(self):
        server = self.serve(None)
        client = Client(server.url, timeout=self.TIMEOUT)
        self.assertOwnAnswer(client, 0)
        del client   # its pool is collected: the kept-alive socket is closed, with no ResourceWarning
        gc.collect()
        self.assertTrue(server.wait_closed())
        code = ("import dmr_client, sys; c = dmr_client.Client(sys.argv[1]); "
                "print(c.chat('m', [{'role': 'user', 'content': 'Hi'}]).choices[0].message.content)")
        out = subprocess.run([sys.executable, "-X", "dev", "-c", code, server.url], cwd=HERE, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "answer 1\n", ""))

    @sync_only
    def test_a_client_dropped_in_a_reference_cycle_closes_quietly(self):
        # A script's namespace is a cycle (its functions point back at it), and so is an OpenAI() (its
        # resources point back at it): the collector finalizes all of it at once, in any order.
        server = self.serve(SSE_HEAD + chunked_body(HELLO, STOP, DONE), None)
        namespace: Dict[str, Any] = {"openai": dmr_client.OpenAI(base_url=server.url + "/v1", timeout=self.TIMEOUT),
                                     "client": Client(server.url, timeout=self.TIMEOUT)}
        namespace["namespace"] = namespace
        namespace["stream"] = namespace["openai"].chat.completions.create(model="m", messages=HI, stream=True)
        self.assertTrue(list(namespace["stream"]))   # complete: its connection is idle, and the stream holds it
        namespace["client"].chat("m", HI)
        del namespace
        gc.collect()
        self.assertTrue(server.wait_closed())   # end_round then checks that no ResourceWarning was raised

    def test_keep_alive_works_past_file_descriptor_1024(self):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1200:
            self.skipTest("the process may not open 1200 files")
        if soft != resource.RLIM_INFINITY and soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1050)]
        self.addCleanup(lambda: [os.close(fd) for fd in spare])
        self.serve(None)
        client = self.client()
        for number in range(3):
            self.assertOwnAnswer(client, number)
        self.assertEqual(self.server.connections, 1)


@for_both_clients
class TestRequestsCannotBeSmuggled(AdversarialTestCase):
    def test_https_through_an_http_proxy_asks_for_a_tunnel_and_shows_the_proxy_nothing_else(self):
        server = self.serve((http_reply(b"", "407 Proxy Authentication Required"), "close"))
        proxy = server.url.replace("http://", "http://user:pa%40ss@")
        env = {"https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""}
        with mock.patch.dict(os.environ, env):
            client = self.make_client("https://dmr.example.test:12434", api_key="sk-secret", max_retries=0,
                                      timeout=self.TIMEOUT)
        self.clients.append(client)
        error = self.assertRaisesFast(dmr_client.APIConnectionError, client.chat, "m", HI)
        self.assertIn("Tunnel connection failed: 407", str(error))
        self.assertNotIn("pa@ss", str(error))
        request = server.requests[0]
        self.assertTrue(request.startswith(b"CONNECT dmr.example.test:12434 HTTP/1.1\r\n"
                                           b"Host: dmr.example.test:12434\r\n"), request)
        self.assertIn(b"Proxy-Authorization: Basic dXNlcjpwYUBzcw==\r\n", request)   # user:pa@ss
        self.assertNotIn(b"sk-secret", request)   # the key goes inside the tunnel only

    def test_framing_headers_are_refused(self):
        for name in ("Content-Length", "content-length", "Transfer-Encoding", "Connection"):
            with self.subTest(name=name):
                with self.assertRaises(ValueError):
                    Client("http://127.0.0.1:9", headers={name: "5"})
        for value in ("a\r\nX-Evil: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb"):
            with self.assertRaises(ValueError):
                Client("http://127.0.0.1:9", headers={"X-A": value})

    def test_user_host_accept_and_user_agent_replace_ours(self):
        self.serve(None)
        client = self.client(headers={"Host": "models.example", "user-agent": "mine/1", "ACCEPT": "*/*"})
        client.chat("m", HI)
        head = self.server.requests[0].split(b"\r\n\r\n")[0].lower()
        for name, value in ((b"host", b"models.example"), (b"user-agent", b"mine/1"), (b"accept", b"*/*")):
            self.assertEqual(re.findall(rb"(?m)^" + name + rb": ([^\r\n]*)", head), [value])

    def test_control_characters_are_refused_before_anything_is_sent(self):
        for url in ("http://127.0.0.1:9/\r\nX: y", "http://127.0.0.1:9\n", "\thttp://127.0.0.1:9",
                    "http://127.0.0.1:9/a\x00b"):
            with self.subTest(url=url):
                with self.assertRaises(ValueError):
                    Client(url)
        with self.assertRaises(ValueError):
            Client(unix_socket="/tmp/dmr\x00.sock")
        with self.assertRaises(ValueError):
            Client("http://127.0.0.1:9", api_key="key\r\n")
        client = Client("http://127.0.0.1:9", max_retries=0)
        self.addCleanup(client.close)
        for model in ("ai/x\r\nHost: evil", "ai/x\x00", "ai/\nx"):
            with self.subTest(model=model):
                with self.assertRaises(ValueError):
                    client.chat(model, HI)
        with self.assertRaises(ValueError):
            Client("http://127.0.0.1:9", engine="llama.cpp\r\n")

    def test_redaction(self):
        for url, shown in (("http://u:p@h/v1", "http://***@h/v1"), ("http://u:p@ss@h:1", "http://***@h:1"),
                           ("http://u:pa/ss@h/x", "http://***@h/x"), ("tok@h", "***@h"), ("http://h/v1", "http://h/v1"),
                           ("https://a://b@h", "https://***@h")):
            with self.subTest(url=url):
                self.assertEqual(dmr_client._redact(url), shown)

    def test_credentials_never_appear_in_messages(self):
        for url, secret in (("http://us:pa@ss99@host:1/v1", "ss99"), ("http://us:pa/ss@host/v1", "pa/ss"),
                            ("https://TOKEN@gw.example/v1", "TOKEN"), ("http://u:s3cr3t@h\n", "s3cr3t"),
                            ("http://u:p%40ss@h:99999", "p%40ss"), ("tok:zq9@host", "zq9"),
                            ("http://u:pw@h?x#y", "pw@")):
            with self.subTest(url=url):
                with self.assertRaises(ValueError) as caught:
                    Client(url)
                self.assertNotIn(secret, str(caught.exception))


# ---------------------------------------------------------------------------
# Adversarial tier (asyncio)
# ---------------------------------------------------------------------------
# AsyncClient's own behaviour: cancellation, concurrency, one pool per loop, a loop never blocked
# (everything else runs for both clients above, through BlockingAsyncClient).


def echo_reply(request, stream=None):
    """A reply whose text is the request's last message: each concurrent caller must get its own."""
    body = json.loads(request.partition(b"\r\n\r\n")[2])
    text = body["messages"][-1]["content"]
    if not body.get("stream"):
        return json_http({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                       "finish_reason": "stop"}]})
    events = [b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": word},
                                                   "finish_reason": None}]}).encode() + b"\n\n"
              for word in re.findall(r"\S+\s*", text)]
    return SSE_HEAD + chunked_body(*events, STOP, DONE)


def ask(text):
    return [{"role": "user", "content": text}]


class TestAsyncClient(AdversarialTestCase):
    """What only an asyncio client has to prove; every socket is checked closed after each test."""

    def async_client(self, **kwargs):
        kwargs.setdefault("timeout", self.TIMEOUT)
        kwargs.setdefault("max_retries", 0)
        return dmr_client.AsyncClient(self.server.url, **kwargs)

    def echo_server(self):
        server = self.serve()
        server.answer = lambda number: echo_reply(server.requests[number])
        return server

    def test_import_leaves_asyncio_out_until_the_first_async_client(self):
        code = ("import sys, dmr_client; print('asyncio' in sys.modules); "
                "dmr_client.AsyncClient('http://127.0.0.1:9'); print('asyncio' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout.split(), ["False", "True"], out.stderr)

    def test_async_tools_are_awaited_and_one_turns_calls_run_together(self):
        self.serve(json_http(completion_of({"content": "", "tool_calls": [
            tool_call(n, "slow_weather", json.dumps({"city": city})) for n, city in enumerate(("Paris", "Rome", "Oslo"))]},
            "tool_calls")), json_http(completion_of({"content": "All sunny."})))
        running, most = [0], [0]

        async def slow_weather(city: str) -> str:
            running[0] += 1
            most[0] = max(most[0], running[0])
            await asyncio.sleep(0.05)
            running[0] -= 1
            return "sunny in " + city

        seen = []

        async def on_step(step):   # an async on_step is awaited too
            seen.append(step.result)

        async def main():
            async with self.async_client() as client:
                return await client.run_tools("m", HI, tools=[slow_weather], on_step=on_step)
        reply = asyncio.run(main())
        self.assertEqual(most[0], 3)   # all three at once
        self.assertEqual([m["content"] for m in reply.messages[2:5]], ["sunny in Paris", "sunny in Rome", "sunny in Oslo"])
        self.assertEqual(sorted(seen), ["sunny in Oslo", "sunny in Paris", "sunny in Rome"])
        self.assertEqual(reply.choices[0].message.content, "All sunny.")

    def test_an_async_client_never_closed_says_nothing_at_exit(self):
        server = self.serve(None)
        code = ("import asyncio, dmr_client, sys\n"
                "async def main():\n"
                "    c = dmr_client.AsyncClient(sys.argv[1])\n"
                "    print((await c.chat('m', [{'role': 'user', 'content': 'Hi'}])).choices[0].message.content)\n"
                "asyncio.run(main())\n")
        out = subprocess.run([sys.executable, "-X", "dev", "-c", code, server.url], cwd=HERE, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "answer 0\n", ""))

    def test_plain_tools_run_in_worker_threads_side_by_side(self):
        self.serve(json_http(completion_of({"content": "", "tool_calls": [
            tool_call(n, "meet", "{}") for n in range(2)]}, "tool_calls")), json_http(completion_of({"content": "Met."})))
        both = threading.Barrier(2, timeout=5)   # passes only if the two calls run at the same time
        loop_threads = set()

        def meet() -> str:
            loop_threads.add(threading.current_thread() is threading.main_thread())
            both.wait()
            return "met"

        async def main():
            async with self.async_client() as client:
                return await client.run_tools("m", HI, tools=[meet])
        reply = asyncio.run(main())
        self.assertEqual([m["content"] for m in reply.messages[2:4]], ["met", "met"])
        self.assertEqual(loop_threads, {False})   # never on the event loop's thread

    def test_calls_are_coroutines_with_client_results(self):
        self.echo_server()

        async def main():
            async with self.async_client() as client:
                reply = await client.chat("m", ask("hello there"))
                stream = await client.chat("m", ask("one two three"), stream=True)
                chunks = [chunk async for chunk in stream]
                return reply, stream, chunks
        reply, stream, chunks = asyncio.run(main())
        self.assertIsInstance(reply, AttrDict)
        self.assertEqual(reply.choices[0].message.content, "hello there")
        self.assertIsInstance(stream, dmr_client.AsyncChatStream)
        self.assertTrue(stream.completed)
        self.assertEqual(len(chunks), 4)
        self.assertEqual(self.server.connections, 1)   # the stream's connection was reused

    def test_200_concurrent_calls_each_get_their_own_answer(self):
        self.echo_server()

        async def main():
            async with self.async_client() as client:
                return await asyncio.gather(*[client.chat("m", ask("question %d" % i)) for i in range(200)])
        replies = asyncio.run(main())
        self.assertEqual([r.choices[0].message.content for r in replies], ["question %d" % i for i in range(200)])
        self.assertEqual(len(self.server.requests), 200)

    def test_64_concurrent_streams_each_get_their_own_answer(self):
        self.echo_server()

        async def one(client, number):
            stream = await client.chat("m", ask("stream %d says hi" % number), stream=True)
            return "".join([chunk.choices[0].delta.get("content") or "" async for chunk in stream]), \
                (await stream.final()).choices[0].message.content

        async def main():
            async with self.async_client() as client:
                return await asyncio.gather(*[one(client, i) for i in range(64)])
        for number, (text, folded) in enumerate(asyncio.run(main())):
            self.assertEqual(text, "stream %d says hi" % number)
            self.assertEqual(folded, text)

    def test_cancelling_a_call_closes_its_connection_at_once(self):
        hung_up = threading.Event()

        def slow(conn):   # never answers; notices when the client hangs up
            conn.settimeout(5)
            try:
                if conn.recv(1) == b"":
                    hung_up.set()
            except OSError:
                hung_up.set()
            return "close"
        self.serve(slow, None)

        async def main():
            async with self.async_client(timeout=30) as client:
                task = asyncio.ensure_future(client.chat("m", HI))
                while not self.server.requests:
                    await asyncio.sleep(0.01)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                self.assertTrue(await asyncio.get_running_loop().run_in_executor(None, hung_up.wait, 3))
                # The cancelled answer is never read by the next call: it gets its own.
                return (await client.chat("m", HI)).choices[0].message.content
        self.assertEqual(asyncio.run(main()), "answer 1")
        self.assertEqual(self.server.connections, 2)

    def test_cancelling_a_stream_closes_its_connection_and_the_server_stops(self):
        gate, stopped = threading.Event(), threading.Event()

        def endless(conn):
            conn.sendall(SSE_HEAD + chunked_body(HELLO, end=b""))
            gate.wait(5)
            try:
                for _ in range(500):
                    conn.sendall(chunked_body(HELLO, end=b""))
                    time.sleep(0.01)
            except OSError:
                stopped.set()   # the client hung up: DMR stops generating here
            return "close"
        self.serve(endless, None)

        async def main():
            async with self.async_client(timeout=30) as client:
                stream = await client.chat("m", HI, stream=True)
                first = await stream.__anext__()
                task = asyncio.ensure_future(stream.__anext__())
                await asyncio.sleep(0.05)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                gate.set()
                self.assertTrue(await asyncio.get_running_loop().run_in_executor(None, stopped.wait, 3))
                self.assertFalse(stream.completed)
                with self.assertRaises(StopAsyncIteration):   # a cancelled stream is over
                    await stream.__anext__()
                return first, (await client.chat("m", HI)).choices[0].message.content
        first, after = asyncio.run(main())
        self.assertEqual(first.choices[0].delta.content, "Hello")
        self.assertEqual(after, "answer 1")

    def test_one_client_on_two_loops_in_turn(self):
        self.serve(None)
        client = self.async_client()

        async def call():
            return (await client.chat("m", HI)).choices[0].message.content
        self.assertEqual(asyncio.run(call()), "answer 0")
        # The first loop's connection closed with its loop; the second loop opens its own.
        self.assertTrue(self.server.wait_closed())
        self.assertEqual(asyncio.run(call()), "answer 1")
        self.assertEqual(self.server.connections, 2)

        async def close():
            await client.aclose()
            with self.assertRaises(dmr_client.DMRError):
                await client.chat("m", HI)
        asyncio.run(close())

    def test_one_client_on_two_loops_at_once(self):
        self.serve(None)
        client = self.async_client()
        answers = []

        def in_thread():
            async def calls():
                for _ in range(5):
                    answers.append((await client.chat("m", HI)).choices[0].message.content)
            asyncio.run(calls())
        self.assertEqual(in_threads(2, in_thread), [])
        self.assertEqual(sorted(answers, key=lambda a: int(a.split()[1])), ["answer %d" % i for i in range(10)])
        self.assertEqual(self.server.connections, 2)   # a pool per loop: one connection each
        asyncio.run(client.aclose())

    def test_the_event_loop_never_waits_on_the_client(self):
        # Every wait (connect, the answer, a retry's pause) must be an await: a blocking call
        # anywhere would stall the ticker below for the server's 0.3 s.
        def slow(conn):
            time.sleep(0.3)
            conn.sendall(reply_for(0))

        def slow_stream(conn):
            conn.sendall(SSE_HEAD)
            time.sleep(0.3)
            conn.sendall(chunked_body(HELLO, STOP, DONE))
        busy = http_reply(b"loading", "503 Service Unavailable", [("Retry-After", "0.3")])
        self.serve(slow, slow_stream, busy, None)

        async def main():
            loop = asyncio.get_running_loop()
            lag = [0.0]
            running = [True]

            async def ticker():
                while running[0]:
                    started = loop.time()
                    await asyncio.sleep(0.005)
                    lag[0] = max(lag[0], loop.time() - started - 0.005)
            tick = asyncio.ensure_future(ticker())
            async with self.async_client(max_retries=1) as client:
                await client.chat("m", HI)
                await (await client.chat("m", HI, stream=True)).final()
                await client.chat("m", HI)   # 503, Retry-After 0.3, then 200
            running[0] = False
            await tick
            return lag[0]
        self.assertLess(asyncio.run(main()), 0.15)
        self.assertEqual(len(self.server.requests), 4)

    def test_a_fast_server_cannot_fill_memory_while_the_reader_waits(self):
        sent = [0]

        def flood(conn):
            conn.sendall(SSE_HEAD + chunked_body(HELLO, end=b""))
            comment = chunked_body(b": " + b"x" * 65530 + b"\n", end=b"")
            try:
                for _ in range(512):   # 32 MiB
                    conn.sendall(comment)
                    sent[0] += len(comment)
            except OSError:
                pass
            return "close"
        self.serve(flood)

        async def main():
            async with self.async_client() as client:
                stream = await client.chat("m", HI, stream=True)
                await stream.__anext__()
                await asyncio.sleep(0.5)   # the loop runs; the stream is not read
                await stream.aclose()
        asyncio.run(main())
        # Reading pauses at _ASYNC_BUFFER: what the server got out is that plus the kernel's buffers.
        self.assertLess(sent[0], 16 * 1024 * 1024)

    def test_a_stream_dropped_without_aclose_closes_its_socket(self):
        self.serve(SSE_HEAD + chunked_body(HELLO, end=b""))

        async def main():
            async with self.async_client() as client:
                stream = await client.chat("m", HI, stream=True)
                await stream.__anext__()
                del stream
                gc.collect()
                return await asyncio.get_running_loop().run_in_executor(None, self.server.wait_closed)
        self.assertTrue(asyncio.run(main()))

    def test_a_stream_dropped_in_its_loop_closes_its_socket_before_the_loop_ends(self):
        self.serve(SSE_HEAD + chunked_body(HELLO, end=b""))

        async def main():
            client = self.async_client()
            stream = await client.chat("m", HI, stream=True)
            await stream.__anext__()
            del stream   # no gc: the last reference goes
            for _ in range(200):
                if not self.server.open:
                    return True
                await asyncio.sleep(0.01)
            return False
        gc.disable()
        try:
            self.assertTrue(asyncio.run(main()), "the socket outlived the stream")
        finally:
            gc.enable()

    def test_a_stream_that_outlives_its_loop_is_closed_with_the_loop(self):
        self.serve(SSE_HEAD + chunked_body(HELLO, end=b""))

        async def open_stream():
            stream = await self.async_client().chat("m", HI, stream=True)
            await stream.__anext__()
            return stream
        stream = asyncio.run(open_stream())   # the loop has ended; the stream is still held
        self.assertTrue(self.server.wait_closed(), "the loop ended with a stream's socket open")
        del stream   # dropped after its loop closed: nothing to close, nothing to warn about
        gc.collect()


def _fd_is_socket(fd):
    import stat

    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def in_child(work):
    """Fork; the child runs work() and reports what it returned (JSON) through a pipe, then
    leaves at once (os._exit: nothing of the parent's, no test cleanup, runs in it)."""
    read, write = os.pipe()
    with warnings.catch_warnings():   # the test process has server threads; the child touches none of them
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(20)   # a child that hangs (a lock held across the fork) dies instead
            os.close(read)
            os.write(write, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    return status, json.loads(report) if report else None


@unittest.skipUnless(hasattr(os, "fork"), "needs os.fork()")
class TestForkSafety(AdversarialTestCase):
    """A client made before os.fork(): the child never writes or reads on the parent's
    connections (both would, and each could read the other's answer); the parent's stay
    usable.  The child's copies are closed without sending anything."""

    def test_client(self):
        server = self.serve(None)
        client = self.client()
        self.assertOwnAnswer(client, 0)
        inherited = client._pool._idle[0].sock.fileno()

        def child():
            closed = not _fd_is_socket(inherited)
            return [closed, client.chat("m", HI).choices[0].message.content]
        status, report = in_child(child)
        self.assertEqual((status, report), (0, [True, "answer 1"]))
        self.assertEqual(server.connections, 2)      # the child opened its own
        self.assertOwnAnswer(client, 2)              # the parent's connection still works ...
        self.assertEqual(server.connections, 2)      # ... and is the one it had

    def test_client_in_threads_while_another_thread_holds_the_pool(self):
        server = self.serve(None)
        client = self.client()
        self.assertOwnAnswer(client, 0)
        with client._pool._lock:   # a thread of the parent was taking a connection when it forked
            status, report = in_child(lambda: client.chat("m", HI).choices[0].message.content)
        self.assertEqual((status, report), (0, "answer 1"))
        self.assertEqual(server.connections, 2)

    def test_async_client(self):
        server = self.serve(None)

        async def main():
            client = dmr_client.AsyncClient(server.url, timeout=self.TIMEOUT, max_retries=0)
            first = await client.chat("m", HI)
            conn = client._pool_here()._idle[0]
            inherited = conn.transport.get_extra_info("socket").fileno()

            def child():
                async def call():
                    async with dmr_client.AsyncClient(server.url, timeout=1.0) as mine:
                        await mine.chat("m", HI)   # a loop of its own works in the child
                    return (await client.chat("m", HI)).choices[0].message.content
                closed = not _fd_is_socket(inherited)
                return [closed, asyncio.run(call())]
            loop = asyncio.get_running_loop()
            status, report = await loop.run_in_executor(None, in_child, child)
            last = await client.chat("m", HI)   # the parent's connection, on the parent's loop
            await client.aclose()
            return [first.choices[0].message.content, status, report, last.choices[0].message.content]
        self.assertEqual(asyncio.run(main()), ["answer 0", 0, [True, "answer 2"], "answer 3"])
        self.assertEqual(server.connections, 3)   # the parent's one, and two of the child's


# ---------------------------------------------------------------------------
# Real-server tier
# ---------------------------------------------------------------------------
# llama.cpp's own server (tools/llama_server.py) or a real DMR.

REAL_BASE_URL = os.environ.get("DMR_TEST_BASE_URL")
# A server whose model calls tools: tools/llama_server.py's tools model (start --model tools) calls
# get_weather(city="Paris") and, after a tool result, answers DMR_TEST_TOOLS_ANSWER.
TOOLS_BASE_URL = os.environ.get("DMR_TEST_TOOLS_BASE_URL")
TOOLS_MODEL = os.environ.get("DMR_TEST_TOOLS_MODEL", "ai/tiny")
TOOLS_ANSWER = os.environ.get("DMR_TEST_TOOLS_ANSWER") or None


@dataclasses.dataclass
class Verdict:
    """The typed answer of the real tier's structured-output tests."""
    ok: bool


def satisfies(value, schema):
    """Whether *value* (decoded JSON) satisfies *schema*: the JSON Schema subset json_schema()
    gives for a dataclass of plain fields (type, properties, required, additionalProperties,
    enum).  The tests check the server's raw text with it, apart from the client's parsing."""
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int if kind == "integer" else (int, float)):
            return False
    elif kind is not None and not isinstance(value, kinds[kind]):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        if any(name not in value for name in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(satisfies(value[name], sub) for name, sub in properties.items() if name in value)
    return True


@unittest.skipUnless(REAL_BASE_URL, "set DMR_TEST_BASE_URL to run against a real DMR or llama.cpp server "
                                    "(README: Testing against a real server)")
@for_both_clients
class TestRealServer(unittest.TestCase):
    """The client against a real server.  DMR_TEST_MODEL names the model (default
    ai/smollm2); DMR_TEST_PHRASE, when set, is the exact answer every chat must give
    (the tiny model of tools/llama_server.py always answers PHRASE)."""

    model = os.environ.get("DMR_TEST_MODEL", "ai/smollm2")
    phrase = os.environ.get("DMR_TEST_PHRASE") or None
    ASK = [{"role": "user", "content": "Say hello."}]

    make_client = Client

    def client(self, base_url=None, **kwargs):
        kwargs.setdefault("timeout", 300)
        client = self.make_client(base_url or REAL_BASE_URL, **kwargs)
        self.addCleanup(client.close)
        return client

    def chat(self, client=None, **params):
        params.setdefault("temperature", 0)
        params.setdefault("seed", 42)
        params.setdefault("max_tokens", 48)
        return (client or self.client()).chat(self.model, self.ASK, **params)

    def test_url_layout_goes_through_the_public_rules(self):
        client = self.client()
        self.assertEqual(client.base_url, normalize_base_url(REAL_BASE_URL))
        plain = REAL_BASE_URL.rstrip("/").endswith("/v1")
        self.assertTrue(client.base_url.endswith("/v1" if plain else "/engines/llama.cpp/v1"), client.base_url)
        pasted = self.client(client.base_url + "/chat/completions")
        self.assertEqual(self.chat(pasted).object, "chat.completion")
        if not plain:   # LiteLLM's first base URL form reaches the same server
            self.assertEqual(self.chat(self.client(REAL_BASE_URL.rstrip("/") + "/engines/llama.cpp")).object,
                             "chat.completion")

    def test_chat(self):
        reply = self.chat()
        content = reply.choices[0].message.content
        self.assertIsInstance(content, str)
        self.assertTrue(content)
        self.assertIn(reply.choices[0].finish_reason, ("stop", "length"))
        self.assertEqual(reply.usage.total_tokens, reply.usage.prompt_tokens + reply.usage.completion_tokens)
        if self.phrase:
            self.assertEqual(content, self.phrase)
            self.assertEqual(reply.choices[0].finish_reason, "stop")

    def test_streaming_reassembles_the_answer(self):
        with self.chat(stream=True) as stream:
            chunks = list(stream)
        self.assertTrue(stream.completed)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertIn(chunks[-1].choices[0].finish_reason, ("stop", "length"))
        text = text_of(chunks)
        self.assertTrue(text)
        if self.phrase:
            self.assertEqual(text, self.phrase)
            self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")

    def test_include_usage_matches_the_non_streaming_usage(self):
        reply = self.chat()
        chunks = list(self.chat(stream=True, stream_options={"include_usage": True}))
        self.assertEqual(chunks[-1].choices, [])
        usage = chunks[-1].usage
        self.assertEqual(usage.prompt_tokens, reply.usage.prompt_tokens)
        self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
        if self.phrase:
            self.assertEqual(usage.completion_tokens, reply.usage.completion_tokens)
        self.assertNotIn("usage", chunks[-2])

    def test_max_tokens_gives_length(self):
        self.assertEqual(self.chat(max_tokens=2).choices[0].finish_reason, "length")
        chunks = list(self.chat(max_tokens=2, stream=True))
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "length")

    def test_the_seed_parameter_list_is_accepted(self):
        reply = self.chat(temperature=0.7, max_tokens=8, top_p=0.9, frequency_penalty=0.1,
                          presence_penalty=0.1, stop=["\n\n"], n=1, seed=7, user="dmr-client-tests",
                          logit_bias={"0": -1}, logprobs=True, top_logprobs=2,
                          tools=[{"type": "function", "function": {
                              "name": "get_time", "description": "current time",
                              "parameters": {"type": "object", "properties": {}}}}],
                          tool_choice="auto")
        self.assertEqual(reply.object, "chat.completion")
        # a toy model runs to the context limit under a grammar: max_tokens bounds it
        reply = self.chat(response_format={"type": "json_object"}, max_tokens=8)
        self.assertEqual(reply.object, "chat.completion")

    def test_bad_request_carries_llama_cpp_message(self):
        with self.assertRaises(dmr_client.BadRequestError) as caught:
            self.chat(max_tokens="eight")
        self.assertEqual(caught.exception.status_code, 400)
        self.assertIn("max_tokens", caught.exception.message)

    def test_prompt_over_the_context_is_a_clear_error(self):
        huge = [{"role": "user", "content": "hi " * 150000}]
        for stream in (False, True):
            with self.subTest(stream=stream):
                with self.assertRaises(dmr_client.BadRequestError) as caught:
                    self.client().chat(self.model, huge, stream=stream, max_tokens=4)
                self.assertIn("context", caught.exception.message)
                self.assertIn("context", str(caught.exception.hint))

    def test_keep_alive_reuses_one_connection_for_50_calls(self):
        client = self.client()
        connects = []
        pool_class = dmr_client._Pool if self.make_client is Client else dmr_client._AsyncPool
        original = pool_class.connect

        def counting_connect(pool):
            connects.append(1)
            return original(pool)   # for _AsyncPool, the coroutine take() awaits

        patcher = mock.patch.object(pool_class, "connect", counting_connect)
        patcher.start()
        self.addCleanup(patcher.stop)
        for _ in range(50):
            self.assertTrue(self.chat(client, max_tokens=4).choices[0].message.content)
        self.assertEqual(len(connects), 1)
        # llama-server closes the connection after each stream although it advertises
        # Keep-Alive; the client must notice and reconnect without an error or a retry wait.
        client._sleep = self.fail
        for _ in range(10):
            self.assertTrue(text_of(self.chat(client, stream=True, max_tokens=4)))
            self.assertTrue(self.chat(client, max_tokens=4).choices[0].message.content)
        self.assertLessEqual(len(connects), 11)

    def test_completions_streamed_and_not(self):
        reply = self.client().completions(self.model, "Once upon a time", max_tokens=6, temperature=0, seed=42)
        text = reply.choices[0].text
        self.assertTrue(text)
        stream = self.client().completions(self.model, "Once upon a time", max_tokens=6, temperature=0,
                                           seed=42, stream=True)
        self.assertEqual(stream.text(), text)
        self.assertEqual(stream.final().choices[0].finish_reason, reply.choices[0].finish_reason)
        if self.phrase:
            self.assertTrue(self.phrase.startswith(text), text)

    def test_speed_figures_come_from_llama_cpp(self):
        reply = self.chat()
        self.assertEqual(reply.stats.source, "server")
        self.assertGreater(reply.stats.generated_tokens_per_s, 0)
        self.assertEqual(reply.stats.completion_tokens, reply.usage.completion_tokens)
        stream = self.chat(stream=True)
        final = stream.final()
        self.assertEqual(final.stats.source, "server")
        self.assertGreater(final.stats.time_to_first_token_s, 0)
        self.assertGreaterEqual(final.stats.total_s, final.stats.time_to_first_token_s)

    def test_count_tokens_and_fits(self):
        client = self.client()
        short = client.count_tokens(self.model, [{"role": "user", "content": "Say hello."}])
        longer = client.count_tokens(self.model, [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": "Say hello, please, twice."}])
        self.assertGreater(short, 0)
        self.assertGreater(longer, short)
        answer = client.fits(self.model, self.ASK, max_tokens=10)
        self.assertEqual(answer.prompt_tokens, short)
        if self.phrase:   # llama.cpp's own server tells its context in its model list (meta.n_ctx)
            self.assertEqual((answer.fits, answer.context_size), (True, 1024))
            self.assertIn("the server's context of 1024", answer.reason)

    def test_chat_stream_folds_to_the_non_streaming_reply(self):
        reply = self.chat()
        final = self.chat(stream=True).final()
        self.assertEqual(final.choices[0].message.content, reply.choices[0].message.content)
        self.assertEqual(final.choices[0].finish_reason, reply.choices[0].finish_reason)

    def test_embeddings(self):
        model = os.environ.get("DMR_TEST_EMBEDDING_MODEL") or (self.model if self.phrase else None)
        if not model:
            self.skipTest("set DMR_TEST_EMBEDDING_MODEL (e.g. ai/mxbai-embed-large) to test embeddings")
        reply = self.client().embeddings(model, ["first text", "a second, longer text", "first text"])
        vectors = [item.embedding for item in reply.data]
        self.assertEqual([item.index for item in reply.data], [0, 1, 2])
        self.assertEqual(len({len(v) for v in vectors}), 1)
        self.assertNotEqual(vectors[0], vectors[1])
        self.assertEqual(vectors[0], vectors[2])
        self.assertEqual(len(self.client().embeddings(model, "one").data), 1)

    def test_models(self):
        client = self.client()
        models = client.models()
        ids = [m.id for m in models]
        self.assertTrue(ids)
        if self.phrase:
            self.assertIn(self.model, ids)

    def test_eight_threads_share_one_client(self):
        client = self.client()
        answers = []

        def work():
            for _ in range(3):
                answers.append(self.chat(client).choices[0].message.content)

        self.assertEqual(in_threads(8, work), [])
        self.assertEqual(len(answers), 24)
        if self.phrase:
            self.assertEqual(set(answers), {self.phrase})

    def test_a_schema_constrained_answer_parses_into_the_dataclass(self):
        reply = self.chat(schema=Verdict)
        message = reply.choices[0].message
        self.assertEqual(reply.choices[0].finish_reason, "stop")
        # the server's own text satisfies the schema, whatever the client makes of it
        raw = json.loads(message.content)
        self.assertTrue(satisfies(raw, dmr_client.json_schema(Verdict)), message.content)
        self.assertEqual(set(raw), {"ok"})
        self.assertIsInstance(reply.parsed, Verdict)
        self.assertEqual(reply.parsed, Verdict(ok=raw["ok"]))
        self.assertEqual(message.parsed, reply.parsed)
        if self.phrase:   # the tiny model, held to the schema, says {"ok": true} (its text otherwise)
            self.assertEqual(reply.parsed, Verdict(ok=True))
            self.assertEqual(self.chat().choices[0].message.content, self.phrase)

    def test_a_schema_answer_cut_short_is_an_invalid_response(self):
        if not self.phrase:
            self.skipTest("needs the tiny model, whose constrained answer is 16 tokens")
        # llama.cpp stops at max_tokens in the middle of the object: '{\n"ok"\n:' and finish "length"
        with self.assertRaises(dmr_client.InvalidResponseError):
            self.chat(schema=Verdict, max_tokens=8)

    def tools_client(self):
        if not TOOLS_BASE_URL:
            self.skipTest("set DMR_TEST_TOOLS_BASE_URL to a server with a tool-calling model "
                          "(tools/real_server_tests.sh starts tools/llama_server.py's tools model)")
        return self.client(TOOLS_BASE_URL)

    def test_run_tools_calls_the_python_function_and_returns_the_answer(self):
        calls = []

        def get_weather(city: str) -> str:
            """Current weather in a city."""
            calls.append(city)
            return "sunny, 24 C"

        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        reply = self.tools_client().run_tools(TOOLS_MODEL, ask, tools=[get_weather], temperature=0, seed=42,
                                              max_tokens=48)
        self.assertEqual(calls, ["Paris"])
        final = reply.choices[0]
        self.assertEqual(final.finish_reason, "stop")
        self.assertFalse(final.message.get("tool_calls"))
        self.assertTrue(final.message.content)
        if TOOLS_ANSWER:
            self.assertEqual(final.message.content, TOOLS_ANSWER)
        self.assertEqual([m["role"] for m in reply.messages], ["user", "assistant", "tool", "assistant"])
        user, called, result, answer = reply.messages
        self.assertEqual(user, ask[0])
        [call] = called["tool_calls"]
        self.assertEqual(call["function"]["name"], "get_weather")
        self.assertEqual(json.loads(call["function"]["arguments"]), {"city": "Paris"})
        self.assertEqual(result["tool_call_id"], call["id"])
        self.assertEqual(result["content"], "sunny, 24 C")
        self.assertEqual(answer["content"], final.message.content)

    def test_max_rounds_stops_a_loop_whose_model_still_calls_tools(self):
        calls = []

        def get_weather(city: str) -> str:
            calls.append(city)
            return "sunny, 24 C"

        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        with self.assertRaises(dmr_client.ToolLoopError) as caught:
            self.tools_client().run_tools(TOOLS_MODEL, ask, tools=[get_weather], max_rounds=1,
                                          tool_choice="required", temperature=0, seed=42, max_tokens=48)
        self.assertEqual(calls, ["Paris"])
        messages = caught.exception.messages
        self.assertEqual(messages[0], ask[0])
        self.assertEqual([m["role"] for m in messages], ["user", "assistant", "tool"])
        self.assertTrue(all(m.get("tool_calls") for m in messages if m["role"] == "assistant"))


# ---------------------------------------------------------------------------
# Gateway tier
# ---------------------------------------------------------------------------
# LiteLLM's proxy router in front of two llama.cpp servers (tools/gateway.py).

GATEWAY_URL = os.environ.get("DMR_TEST_GATEWAY_URL")
GATEWAY_KEY = os.environ.get("DMR_TEST_GATEWAY_KEY", "")
GATEWAY_TOOL = os.path.join(HERE, "tools", "gateway.py")


def gateway_backend(action, deployment):
    """Stop one of the gateway's deployments, or start it again on the port the proxy knows."""
    subprocess.run([sys.executable, GATEWAY_TOOL, "backend", action, deployment], check=True,
                   stdout=subprocess.DEVNULL, timeout=180)


@unittest.skipUnless(GATEWAY_URL, "set DMR_TEST_GATEWAY_URL to run through LiteLLM's proxy "
                                  "(tools/gateway_tests.sh starts it)")
@for_both_clients
class TestGateway(unittest.TestCase):
    """The client through LiteLLM's proxy router: one URL and one key in front of two llama.cpp
    servers in DMR's layout, deployments of one model (tools/gateway.py); "cut" and "cut-eof"
    are a backend that cuts every answer short."""

    model = os.environ.get("DMR_TEST_GATEWAY_MODEL", "tiny")
    phrase = "Hello from a tiny GGUF test model!"
    cooldown = int(os.environ.get("DMR_TEST_GATEWAY_COOLDOWN", "5"))
    ASK = [{"role": "user", "content": "Say hello."}]

    make_client = Client

    def client(self, base_url=None, **kwargs):
        kwargs.setdefault("api_key", GATEWAY_KEY)
        kwargs.setdefault("timeout", 60)
        client = self.make_client(base_url or GATEWAY_URL, **kwargs)
        self.addCleanup(client.close)
        return client

    def chat(self, client=None, model=None, **params):
        params.setdefault("temperature", 0)
        params.setdefault("max_tokens", 48)
        return (client or self.client()).chat(model or self.model, self.ASK, **params)

    def test_chat(self):
        reply = self.chat()
        self.assertEqual(reply.choices[0].message.content, self.phrase)
        self.assertEqual(reply.choices[0].finish_reason, "stop")
        self.assertEqual(reply.model, self.model)   # the gateway's name for it
        self.assertEqual(reply.usage.total_tokens, reply.usage.prompt_tokens + reply.usage.completion_tokens)

    def test_stream_and_final(self):
        with self.chat(stream=True) as stream:
            chunks = list(stream)
        self.assertTrue(stream.completed)
        self.assertEqual(text_of(chunks), self.phrase)
        final = stream.final()
        self.assertEqual(final.choices[0].message.content, self.phrase)
        self.assertEqual(final.choices[0].finish_reason, "stop")
        self.assertEqual(self.chat(stream=True).text(), self.phrase)

    def test_models_and_what_answers(self):
        client = self.client()
        self.assertLessEqual({self.model, "cut", "cut-eof"}, {model.id for model in client.models()})
        self.assertEqual(client.server_kind(), "gateway")
        self.assertTrue(client.ping())

    def test_the_key(self):
        self.assertEqual(self.chat().choices[0].message.content, self.phrase)
        with mock.patch.dict(os.environ, {"DOCKER_MODEL_RUNNER_API_KEY": ""}):
            no_key = self.client(api_key=None)
        with self.assertRaises(dmr_client.AuthenticationError) as caught:
            self.chat(no_key)
        self.assertEqual(caught.exception.status_code, 401)
        self.assertIn("No api key passed in", caught.exception.message)
        self.assertIn("DOCKER_MODEL_RUNNER_API_KEY", caught.exception.hint)
        with self.assertRaises(dmr_client.AuthenticationError):
            no_key.models()
        with self.assertRaises(dmr_client.BadRequestError) as caught:   # a key LiteLLM cannot look up
            self.chat(self.client(api_key="sk-not-the-master-key"))
        self.assertEqual(caught.exception.message, "No connected db.")
        self.assertIn("only its master key", caught.exception.hint)
        self.assertNotIn("sk-not-the-master-key", str(caught.exception) + repr(caught.exception))

    def test_an_unknown_model_is_a_clear_error_in_the_gateways_words(self):
        for stream in (False, True):
            with self.subTest(stream=stream):
                with self.assertRaises(dmr_client.BadRequestError) as caught:
                    self.chat(model="no-such-model", stream=stream)
                error = caught.exception
                self.assertEqual(error.status_code, 400)
                self.assertIn("Invalid model name passed in model=no-such-model", error.message)
                self.assertFalse(error.message.startswith("{"), error.message)   # the words, not the JSON
                self.assertIsNone(error.hint)   # no advice about DMR's store for a gateway
                self.assertNotIn(GATEWAY_KEY, str(error) + repr(error) + repr(error.headers))
        with self.assertRaises(dmr_client.NotFoundError) as caught:
            self.client().model("no-such-model")
        self.assertEqual(caught.exception.hint, "no model 'no-such-model' here: see models()")
        with self.assertRaises(dmr_client.InvalidResponseError) as caught:   # DMR's own API is not there
            self.client().local_models()
        self.assertIn("is a gateway or another OpenAI-compatible server", str(caught.exception))

    def test_a_base_url_without_v1_gets_the_url_that_works(self):
        origin = GATEWAY_URL[:-len("/v1")]
        with self.assertRaises(dmr_client.APIStatusError) as caught:
            self.chat(self.client(origin))
        self.assertIn("use %s/v1 as the base URL" % origin, caught.exception.hint)

    def test_a_cut_stream_is_a_stream_error(self):
        stream = self.chat(model="cut", stream=True)
        pieces = []
        with self.assertRaises(dmr_client.StreamError) as caught:
            for chunk in stream:
                pieces.append(chunk.choices[0].delta.get("content") or "")
        self.assertEqual("".join(pieces), "Hello from")
        self.assertEqual(caught.exception.chunks_received, 3)
        self.assertIn("Response payload is not completed", caught.exception.message)
        self.assertFalse(stream.completed)
        with self.assertRaises(dmr_client.StreamError):
            stream.final()

    def test_litellm_finishes_a_stream_its_backend_left_unfinished(self):
        """A known gateway limitation, pinned so that we notice when it changes (litellm #40260):
        a backend's stream that ends cleanly without [DONE] reaches the client with a
        finish_reason "stop" and [DONE] the backend never sent, so no client can tell.  DMR's
        own cut (a chunked body left unfinished) is reported, as the test above shows."""
        final = self.chat(model="cut-eof", stream=True).final()
        self.assertEqual(final.choices[0].message.content, "Hello from")
        self.assertEqual(final.choices[0].finish_reason, "stop")

    def test_stopping_one_backend_mid_run_loses_no_call(self):
        """Four threads call (chats and streams) while backend b is stopped under them; each
        goes on for six calls after the stop, so most of the run meets a dead deployment."""
        client = self.client(max_retries=4)
        answers, lock = [], threading.Lock()
        enough, stopped = threading.Event(), threading.Event()

        def work():
            after_the_stop = 0
            for turn in range(200):   # bounded: the stop comes after the first 8 answers
                if after_the_stop == 6:
                    return
                was_stopped = stopped.is_set()
                if turn % 2:
                    text = self.chat(client, stream=True).final().choices[0].message.content
                else:
                    text = self.chat(client).choices[0].message.content
                with lock:
                    answers.append(text)
                    if len(answers) >= 8:
                        enough.set()
                after_the_stop += was_stopped

        def stop_b():
            if enough.wait(120):
                gateway_backend("stop", "b")
            stopped.set()

        self.addCleanup(gateway_backend, "start", "b")
        stopper = threading.Thread(target=stop_b)
        stopper.start()
        errors = in_threads(4, work)
        stopper.join(180)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(answers), 8 + 4 * 6)
        self.assertEqual(set(answers), {self.phrase})

    def test_with_every_deployment_down_the_client_waits_as_the_gateway_asks(self):
        """Both backends stop: the router answers 500 until both deployments cool down, then 429
        with retry-after.  One backend comes back when the client is told to wait, and the call
        that waited succeeds."""
        gateway_backend("stop", "a")
        self.addCleanup(gateway_backend, "start", "a")
        gateway_backend("stop", "b")
        self.addCleanup(gateway_backend, "start", "b")
        others = self.client(max_retries=0)   # other users' calls, until the router cools both down
        for _ in range(50):
            try:
                self.chat(others)
            except dmr_client.InternalServerError:
                time.sleep(0.2)
                continue
            except dmr_client.RateLimitError as cooling:
                self.assertIn("All deployments for selected model are in cooldown", cooling.message)
                self.assertEqual(cooling.headers.get("retry-after"), str(self.cooldown))
                break
        else:
            self.fail("the gateway never answered 429 with both deployments down")

        told_to_wait = threading.Event()

        class Watch(logging.Handler):
            def emit(self, record):
                if "got 429" in record.getMessage():
                    told_to_wait.set()

        restarter = threading.Thread(target=lambda: told_to_wait.wait(60) and gateway_backend("start", "a"))
        restarter.start()
        self.addCleanup(restarter.join, 180)
        with self.assertLogs("dmr_client", "DEBUG") as logs:
            logging.getLogger("dmr_client").addHandler(Watch())   # assertLogs replaced the handlers until the end
            try:
                reply = self.chat(self.client(max_retries=8))
            finally:
                told_to_wait.set()   # the restarter ends either way
        self.assertEqual(reply.choices[0].message.content, self.phrase)
        waits = [float(found) for found in re.findall(r"got 429; retry \d+ in (\d+\.\d+) s", "\n".join(logs.output))]
        self.assertTrue(waits, "no 429 from the gateway:\n" + "\n".join(logs.output))
        for wait in waits:   # what retry-after said (whole seconds), not the backoff (jittered)
            self.assertEqual(wait, round(wait))
            self.assertGreaterEqual(wait, 1)
            self.assertLessEqual(wait, self.cooldown)

    def test_the_command_line_through_the_gateway(self):
        if self.make_client is not Client:
            self.skipTest("the command line is one program, whichever client the class tests: run once")
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_MODEL_RUNNER")}
        env.update(DOCKER_MODEL_RUNNER_API_BASE=GATEWAY_URL, DOCKER_MODEL_RUNNER_API_KEY=GATEWAY_KEY,
                   PYTHONPATH=HERE)

        def run(*args):
            return subprocess.run(CLI + list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  env=env, timeout=120)

        models = run("models")
        self.assertEqual(models.returncode, 0, models.stderr)
        self.assertEqual(models.stdout.splitlines()[0], "MODEL")
        self.assertIn(self.model, models.stdout.splitlines())
        self.assertIn(self.model, [entry["id"] for entry in json.loads(run("models", "--json").stdout)])
        ping = run("ping")
        self.assertEqual(ping.returncode, 0, ping.stderr)
        self.assertIn("LiteLLM's proxy (a gateway, not Docker Model Runner) is answering", ping.stdout)
        chat = run("chat", "-m", self.model, "Say hello.")
        self.assertEqual((chat.returncode, chat.stdout, chat.stderr), (0, self.phrase + "\n", ""))
        cut = run("chat", "-m", "cut", "Say hello.")
        self.assertEqual((cut.returncode, cut.stdout), (1, "Hello from\n"))   # the error starts its own line
        self.assertIn("error in the middle of the stream", cut.stderr)


# ---------------------------------------------------------------------------
# Packaging tier
# ---------------------------------------------------------------------------
# tools/build_backend.py, run in this process: what it builds (tools/packaging_tests.sh installs it
# with pip in fresh venvs of every CPython, offline).


class TestPackaging(unittest.TestCase):
    def setUp(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("build_backend", os.path.join(HERE, "tools", "build_backend.py"))
        self.backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.backend)
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder)

    def test_pyproject_needs_nothing_from_pypi(self):
        with open(os.path.join(HERE, "pyproject.toml")) as f:
            text = f.read()
        self.assertIn("requires = []", text)
        self.assertIn('build-backend = "build_backend"', text)
        self.assertIn('backend-path = ["tools"]', text)
        self.assertEqual(self.backend.get_requires_for_build_wheel(), [])

    def test_the_wheel_holds_the_module_and_setup_cfgs_metadata(self):
        import base64
        import configparser
        import hashlib
        import zipfile

        version = dmr_client.__version__
        name = self.backend.build_wheel(self.folder)
        self.assertEqual(name, "dmr_client-%s-py3-none-any.whl" % version)
        info = "dmr_client-%s.dist-info/" % version
        with zipfile.ZipFile(os.path.join(self.folder, name)) as wheel:
            files = {path: wheel.read(path) for path in wheel.namelist()}
        self.assertEqual(sorted(files), sorted(["dmr_client.py"] + [info + path for path in (
            "licenses/LICENSE", "METADATA", "WHEEL", "entry_points.txt", "top_level.txt", "RECORD")]))
        with open(os.path.join(HERE, "dmr_client.py"), "rb") as f:
            self.assertEqual(files["dmr_client.py"], f.read())
        record = files[info + "RECORD"].decode().splitlines()
        self.assertEqual(sorted(line.split(",")[0] for line in record), sorted(files))
        for line in record:
            path, digest, size = line.split(",")
            if path != info + "RECORD":
                expected = base64.urlsafe_b64encode(hashlib.sha256(files[path]).digest()).rstrip(b"=").decode()
                self.assertEqual((digest, int(size)), ("sha256=" + expected, len(files[path])), path)
        config = configparser.ConfigParser()
        config.read(os.path.join(HERE, "setup.cfg"))
        metadata, body = files[info + "METADATA"].decode().split("\n\n", 1)
        fields = [tuple(line.split(": ", 1)) for line in metadata.splitlines()]
        for field in (("Metadata-Version", "2.4"), ("Name", "dmr-client"), ("Version", version),
                      ("Summary", config["metadata"]["description"]), ("License", "MIT"),
                      ("Requires-Python", ">=3.8"), ("Description-Content-Type", "text/markdown"),
                      ("License-File", "LICENSE"), ("Classifier", "Programming Language :: Python :: 3.13"),
                      ("Keywords", "docker,model-runner,dmr,llama.cpp,openai,llm,sse")):
            self.assertIn(field, fields)
        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            self.assertEqual(body, f.read())
        self.assertEqual(files[info + "entry_points.txt"], b"[console_scripts]\ndmr-client = dmr_client:main\n")
        self.assertIn(b"Tag: py3-none-any\n", files[info + "WHEEL"])

    def test_the_sdist_builds_the_same_wheel_again(self):
        import tarfile

        with mock.patch.dict(os.environ, {"SOURCE_DATE_EPOCH": "1700000000"}):
            name = self.backend.build_sdist(self.folder)
            wheel = self.backend.build_wheel(self.folder)
            with open(os.path.join(self.folder, wheel), "rb") as f:
                first = f.read()
            self.assertEqual(self.backend.build_wheel(self.folder), wheel)
            with open(os.path.join(self.folder, wheel), "rb") as f:
                self.assertEqual(f.read(), first)   # reproducible
            with tarfile.open(os.path.join(self.folder, name)) as sdist:
                stem = name[:-len(".tar.gz")]
                self.assertEqual(sorted(sdist.getnames()), sorted(stem + "/" + path for path in (
                    "PKG-INFO", "LICENSE", "README.md", "dmr_client.py", "pyproject.toml", "setup.cfg",
                    "tools/build_backend.py")))
                unpacked = os.path.join(self.folder, "unpacked")
                sdist.extractall(unpacked, filter="data") if hasattr(tarfile, "data_filter") else sdist.extractall(unpacked)
            again = self.backend.Project(os.path.join(unpacked, stem))
            os.mkdir(os.path.join(self.folder, "again"))
            rebuilt = self.backend._write_wheel(os.path.join(self.folder, "again"), again, {
                "dmr_client.py": again.read("dmr_client.py")})
            with open(os.path.join(self.folder, "again", rebuilt), "rb") as f:
                self.assertEqual(f.read(), first)


if __name__ == "__main__":
    unittest.main()
