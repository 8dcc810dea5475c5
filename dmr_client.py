"""A one-file, dependency-free client for Docker Model Runner (DMR).

Docker Model Runner serves local LLMs behind an OpenAI-compatible API.  This
module talks to it (or to any llama.cpp / OpenAI-compatible server) with the
standard library alone::

    import dmr_client

    client = dmr_client.Client()          # http://localhost:12434, llama.cpp
    reply = client.chat("ai/smollm2", [{"role": "user", "content": "Hi!"}])
    print(reply.choices[0].message.content)

    with client.chat("ai/smollm2", messages, stream=True) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                print(choice.delta.get("content") or "", end="", flush=True)

It is also a command line: ``python dmr_client.py chat -m ai/smollm2 "Hi"``.

The module reads top to bottom in layers: defaults, errors, data types, pure
parsing and URL rules (no I/O: feed bytes, get events), the HTTP transport,
streams, the Client, the command line.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import select
import socket
import sys
import threading
import time
import urllib.parse

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs import time; with postponed annotations it is only needed here
    import http.client
    from typing import Any, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

    Headers = Mapping[str, str]
    Message = Mapping[str, Any]
else:
    http = None   # the http package, with http.client loaded: see _http_client()


def _http_client() -> Any:
    """http.client, imported the first time a Client is made.

    http.client (with ssl and email, which it imports) is most of what this
    module would cost to import; a program that only imports dmr_client, or
    uses its parsers, does not pay for it.
    """
    global http
    if http is None:
        import http.client
    return http.client

__all__ = [
    "__version__",
    "DEFAULT_BASE_URL",
    "DEFAULT_ENGINE",
    "DEFAULT_API_KEY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "KNOWN_ENGINES",
    "MAX_EVENT_BYTES",
    "CONTAINER_BASE_URL",
    "DOCKER_SOCKET_PATHS",
    "DMRError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "StreamError",
    "PullError",
    "InvalidResponseError",
    "SSEError",
    "AttrDict",
    "loads",
    "SSEEvent",
    "SSEDecoder",
    "iter_sse",
    "ChunkedDecoder",
    "normalize_base_url",
    "split_model",
    "parse_error_body",
    "parse_retry_after",
    "quote_model_path",
    "fold_chat_chunks",
    "fold_completion_chunks",
    "parse_pull_line",
    "Stream",
    "ChatStream",
    "CompletionStream",
    "PullStream",
    "Client",
    "main",
]

# ---------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------

__version__ = "0.1.0"

#: Where DMR listens on the host (Docker Desktop with host TCP on, Docker Engine).
DEFAULT_BASE_URL = "http://localhost:12434"
#: The engine DMR routes to when a URL or model does not name one.
DEFAULT_ENGINE = "llama.cpp"
#: DMR reads no key; OpenAI-style tooling insists on one, so we send this.
DEFAULT_API_KEY = "dummy-key"
#: The inference engines DMR knows (``/engines/<name>/v1``).
KNOWN_ENGINES = ("llama.cpp", "vllm", "mlx", "sglang", "diffusers")

#: Seconds of silence allowed while reading; the first byte waits for a model load.
DEFAULT_TIMEOUT = 600.0
#: Seconds allowed to open a TCP connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Extra attempts after a failure that is safe to retry.
DEFAULT_MAX_RETRIES = 2
#: Largest SSE line, and largest data of one SSE event, held in memory.
MAX_EVENT_BYTES = 32 * 1024 * 1024

#: The name Docker Desktop gives DMR inside containers (port 80).
CONTAINER_HOST = "model-runner.docker.internal"
CONTAINER_BASE_URL = "http://" + CONTAINER_HOST
#: Docker Desktop's sockets; DMR answers on them under DOCKER_SOCKET_PREFIX.
DOCKER_SOCKET_PATHS = ("~/.docker/run/docker.sock", "/var/run/docker.sock")
DOCKER_SOCKET_PREFIX = "/exp/vDD4.40"

ENV_BASE_URL = "DOCKER_MODEL_RUNNER_API_BASE"
ENV_HOST = "MODEL_RUNNER_HOST"
ENV_API_KEY = "DOCKER_MODEL_RUNNER_API_KEY"

USER_AGENT = "dmr-client/" + __version__
#: LiteLLM's provider prefix, accepted in model names so LiteLLM code ports as is.
LITELLM_PREFIX = "docker_model_runner/"

RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504))
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: A server asking for a longer pause than this gets an error, not a sleeping client.
MAX_RETRY_AFTER = 60.0

READ_CHUNK = 64 * 1024
MAX_ERROR_BODY = 1024 * 1024
MAX_IDLE_CONNECTIONS = 16
#: After ``[DONE]`` the rest of the body is read (so the connection can be
#: reused) for at most this many seconds and bytes; past that it is closed.
DRAIN_SECONDS = 1.0
DRAIN_BYTES = 64 * 1024

LOGGER_NAME = "dmr_client"
_DEBUG = 10   # logging.DEBUG


class _Log:
    """logging.getLogger("dmr_client"), without importing logging until someone has.

    A program that never imported logging cannot have configured it, so there
    is nothing to log to; this saves every user logging's import time and
    memory.  Configure the logger as usual: it is found at the next call.
    """

    _logger: Any = None

    def _get(self) -> Any:
        if self._logger is None:
            logging = sys.modules.get("logging")
            if logging is None:
                return None
            self._logger = logging.getLogger(LOGGER_NAME)
        return self._logger

    def debugging(self) -> bool:
        logger = self._get()
        return logger is not None and logger.isEnabledFor(_DEBUG)

    def debug(self, message: str, *args: Any) -> None:
        if self.debugging():
            self._logger.debug(message, *args)

    def warning(self, message: str, *args: Any) -> None:
        if self._get() is None:
            import logging  # noqa: F401  (a warning is worth the import: logging's last resort prints it)
        self._get().warning(message, *args)


_log = _Log()

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class DMRError(Exception):
    """Base class of every error this module raises about a request."""


class APIConnectionError(DMRError):
    """The server could not be reached, or the connection broke.

    Also raised when a stream ends before it is complete: the answer received
    so far is then known to be cut short (``chunks_received`` says how much).
    """

    def __init__(self, message: str, *, url: Optional[str] = None, chunks_received: int = 0):
        super().__init__(message)
        self.message = message
        self.url = url
        self.chunks_received = chunks_received


class APITimeoutError(APIConnectionError):
    """Connecting or reading took longer than the configured timeout."""


class APIStatusError(DMRError):
    """The server answered with a non-success HTTP status.

    ``status_code`` is the status, ``message`` the server's own message (from
    JSON ``error.message``, a string ``error``, ``message``, or the plain-text
    body DMR sends), ``body`` the raw body text and ``headers`` the response
    headers.  ``str(error)`` adds the URL and, where we know one, what to do.
    """

    def __init__(self, message: str, *, status_code: int, body: str = "", headers: Any = None,
                 url: Optional[str] = None, hint: Optional[str] = None,
                 error_type: Optional[str] = None, code: Any = None):
        text = "HTTP %d from %s: %s" % (status_code, url or "the server", message)
        if hint:
            text += " -- " + hint
        super().__init__(text)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.headers = headers
        self.url = url
        self.hint = hint
        self.type = error_type
        self.code = code


class BadRequestError(APIStatusError):
    """HTTP 400: the request was malformed or too long for the model."""


class AuthenticationError(APIStatusError):
    """HTTP 401."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown model (not pulled), engine or path."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422."""


class RateLimitError(APIStatusError):
    """HTTP 429."""


class InternalServerError(APIStatusError):
    """HTTP 500 and above (503 "Loading model" included, once retries are spent)."""


_STATUS_ERRORS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


class StreamError(DMRError):
    """The server reported an error inside a stream that had already started.

    ``message`` is the server's message, ``body`` the raw event data.
    """

    def __init__(self, message: str, *, body: str = "", error_type: Optional[str] = None,
                 code: Any = None, chunks_received: int = 0):
        super().__init__("error in the middle of the stream: " + message)
        self.message = message
        self.body = body
        self.type = error_type
        self.code = code
        self.chunks_received = chunks_received


class PullError(DMRError):
    """DMR reported that pulling a model failed (``message`` is DMR's own text)."""

    def __init__(self, message: str, *, event: Optional[Mapping[str, Any]] = None):
        super().__init__("pull failed: " + message)
        self.message = message
        self.event = event


class InvalidResponseError(DMRError):
    """A success response whose body is not what the API promises (e.g. not JSON)."""

    def __init__(self, message: str, *, body: str = "", status_code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.body = body
        self.status_code = status_code


class SSEError(DMRError, ValueError):
    """A Server-Sent-Events stream broke a limit this parser keeps (see MAX_EVENT_BYTES)."""


# ---------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------


class AttrDict(dict):
    """A dict whose keys can also be read as attributes.

    ``reply.choices[0].message.content`` and
    ``reply["choices"][0]["message"]["content"]`` read the same value.  A
    missing key raises AttributeError (or KeyError with ``[]``).  Keys that
    are also dict methods (``items``, ``keys``, ``get`` ...) need ``[]``.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError("%s has no key %r (keys: %s)"
                                 % (type(self).__name__, name, ", ".join(map(str, self)))) from None

    def __dir__(self) -> List[str]:
        names = [key for key in self if isinstance(key, str) and key.isidentifier()]
        return sorted(set(super().__dir__()).union(names))


#: Parses JSON into AttrDicts; one shared decoder, as json.loads(..., object_pairs_hook=)
#: would build a new one per call.
_json_decoder = json.JSONDecoder(object_pairs_hook=AttrDict)
_decode_json = _json_decoder.decode
_scan_json = _json_decoder.scan_once   # type: ignore[attr-defined]  # set by JSONDecoder.__init__


def _decode_event(text: str) -> Any:
    """_decode_json for one SSE payload, without decode()'s two whitespace regexes.

    Any text the scanner does not take whole (whitespace, trailing data, bad
    JSON) goes through decode(), which parses it or says what is wrong.
    """
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return _decode_json(text)
    return value if end == len(text) else _decode_json(text)


def loads(data: Any) -> Any:
    """Parse JSON text or UTF-8 bytes into AttrDicts and lists."""
    return _decode_json(data if isinstance(data, str) else data.decode("utf-8"))


SSEEvent = collections.namedtuple("SSEEvent", "event data id retry")
SSEEvent.__doc__ = """One dispatched Server-Sent Event.

``event`` is the type ("message" unless the stream named one), ``data`` the
joined data lines, ``id`` the last event ID seen so far ("" if none) and
``retry`` the last valid reconnection time in milliseconds (None if none).
"""

# ---------------------------------------------------------------------------
# Pure parsing: Server-Sent Events, URLs, model names, error bodies
# ---------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"
_new_tuple = tuple.__new__   # builds an SSEEvent without namedtuple's Python-level __new__


class SSEDecoder:
    """Incremental Server-Sent-Events parser: feed bytes, get events (no I/O).

    Follows the WHATWG HTML rules: one leading BOM is dropped; lines end at
    CR, LF or CRLF (also split across feeds) and nowhere else, so U+2028 in
    JSON is safe; ``:`` starts a comment; one space after the colon is
    removed; data lines are joined with LF; an event is dispatched at a blank
    line and only if it has data; the id persists and an id containing NUL is
    ignored; retry takes ASCII digits only; whatever is pending at the end of
    the stream is discarded.

    A line, or the data of one event, longer than *max_event_bytes* raises
    SSEError, so a peer that never ends a line cannot exhaust memory.

    *extra_fields* names non-standard fields that are reported at once as an
    event of that type (llama.cpp once sent errors as an ``error:`` field,
    which the standard rules would silently drop).
    """

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES, extra_fields: Iterable[str] = ()):
        self.max_event_bytes = max_event_bytes
        self.last_event_id = ""
        self.retry: Optional[int] = None
        self._extra = frozenset(field.encode("ascii") for field in extra_fields)
        self._head: Optional[bytes] = b""   # first bytes until the BOM question is settled
        self._partial: List[bytes] = []     # pieces of a line whose end has not arrived
        self._partial_size = 0
        self._skip_lf = False               # the last feed ended in CR: a leading LF is its pair
        self._data: List[bytes] = []
        self._data_size = 0
        self._event_type = b""

    def feed(self, chunk: bytes) -> List[SSEEvent]:
        """Parse *chunk* and return the events it completes (often none or one)."""
        return list(self.events(chunk))

    def events(self, chunk: bytes) -> Iterator[SSEEvent]:
        """feed() as a generator: each event as soon as its lines are parsed.

        A reader handed many events in one network read gets the first one
        without waiting for the rest to be parsed.  Exhaust it before the next
        call.
        """
        if type(chunk) is not bytes:
            chunk = _as_bytes(chunk)
        if self._head is not None:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._keep_partial(chunk)
            return
        if self._partial:
            self._partial.append(chunk)
            chunk = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._keep_partial(tail)
        data = self._data
        limit = self.max_event_bytes
        for line in lines:
            if line[:6] == b"data: ":   # the shape of nearly every line an LLM server sends
                self._data_size += len(line) - 5
                if self._data_size > limit:
                    self._add_data(line)   # raises with the message
                data.append(line[6:])
            elif line:
                extra = self._field(line)
                if extra is not None:
                    yield extra
                data = self._data
            elif data:
                yield self._dispatch()
                data = self._data
            else:
                self._event_type = b""

    def close(self) -> None:
        """End of stream: an event without its blank line is discarded, as the rules say."""
        self._partial = []
        self._partial_size = 0
        self._data = []
        self._data_size = 0
        self._event_type = b""

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = (self._head or b"") + chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        return head[len(_BOM):] if head.startswith(_BOM) else head

    def _keep_partial(self, piece: bytes) -> None:
        self._partial_size += len(piece)
        if self._partial_size > self.max_event_bytes:
            raise SSEError("an SSE line grew past %d bytes without ending; the stream is not "
                           "SSE or is broken (raise max_event_bytes if such lines are expected)"
                           % self.max_event_bytes)
        self._partial.append(piece)

    def _add_data(self, value: bytes) -> None:
        self._data_size += len(value) + 1
        if self._data_size > self.max_event_bytes:
            raise SSEError("one SSE event carried more than %d bytes of data "
                           "(raise max_event_bytes if such events are expected)" % self.max_event_bytes)
        self._data.append(value)

    def _field(self, line: bytes) -> Optional[SSEEvent]:
        """Apply one non-blank line that is not ``data: ...``; an extra field is returned as its event."""
        if line[:1] == b":":
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._add_data(value)
        elif name == b"event":
            self._event_type = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit() is ASCII-only, as the rules require
                self.retry = int(value)
        elif name in self._extra:
            return _new_tuple(SSEEvent, (name.decode("ascii"), value.decode("utf-8", "replace"),
                                         self.last_event_id, self.retry))
        return None

    def _dispatch(self) -> SSEEvent:
        data = self._data
        raw = data[0] if len(data) == 1 else b"\n".join(data)
        event_type = self._event_type.decode("utf-8", "replace") if self._event_type else "message"
        self._data = []
        self._data_size = 0
        self._event_type = b""
        return _new_tuple(SSEEvent, (event_type, raw.decode("utf-8", "replace"), self.last_event_id, self.retry))


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    if isinstance(chunk, str):
        raise TypeError("SSE input must be bytes, not str: pass the raw bytes from the socket "
                        "(or text.encode('utf-8'))")
    raise TypeError("SSE input must be bytes, not %s" % type(chunk).__name__)


def iter_sse(chunks: Iterable[bytes], *, max_event_bytes: int = MAX_EVENT_BYTES) -> Iterator[SSEEvent]:
    """Yield the SSEEvents in an iterable of byte chunks split anywhere.

    Each event is yielded as soon as the chunk holding its blank line has been
    read; nothing waits for later chunks.  See SSEDecoder for the rules.
    """
    decoder = SSEDecoder(max_event_bytes=max_event_bytes)
    for chunk in chunks:
        yield from decoder.events(chunk)
    decoder.close()


class ChunkedDecoder:
    """Incremental decoder of HTTP/1.1 chunked transfer coding (no I/O).

    feed() takes raw body bytes as they arrive and returns the payload they
    complete; pieces() yields it chunk by chunk; ``done`` turns true after the
    last chunk and its trailers.  http.client decodes one chunk per read1()
    call, with a regex and several calls per chunk; LLM servers send one small
    chunk per token, so a stream decodes its body here, a network read at a time.
    """

    def __init__(self) -> None:
        self.done = False
        self._pending = b""      # an unfinished size or trailer line
        self._left = 0           # payload bytes still due in the current chunk
        self._state = "size"     # size | data | end-of-data | trailer

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The payload in *data*, one piece per chunk as it is decoded.  Exhaust it
        before the next call."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, end = 0, len(data)
        while pos < end and not self.done:
            if self._state == "data":
                take = min(self._left, end - pos)
                yield data[pos:pos + take]
                pos += take
                self._left -= take
                if not self._left:
                    self._state = "end-of-data"
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._pending = data[pos:]
                if len(self._pending) > 4096:
                    raise _http_client().HTTPException("malformed chunked body: a size line over 4 KiB")
                return
            line = data[pos:newline].rstrip(b"\r")
            pos = newline + 1
            if self._state == "size":
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    raise _http_client().HTTPException("malformed chunked body: bad chunk size %r"
                                                       % line[:40]) from None
                stop = pos + size
                if size and data[stop:stop + 2] == b"\r\n":   # the usual case: the whole chunk is here
                    yield data[pos:stop]
                    pos = stop + 2
                else:
                    self._left, self._state = size, ("data" if size else "trailer")
            elif self._state == "end-of-data":
                if line:
                    raise _http_client().HTTPException("malformed chunked body: a chunk longer than its size")
                self._state = "size"
            else:   # trailer lines, up to a blank one
                self.done = not line


# Patterns are compiled on first use (re caches them), which keeps the import cheap.
_SCHEME = r"([A-Za-z][A-Za-z0-9+.\-]*)://"
_ENGINE_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_BAD_HOST_CHARS = r"[\s/\\?#@\x00-\x1f\x7f]"
#: Endpoints people paste as a base URL; the root is what comes before them.
_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/models",
              "/responses", "/messages")


class _Root(collections.namedtuple("_Root", "origin prefix engine plain")):
    """A parsed base URL: ``origin`` (scheme://host[:port]), a ``prefix`` path,
    the ``engine`` (None: let DMR pick) and whether it is a ``plain`` /v1 root
    that no engine rewrites."""

    __slots__ = ()

    def api_path(self, engine: Optional[str] = None) -> str:
        """The path of the OpenAI-compatible root, for *engine* if one applies."""
        if self.plain:
            return self.prefix
        engine = engine or self.engine
        return "%s/engines/%s/v1" % (self.prefix, engine) if engine else self.prefix + "/engines/v1"

    def url(self, engine: Optional[str] = None) -> str:
        return self.origin + self.api_path(engine)

    def dmr_path(self) -> str:
        """The path of DMR's own API (/models, /engines/status ...): the root without
        /engines/... or the /v1 alias."""
        if self.plain:
            return self.prefix[: -len("/v1")] if self.prefix.endswith("/v1") else self.prefix
        return self.prefix

    def engine_path(self, engine: Optional[str] = None) -> str:
        """Where DMR's per-engine routes outside /v1 live (/rerank, /score)."""
        if self.plain:
            return self.dmr_path()
        engine = engine or self.engine
        return "%s/engines/%s" % (self.prefix, engine) if engine else self.prefix + "/engines"


def _configured_base_url() -> Optional[str]:
    return os.environ.get(ENV_BASE_URL) or os.environ.get(ENV_HOST) or None


def _base_url_from_env() -> str:
    return _configured_base_url() or DEFAULT_BASE_URL


def _parse_base_url(url: str) -> _Root:
    if not isinstance(url, str):
        raise TypeError("base URL must be a str, not %s" % type(url).__name__)
    text = url.strip()
    if not text:
        raise ValueError("base URL is empty: use e.g. %r (or leave it unset for the default)"
                         % DEFAULT_BASE_URL)
    scheme = re.match(_SCHEME, text)
    if scheme is None:
        text = "http://" + text          # 'localhost:12434', as MODEL_RUNNER_HOST allows
    elif scheme.group(1).lower() == "tcp":
        text = "http://" + text[scheme.end():]   # DOCKER_HOST style
    parts = urllib.parse.urlsplit(text)
    shown = _redact(text)
    scheme_name = parts.scheme.lower()
    if scheme_name not in ("http", "https"):
        raise ValueError("base URL %r has scheme %r: only http:// and https:// are supported"
                         % (shown, parts.scheme))
    if "@" in parts.netloc:
        raise ValueError("base URL %r carries credentials (user:password@): they are not sent. "
                         "Remove them and pass api_key= (sent as a Bearer token) or headers=" % shown)
    if parts.query or parts.fragment or text.rstrip().endswith(("?", "#")):
        raise ValueError("base URL %r has a query or fragment: give only scheme, host, port and path"
                         % shown)
    host = parts.hostname
    if not host:
        raise ValueError("base URL %r has no host: use e.g. %r" % (shown, DEFAULT_BASE_URL))
    if re.search(_BAD_HOST_CHARS, host):
        raise ValueError("base URL %r has an invalid host %r" % (shown, host))
    try:
        port = parts.port
    except ValueError:
        raise ValueError("base URL %r has a bad port: it must be a number from 1 to 65535"
                         % shown) from None
    if port == 0:
        raise ValueError("base URL %r has port 0: it must be a number from 1 to 65535" % shown)
    host = _destination_host(host)
    netloc = "[%s]" % host if ":" in host else host
    if port is not None:
        netloc += ":%d" % port
    # Requests are written as ASCII: anything else in the path is percent-encoded, once.
    path = urllib.parse.quote(parts.path, safe="/%!$&'()*+,;=:@-._~")
    prefix, engine, plain = _split_api_path(path, shown)
    return _Root("%s://%s" % (scheme_name, netloc), prefix, engine, plain)


def _redact(url: str) -> str:
    """*url* without any user:password@, for messages."""
    return re.sub(r"(://)[^/@]*@", r"\1***@", url)


def _destination_host(host: str) -> str:
    # 0.0.0.0 and :: are listen addresses (DMR's --host 0.0.0.0); a client means loopback.
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _split_api_path(path: str, shown: str) -> Tuple[str, Optional[str], bool]:
    """Return (prefix, engine, plain) for the path of a base URL."""
    path = re.sub("/{2,}", "/", path).rstrip("/")
    for endpoint in _ENDPOINTS:
        if path.endswith("/v1" + endpoint):
            path = path[: -len(endpoint)]
            break
    segments = path.split("/")
    if segments[-1] == "v1":
        if len(segments) >= 3 and segments[-2] == "engines":
            return "/".join(segments[:-2]), None, False
        if len(segments) >= 4 and segments[-3] == "engines":
            return "/".join(segments[:-3]), _url_engine(segments[-2], shown), False
        return path, None, True
    if segments[-1] == "engines":
        return "/".join(segments[:-1]), None, False
    if len(segments) >= 3 and segments[-2] == "engines":
        return "/".join(segments[:-2]), _url_engine(segments[-1], shown), False
    return path, DEFAULT_ENGINE, False


def _url_engine(name: str, shown: str) -> str:
    # An engine this module does not know yet is allowed in a URL: a newer DMR may have it.
    if not re.fullmatch(_ENGINE_NAME, name):
        raise ValueError("base URL %r names an invalid engine %r" % (shown, name))
    return name


def _check_engine(engine: Optional[str]) -> Optional[str]:
    if engine is None:
        return None
    if not isinstance(engine, str):
        raise TypeError("engine must be a str, not %s" % type(engine).__name__)
    if engine not in KNOWN_ENGINES:
        raise ValueError("unknown engine %r: use one of %s (an engine newer than this module "
                         "can be named in the base URL: .../engines/<name>/v1)"
                         % (engine, ", ".join(KNOWN_ENGINES)))
    return engine


def normalize_base_url(url: Optional[str] = None, engine: Optional[str] = None) -> str:
    """Return the OpenAI-compatible root for *url*, without a trailing slash.

    With *url* None the environment decides: DOCKER_MODEL_RUNNER_API_BASE, then
    MODEL_RUNNER_HOST, then DEFAULT_BASE_URL.  A bare DMR address gets
    ``/engines/<engine>/v1`` (engine: *engine*, else the one in the URL, else
    DEFAULT_ENGINE); ``/engines`` and ``/engines/v1`` let DMR pick the engine;
    a plain ``.../v1`` root is kept as it is.  A scheme is optional, ``tcp://``
    means http, ``0.0.0.0`` means loopback, and a pasted endpoint such as
    ``.../v1/chat/completions`` is cut back to its root.  Raises ValueError for
    what cannot be a server address.

    >>> normalize_base_url("localhost:12434")
    'http://localhost:12434/engines/llama.cpp/v1'
    >>> normalize_base_url("http://127.0.0.1:8080/v1", engine="vllm")
    'http://127.0.0.1:8080/v1'
    """
    root = _parse_base_url(_base_url_from_env() if url is None else url)
    return root.url(_check_engine(engine))


def split_model(model: str) -> Tuple[Optional[str], str]:
    """Split a model name into (engine or None, the name to send).

    ``docker_model_runner/`` (LiteLLM's provider prefix) is removed; a first
    segment that is a known engine selects it and is removed; anything else is
    sent exactly as given.

    >>> split_model("docker_model_runner/llama.cpp/ai/smollm2")
    ('llama.cpp', 'ai/smollm2')
    >>> split_model("hf.co/org/repo:Q4_K_M")
    (None, 'hf.co/org/repo:Q4_K_M')
    """
    if not isinstance(model, str):
        raise TypeError("model must be a str such as 'ai/smollm2', not %s" % type(model).__name__)
    name = model[len(LITELLM_PREFIX):] if model.startswith(LITELLM_PREFIX) else model
    engine = None
    first, slash, rest = name.partition("/")
    if slash and first in KNOWN_ENGINES:
        engine, name = first, rest
    if not name.strip():
        raise ValueError("model %r names no model: pass a name such as 'ai/smollm2' "
                         "(see `docker model ls`)" % model)
    return engine, name


def parse_error_body(body: str) -> Tuple[str, Optional[str], Any]:
    """Return (message, type, code) from an error body of either family.

    Engines answer JSON (``{"error": {"message", "type", "code"}}``, a string
    ``error``, or a top-level ``message``); DMR itself answers plain text.
    The message is "" when the body says nothing.
    """
    text = body.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text, None, None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message, _str_or_none(error.get("type")), error.get("code")
        elif isinstance(error, str) and error:
            return error, _str_or_none(parsed.get("type")), parsed.get("code")
        message = parsed.get("message")
        if isinstance(message, str) and message:
            return message, _str_or_none(parsed.get("type")), parsed.get("code")
    return text, None, None


def _str_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


_NOT_IN_A_REFERENCE = r"[\x00-\x20\x7f]"


def quote_model_path(name: str) -> str:
    """Quote a model reference for a URL path; its slashes stay path separators.

    ``?``, ``#``, ``%`` and other specials are percent-encoded, so no name can
    change the route or the request line.  Whitespace, control characters,
    and empty, ``.`` or ``..`` segments cannot be part of a model reference:
    ValueError.

    >>> quote_model_path("hf.co/org/repo:Q4_K_M")
    'hf.co/org/repo:Q4_K_M'
    """
    if not isinstance(name, str):
        raise TypeError("model name must be a str such as 'ai/smollm2', not %s" % type(name).__name__)
    if not name or re.search(_NOT_IN_A_REFERENCE, name):
        raise ValueError("%r cannot be a model reference: it is empty or holds whitespace or control "
                         "characters (e.g. 'ai/smollm2:latest')" % (name,))
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise ValueError("%r cannot be a model reference: it has an empty, '.' or '..' path segment"
                         % (name,))
    return urllib.parse.quote(name, safe="/:@")


def fold_chat_chunks(chunks: Iterable[Mapping[str, Any]]) -> AttrDict:
    """Fold streamed ``chat.completion.chunk`` objects into the ``chat.completion``
    they add up to.

    Per choice (``n > 1`` too): text deltas (``content``, ``reasoning_content``,
    ``reasoning``, ``refusal`` ...) are joined, ``tool_calls`` are merged by
    ``index`` (``id`` and ``name`` arrive once, ``arguments`` in fragments, the
    same index may come twice in one chunk), the last ``finish_reason`` wins and
    ``logprobs.content`` lists are concatenated.  ``usage`` comes from the
    ``choices: []`` chunk; ``id``, ``model``, ``created`` from the first chunk.
    """
    result = AttrDict(object="chat.completion")
    choices: Dict[int, AttrDict] = {}
    texts: Dict[int, Dict[str, List[str]]] = {}
    calls: Dict[int, Dict[int, AttrDict]] = {}
    for chunk in chunks:
        _fold_header(result, chunk)
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            folded = choices.get(index)
            if folded is None:
                folded = choices[index] = AttrDict(
                    index=index, message=AttrDict(role="assistant", content=None), finish_reason=None)
                texts[index] = {}
            message = folded["message"]
            for key, value in (choice.get("delta") or {}).items():
                if key == "tool_calls":
                    _merge_tool_calls(calls.setdefault(index, {}), value)
                elif key == "function_call" and isinstance(value, dict):
                    _merge_function(message.setdefault("function_call", AttrDict(name="", arguments="")), value)
                elif isinstance(value, str) and key != "role":
                    texts[index].setdefault(key, []).append(value)
                elif value is not None:
                    message[key] = _attrs(value)
            _fold_choice_end(folded, choice)
    for index, folded in choices.items():
        for key, parts in texts[index].items():
            folded["message"][key] = "".join(parts)
        if index in calls:
            folded["message"]["tool_calls"] = [calls[index][i] for i in sorted(calls[index])]
    result["choices"] = [choices[i] for i in sorted(choices)]
    return result


def fold_completion_chunks(chunks: Iterable[Mapping[str, Any]]) -> AttrDict:
    """Fold streamed ``/completions`` chunks into one ``text_completion``."""
    result = AttrDict(object="text_completion")
    choices: Dict[int, AttrDict] = {}
    texts: Dict[int, List[str]] = {}
    for chunk in chunks:
        _fold_header(result, chunk)
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if index not in choices:
                choices[index] = AttrDict(index=index, text="", finish_reason=None)
                texts[index] = []
            if choice.get("text"):
                texts[index].append(choice["text"])
            _fold_choice_end(choices[index], choice)
    for index, folded in choices.items():
        folded["text"] = "".join(texts[index])
    result["choices"] = [choices[i] for i in sorted(choices)]
    return result


def _fold_header(result: AttrDict, chunk: Mapping[str, Any]) -> None:
    for key in ("id", "created", "model", "system_fingerprint"):
        if key not in result and chunk.get(key) is not None:
            result[key] = chunk[key]
    if chunk.get("usage") is not None:
        result["usage"] = _attrs(chunk["usage"])


def _fold_choice_end(folded: AttrDict, choice: Mapping[str, Any]) -> None:
    if choice.get("finish_reason") is not None:
        folded["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        folded.setdefault("logprobs", AttrDict(content=[]))["content"].extend(_attrs(logprobs["content"]))


def _attrs(value: Any) -> Any:
    """*value* with every dict in it an AttrDict (chunks from json.loads without our hook)."""
    if isinstance(value, dict):
        return value if type(value) is AttrDict else AttrDict((k, _attrs(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_attrs(item) for item in value]
    return value


def _merge_tool_calls(calls: Dict[int, AttrDict], fragments: Any) -> None:
    for fragment in fragments or ():
        index = fragment.get("index", 0)
        call = calls.get(index)
        if call is None:
            call = calls[index] = AttrDict(id=None, type="function", function=AttrDict(name="", arguments=""))
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        if isinstance(fragment.get("function"), dict):
            _merge_function(call["function"], fragment["function"])


def _merge_function(function: AttrDict, fragment: Mapping[str, Any]) -> None:
    # The name comes whole in one fragment; arguments come in pieces to be joined.
    if fragment.get("name") and not function["name"]:
        function["name"] = fragment["name"]
    if fragment.get("arguments"):
        function["arguments"] += fragment["arguments"]


def parse_pull_line(line: str) -> Optional[AttrDict]:
    """Parse one line of DMR's pull progress; None for a blank line.

    DMR HTML-escapes each line unless the request said exactly ``Accept:
    application/json``, so entities are undone first.  A ``type: "error"``
    event, or a line that is not JSON (the plain-text error DMR appends after
    a failure), raises PullError with DMR's message.
    """
    text = line.strip()
    if not text:
        return None
    if "&" in text:
        import html  # small, and only needed for escaped progress lines

        text = html.unescape(text)
    try:
        event = _decode_json(text)
    except ValueError:
        raise PullError(text) from None
    if not isinstance(event, AttrDict):
        raise PullError(text)
    if event.get("type") == "error":
        raise PullError(str(event.get("message") or text), event=event)
    return event


def parse_retry_after(headers: Any, now: Optional[float] = None) -> Optional[float]:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After``.

    Retry-After may be seconds or an HTTP date.  Returns None when neither
    header is present or readable.
    """
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
            if value == value and value >= 0:
                return value
        except ValueError:
            pass
    after = headers.get("retry-after")
    if not after:
        return None
    after = after.strip()
    try:
        value = float(after)
        return value if value == value and value >= 0 else None
    except ValueError:
        pass
    import email.utils  # already loaded by http.client; imported here to keep it local
    try:
        when = email.utils.parsedate_to_datetime(after)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _retry_delay(attempt: int) -> float:
    """Backoff before retry number *attempt* (0-based): 0.5 s doubling, capped, with jitter."""
    delay = min(INITIAL_RETRY_DELAY * (2 ** attempt), MAX_RETRY_DELAY)
    return delay * (1.0 - 0.25 * random.random())


def _is_local_host(host: str) -> bool:
    """Hosts a proxy must never see: loopback and Docker's own names."""
    host = host.lower().rstrip(".")
    return (host == "localhost" or host.endswith(".localhost") or host.startswith("127.")
            or host == "::1" or host == "docker.internal" or host.endswith(".docker.internal"))


def _error_hint(status: int, message: str, model: Optional[str], url: str, origin: str) -> Optional[str]:
    """What a user should do about an error status, where we know."""
    lowered = message.lower()
    if status == 404 and "model not found" in lowered:
        if model:
            return "the model is not in DMR's store: run `docker model pull %s`" % model
        return "the model is not in DMR's store: pull it with `docker model pull <model>`"
    if status == 404 and "backend not found" in lowered:
        return "DMR does not know the engine in this URL; use one of %s" % ", ".join(KNOWN_ENGINES)
    if status == 404 and lowered in ("not found", "404 page not found", "file not found"):
        return ("no such route at %s: check the base URL (DMR serves the OpenAI API under "
                "/engines/v1 or /engines/<engine>/v1)" % origin)
    if status == 401:
        return "the server wants an API key: pass api_key= or set %s" % ENV_API_KEY
    if status == 503:
        return ("the model is probably still loading; retry later or raise max_retries "
                "(the first request after a pull or an idle unload loads the model)")
    if "pooling" in lowered and ("not oai compatible" in lowered or "none" in lowered):
        return ("this model produces no embeddings (no pooling): use an embedding model such as "
                "ai/mxbai-embed-large or ai/nomic-embed-text-v1.5")
    if status == 400 and ("exceed" in lowered and "context" in lowered):
        return ("the prompt does not fit the model's context: shorten it or raise the context "
                "size (`docker model configure --context-size N <model>`)")
    if 300 <= status < 400:
        return ("redirects are not followed, so the API key never goes to another host; "
                "use the new address as base_url")
    return None


# ---------------------------------------------------------------------------
# Transport: pooled http.client connections
# ---------------------------------------------------------------------------

_Origin = collections.namedtuple("_Origin", "scheme host port proxy unix_socket")
_Proxy = collections.namedtuple("_Proxy", "host port authorization")


def _origin_for(root: _Root) -> _Origin:
    parts = urllib.parse.urlsplit(root.origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Origin(parts.scheme, parts.hostname, port, _proxy_for(parts.scheme, parts.hostname), None)


_UnixHTTPConnection: Any = None


def _unix_connection(path: str, timeout: Optional[float]) -> http.client.HTTPConnection:
    """An HTTPConnection over a Unix socket (Docker Desktop's docker.sock, DMR's own socket)."""
    global _UnixHTTPConnection
    if _UnixHTTPConnection is None:
        class _UnixHTTPConnection(_http_client().HTTPConnection):   # type: ignore[no-redef,misc]
            def __init__(self, path: str, timeout: Optional[float]):
                super().__init__("localhost", timeout=timeout)
                self.unix_socket = path

            def connect(self) -> None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(self.unix_socket)
                except BaseException:
                    sock.close()
                    raise
                self.sock = sock
    return _UnixHTTPConnection(path, timeout)


def _proxy_for(scheme: str, host: str) -> Optional[_Proxy]:
    """The proxy the environment sets for *host*, as urllib would use it, or None."""
    if _is_local_host(host):
        return None
    import urllib.request  # costs import time; only needed for non-local hosts

    proxy_url = urllib.request.getproxies().get(scheme)
    if not proxy_url or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy_url:
        proxy_url = "http://" + proxy_url
    parts = urllib.parse.urlsplit(proxy_url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ValueError("proxy %r from the environment is not supported: only http:// proxies "
                         "are (set NO_PROXY=%s to bypass it)" % (_redact(proxy_url), host))
    authorization = None
    if parts.username is not None:
        import base64

        pair = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return _Proxy(parts.hostname, parts.port or 80, authorization)


class _RetryableConnectionError(Exception):
    """Internal: wraps an APIConnectionError that happened before the request was sent."""

    def __init__(self, error: APIConnectionError, refused: bool = False):
        super().__init__(error)
        self.error = error
        self.refused = refused


class _Pool:
    """Keep-alive connections to one origin, shared safely between threads.

    Each request takes a connection for itself; a connection goes back only
    when its response was read to the end, so a socket never carries two
    requests at once and no reply is read by the wrong caller.
    """

    def __init__(self, origin: _Origin, connect_timeout: Optional[float], timeout: Optional[float]):
        self.origin = origin
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.closed = False

    def take(self) -> Tuple[http.client.HTTPConnection, bool]:
        """Return (connection, reused)."""
        while True:
            with self._lock:
                if self.closed:
                    raise DMRError("this Client is closed; create a new one")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self.connect(), False
            if _looks_alive(conn):
                return conn, True
            conn.close()

    def connect(self) -> http.client.HTTPConnection:
        origin = self.origin
        proxy = origin.proxy
        cls = http.client.HTTPSConnection if origin.scheme == "https" else http.client.HTTPConnection
        if origin.unix_socket:
            conn = _unix_connection(origin.unix_socket, self.connect_timeout)
        elif proxy is None:
            conn = cls(origin.host, origin.port, timeout=self.connect_timeout)
        elif origin.scheme == "https":
            conn = cls(proxy.host, proxy.port, timeout=self.connect_timeout)
            tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            conn.set_tunnel(origin.host, origin.port, headers=tunnel_headers)
        else:
            conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.connect_timeout)
        if origin.unix_socket:
            where = "unix socket " + origin.unix_socket
        elif proxy is None:
            where = "%s:%s" % (origin.host, origin.port)
        else:
            where = "proxy %s:%s" % (proxy.host, proxy.port)
        try:
            conn.connect()
        except socket.timeout:
            conn.close()
            raise _RetryableConnectionError(APITimeoutError(
                "connecting to %s took longer than %s s" % (where, self.connect_timeout))) from None
        except OSError as exc:
            conn.close()
            raise _RetryableConnectionError(APIConnectionError(
                "cannot connect to %s: %s" % (where, _describe_os_error(exc))),
                refused=isinstance(exc, (ConnectionRefusedError, FileNotFoundError))) from exc
        conn.sock.settimeout(self.timeout)
        return conn

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self.closed and conn.sock is not None and len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _host_header(origin: _Origin) -> str:
    if origin.unix_socket:
        return "localhost"
    host = origin.host
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = "[%s]" % host
    default = 443 if origin.scheme == "https" else 80
    return host if origin.port == default else "%s:%d" % (host, origin.port)


def _fixed_head(origin: _Origin, headers: Mapping[str, str]) -> bytes:
    """The header lines every request to *origin* carries, encoded once.

    http.client's putheader() validates and encodes each header on every
    request; these were validated when the Client was made.
    """
    lines = ["Host: " + _host_header(origin)]
    lines += ["%s: %s" % pair for pair in headers.items()]
    if origin.proxy is not None and origin.proxy.authorization and origin.scheme == "http":
        lines.append("Proxy-Authorization: " + origin.proxy.authorization)
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _running_in_container() -> bool:
    """True inside a Docker (or Podman) container."""
    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return True


def _looks_alive(conn: http.client.HTTPConnection) -> bool:
    """False if an idle keep-alive connection was closed by the server meanwhile."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable  # an idle connection is readable only at EOF (or on garbage)


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name (%s)" % (exc.strerror or exc)
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed after %d bytes, before the response was complete" % len(exc.partial)
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


class _Exchange:
    """One request and its response, holding the connection until it is settled."""

    __slots__ = ("pool", "conn", "response", "url", "settled", "_chunks", "_rest")

    def __init__(self, pool: _Pool, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, url: str):
        self.pool = pool
        self.conn = conn
        self.response = response
        self.url = url
        self.settled = False
        self._chunks: Optional[ChunkedDecoder] = None
        self._rest: Optional[Iterator[bytes]] = None

    def read_some(self) -> bytes:
        """The next piece of the body as soon as it arrives; b"" at its end.

        One network read at most, and the first chunk of a read is handed
        over before the rest is decoded: a streamed event never waits for
        bytes that come after it.  A body cut short raises (http.client's
        IncompleteRead or the socket's error), never a quiet end.
        """
        response = self.response
        if not response.chunked:
            return response.read1(READ_CHUNK)
        decoder = self._chunks
        if decoder is None:
            decoder = self._chunks = ChunkedDecoder()
        rest = self._rest
        if rest is not None:   # what the last network read held after its first chunk
            self._rest = None
            data = b"".join(rest)
            if data:
                return data
        while not decoder.done:
            raw = response.fp.read1(READ_CHUNK)
            if not raw:
                raise _http_client().IncompleteRead(b"", None)
            pieces = decoder.pieces(raw)
            for data in pieces:
                if data:
                    self._rest = pieces
                    return data
        response.close()   # the whole body was read here: http.client never saw it end
        return b""

    def read_body(self, limit: Optional[int] = None) -> bytes:
        """Read the whole body (at most *limit* bytes) and settle the connection."""
        try:
            body = self.response.read() if limit is None else self.response.read(limit)
        except socket.timeout:
            self.discard()
            raise APITimeoutError("no data from %s for %s s while reading the response"
                                  % (self.url, self.pool.timeout), url=self.url) from None
        except (OSError, http.client.HTTPException) as exc:
            self.discard()
            raise APIConnectionError("the response from %s was cut: %s"
                                     % (self.url, _describe_os_error(exc)), url=self.url) from exc
        self.finish()
        return body

    def finish(self) -> None:
        """The body was read to its end (or the rest is unwanted): reuse if possible."""
        if self.settled:
            return
        self.settled = True
        if self.response.isclosed() and not self.response.will_close:
            self.pool.give_back(self.conn)
        else:
            self.response.close()
            self.conn.close()

    def drain(self) -> None:
        """Read what follows a stream's end marker, briefly, so the connection can be reused."""
        response, sock = self.response, self.conn.sock
        try:
            if sock is not None:
                sock.settimeout(DRAIN_SECONDS)
            left = DRAIN_BYTES
            while left > 0 and not response.isclosed():
                data = self.read_some()
                if not data:
                    break
                left -= len(data)
            if sock is not None:
                sock.settimeout(self.pool.timeout)
        except (OSError, http.client.HTTPException):
            self.discard()
            return
        self.finish()

    def discard(self) -> None:
        """Close the connection: its response is unfinished or broken."""
        if self.settled:
            return
        self.settled = True
        self.response.close()
        self.conn.close()


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


class _Streamed:
    """An iterator over a live response: what Stream and PullStream share.

    Stopping early (close(), leaving the ``with`` block, or dropping it)
    closes the connection instead of reading the rest of the body.
    """

    def __init__(self, exchange: _Exchange):
        self._exchange = exchange
        self.url = exchange.url
        self._items = self._iter_items()

    def _iter_items(self) -> Generator[AttrDict, None, None]:
        raise NotImplementedError

    def _progress(self) -> Tuple[str, int, str, str]:
        """(what is read, items so far, their name, what a break means) for error messages."""
        raise NotImplementedError

    def _read(self) -> bytes:
        """The next piece of the body; a stall or a cut raises the matching APIConnectionError."""
        try:
            return self._exchange.read_some()
        except socket.timeout:
            what, count, unit, meaning = self._progress()
            raise APITimeoutError("%s stalled: nothing for %s s after %d %s; %s" % (
                what, self._exchange.pool.timeout, count, unit, meaning),
                url=self.url, chunks_received=count) from None
        except (OSError, http.client.HTTPException) as exc:
            what, count, unit, meaning = self._progress()
            raise APIConnectionError("%s was cut after %d %s (%s); %s" % (
                what, count, unit, _describe_os_error(exc), meaning),
                url=self.url, chunks_received=count) from exc

    def __iter__(self) -> Iterator[AttrDict]:
        return self._items   # the generator itself: no Python-level __next__ per item

    def __next__(self) -> AttrDict:
        return next(self._items)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading; an unfinished response's connection is closed, not reused."""
        self._items.close()
        self._exchange.discard()

    def __del__(self) -> None:
        # An abandoned, never-iterated response still holds a socket: close it, not the GC.
        exchange = getattr(self, "_exchange", None)
        if exchange is not None:
            exchange.discard()


class Stream(_Streamed):
    """The chunks of a streamed completion, each an AttrDict, as they arrive.

    Iterate it; use it as a context manager or call close() to stop early
    (the connection is then closed).  After a complete stream the connection
    goes back to the client's pool.  The stream is complete at ``[DONE]``, or
    at the end of the body once every choice has its ``finish_reason``; any
    other end raises APIConnectionError, and an error event raises
    StreamError, so a cut answer is never mistaken for a whole one.  A
    ``choices: []`` chunk carries ``usage`` when ``stream_options`` asks.

    final() reads what is left and returns the folded response; text() just
    its text.  ``status_code`` and ``headers`` describe the HTTP response;
    ``completed`` turns true at the end of a complete stream.  One stream is
    for one thread.
    """

    _fold = staticmethod(fold_chat_chunks)

    def __init__(self, exchange: _Exchange):
        self.status_code = exchange.response.status
        self.headers = exchange.response.headers
        self.completed = False
        self.chunks_received = 0
        self._received: List[AttrDict] = []
        self._error: Optional[BaseException] = None
        super().__init__(exchange)

    def __repr__(self) -> str:
        state = "completed" if self.completed else "open" if not self._exchange.settled else "closed"
        return "<%s %s %s, %d chunks>" % (type(self).__name__, self.url, state, self.chunks_received)

    def final(self) -> AttrDict:
        """Read the rest of the stream and return the whole response it adds up to.

        Raises what the stream raised if it broke (a cut is never folded into a
        result), and DMRError if it was closed before it completed.
        """
        for _ in self:
            pass
        if self._error is not None:
            raise self._error
        if not self.completed:
            raise DMRError("the stream was closed before it completed: its result is unknown")
        return self._fold(self._received)

    def text(self) -> str:
        """The text of the first choice of final()."""
        choices = self.final().choices
        return (choices[0].message.content or "") if choices else ""

    def _iter_items(self) -> Generator[AttrDict, None, None]:
        exchange = self._exchange
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._not_a_stream()
        feed = SSEDecoder(extra_fields=("error",)).events
        decode = _decode_event
        received = self._received
        finished: Dict[Any, bool] = {}   # choice index -> has its finish_reason
        try:
            while True:
                data = self._read()
                if not data:
                    break
                for event in feed(data):
                    text = event[1]
                    if text == "[DONE]":
                        self.completed = True
                        exchange.drain()
                        return
                    if event[0] != "message":
                        self._check_event(event)
                        continue
                    try:
                        chunk = decode(text)
                        choices = chunk.get("choices")
                    except (ValueError, AttributeError):
                        self._check_event(event)
                        raise
                    if "error" in chunk:
                        raise self._stream_error(text)
                    if choices:
                        for choice in choices:
                            if choice.__class__ is AttrDict:
                                index = choice.get("index", 0)
                                if choice.get("finish_reason") is not None:
                                    finished[index] = True
                                elif index not in finished:
                                    finished[index] = False
                    self.chunks_received += 1
                    received.append(chunk)
                    yield chunk
            if finished and all(finished.values()):
                self.completed = True
                exchange.finish()
                return
            raise APIConnectionError(
                "the stream from %s ended after %d chunks without [DONE] or a finish_reason: "
                "the answer is incomplete" % (self.url, self.chunks_received),
                url=self.url, chunks_received=self.chunks_received)
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            if not self.completed:
                exchange.discard()

    def _progress(self) -> Tuple[str, int, str, str]:
        return "the stream from " + self.url, self.chunks_received, "chunks", "the answer is incomplete"

    def _not_a_stream(self) -> None:
        """A JSON answer where an event stream was asked for: say what the server said instead."""
        body = self._exchange.read_body(MAX_ERROR_BODY).decode("utf-8", "replace")
        message, error_type, code = parse_error_body(body)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "error" in parsed:
            raise StreamError(message, body=body, error_type=error_type, code=code)
        raise InvalidResponseError("%s answered a streaming request with one JSON body instead of an "
                                   "event stream (does it support stream=True?)" % self.url, body=body,
                                   status_code=self.status_code)

    def _check_event(self, event: SSEEvent) -> None:
        """Raise for an event that is not a chunk: an error, or something not JSON."""
        if event.event == "error":
            raise self._stream_error(event.data)
        if event.event != "message":
            return   # a named event a chat stream does not define: not ours to interpret
        try:
            chunk = _decode_json(event.data)
        except ValueError:
            raise InvalidResponseError("the stream from %s sent an event that is not JSON: %.200r"
                                       % (self.url, event.data), body=event.data) from None
        if not isinstance(chunk, dict):
            raise InvalidResponseError("the stream from %s sent an event that is not a JSON object: "
                                       "%.200r" % (self.url, event.data), body=event.data)

    def _stream_error(self, data: str) -> StreamError:
        message, error_type, code = parse_error_body(data)
        return StreamError(message or "the server reported an error without a message", body=data,
                           error_type=error_type, code=code, chunks_received=self.chunks_received)


class ChatStream(Stream):
    """A streamed chat completion (see Stream); final() is a ``chat.completion``."""


class CompletionStream(Stream):
    """A streamed ``/completions`` answer (see Stream); final() is a ``text_completion``."""

    _fold = staticmethod(fold_completion_chunks)

    def text(self) -> str:
        choices = self.final().choices
        return choices[0].text if choices else ""


class PullStream(_Streamed):
    """The progress of a model pull: one AttrDict per line DMR sends.

    Each event has ``type`` (progress, warning, success), ``message``, ``total``
    and ``layer`` (``id``, ``size``, ``current``).  Iteration ends after the
    ``success`` event, kept as ``result``.  An error line raises PullError with
    DMR's message; a stream that ends without success raises
    APIConnectionError.  close() (or leaving the ``with`` block) drops the
    connection, which makes DMR cancel the pull.
    """

    def __init__(self, exchange: _Exchange, model: str):
        self.model = model
        self.result: Optional[AttrDict] = None
        self.events_received = 0
        super().__init__(exchange)

    def wait(self) -> AttrDict:
        """Follow the pull to its end and return the success event."""
        for _ in self:
            pass
        if self.result is None:
            raise DMRError("the pull of %s was closed before it finished" % self.model)
        return self.result

    def _progress(self) -> Tuple[str, int, str, str]:
        return "the pull of " + self.model, self.events_received, "progress events", "it did not finish"

    def _iter_items(self) -> Generator[AttrDict, None, None]:
        pending = b""
        try:
            while True:
                data = self._read()
                lines = (pending + data).split(b"\n") if data else [pending]
                pending = lines.pop() if data else b""
                if len(pending) > MAX_EVENT_BYTES:
                    raise InvalidResponseError("a pull progress line grew past %d bytes" % MAX_EVENT_BYTES)
                for line in lines:
                    event = parse_pull_line(line.decode("utf-8", "replace"))
                    if event is None:
                        continue
                    if event.get("type") == "warning":
                        _log.warning("pull %s: %s", self.model, event.get("message"))
                    if event.get("type") == "success":
                        self.result = event
                    self.events_received += 1
                    yield event
                if not data:
                    break
            if self.result is None:
                raise APIConnectionError("the pull of %s ended without DMR reporting success: it did "
                                         "not finish" % self.model, url=self.url)
            self._exchange.finish()
        finally:
            if self.result is None:
                self._exchange.discard()


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------


class Client:
    """A client for Docker Model Runner's OpenAI-compatible API.

    *base_url* is normalised by normalize_base_url().  None means the
    environment (DOCKER_MODEL_RUNNER_API_BASE, MODEL_RUNNER_HOST), else DMR
    is looked for: model-runner.docker.internal inside a Docker Desktop
    container, else DEFAULT_BASE_URL with Docker Desktop's socket as the
    fallback when it refuses.  *unix_socket* talks HTTP over that socket
    instead of TCP.  *api_key* defaults to DOCKER_MODEL_RUNNER_API_KEY,
    then DEFAULT_API_KEY; "" sends no Authorization header.  *engine* picks
    the DMR engine unless a model name names one.  *timeout* bounds each wait
    for data (a model load can take minutes), *connect_timeout* the TCP
    connect; None waits forever.  *max_retries* extra attempts are made on
    connection failures and on 408/409/429/5xx answers, never after a stream
    has started.  *headers* are added to every request.

    Connections are kept alive and reused; one Client can be shared between
    threads.  Use it as a context manager, or call close().
    """

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 engine: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 connect_timeout: Optional[float] = DEFAULT_CONNECT_TIMEOUT,
                 max_retries: int = DEFAULT_MAX_RETRIES, headers: Optional[Headers] = None,
                 unix_socket: Optional[str] = None):
        _http_client()
        self.engine = _check_engine(engine)
        self._api_key = _resolve_api_key(api_key)
        self.timeout = _check_timeout(timeout, "timeout")
        self.connect_timeout = _check_timeout(connect_timeout, "connect_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be a whole number >= 0, not %r" % (max_retries,))
        self.max_retries = max_retries
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",   # compressed SSE would be buffered, and urllib never inflates
            "Content-Type": "application/json",
        }
        self._headers.update(_check_headers(headers))
        self._head = b""
        self._sleep = time.sleep   # tests replace it to keep retry waits short
        self._lock = threading.Lock()
        self._socket_fallback = False
        if unix_socket is not None:
            self._connect_unix(unix_socket, base_url)
            return
        if base_url is None:
            base_url = _configured_base_url() or self._discover()
        self._set_root(_parse_base_url(base_url), None)

    def _discover(self) -> str:
        """The base URL when nothing names one: DMR's container name, else localhost."""
        if _running_in_container() and _resolves(CONTAINER_HOST):
            _log.debug("no base URL configured; in a container where model-runner.docker.internal "
                       "resolves: using %s", CONTAINER_BASE_URL)
            return CONTAINER_BASE_URL
        _log.debug("no base URL configured: using %s (Docker Desktop's socket if it refuses)",
                   DEFAULT_BASE_URL)
        self._socket_fallback = True
        return DEFAULT_BASE_URL

    def _connect_unix(self, path: str, base_url: Optional[str]) -> None:
        if not isinstance(path, str) or not path:
            raise ValueError("unix_socket must be the path of a socket file, not %r" % (path,))
        path = os.path.expanduser(path)
        if base_url is None:
            docker = os.path.basename(path) == "docker.sock"
            base_url = "http://localhost" + (DOCKER_SOCKET_PREFIX if docker else "")
        self._set_root(_parse_base_url(base_url), path)

    def _set_root(self, root: _Root, unix_socket: Optional[str]) -> None:
        if self.engine and not root.plain:
            root = root._replace(engine=self.engine)
        origin = _origin_for(root) if unix_socket is None else _Origin("http", "localhost", 80, None, unix_socket)
        self._root = root
        self.base_url = root.url()
        self.unix_socket = unix_socket
        self._pool = _Pool(origin, self.connect_timeout, self.timeout)
        self._build_head()

    @property
    def api_key(self) -> str:
        """The key sent as ``Authorization: Bearer <key>`` ("" sends none)."""
        return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._api_key = _resolve_api_key(value)
        self._build_head()

    def _build_head(self) -> None:
        headers = dict(self._headers)
        if self._api_key and not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = "Bearer " + self._api_key
        self._head = _fixed_head(self._pool.origin, headers)

    def _use_docker_socket(self) -> bool:
        """After localhost:12434 refused: switch to Docker Desktop's socket if there is one."""
        with self._lock:
            if not self._socket_fallback:
                return self.unix_socket is not None   # another thread switched already
            self._socket_fallback = False
            for candidate in DOCKER_SOCKET_PATHS:
                path = os.path.expanduser(candidate)
                if os.path.exists(path):
                    break
            else:
                return False
            # The TCP pool holds no connection (none was ever made): it is simply dropped.
            self._set_root(_parse_base_url("http://localhost" + DOCKER_SOCKET_PREFIX), path)
        _log.debug("%s refused; using Docker Desktop's socket %s (%s)", DEFAULT_BASE_URL, path, self.base_url)
        return True

    def __repr__(self) -> str:
        where = " unix_socket=%r" % self.unix_socket if self.unix_socket else ""
        return "<dmr_client.Client base_url=%r%s engine=%r timeout=%r max_retries=%r>" % (
            self.base_url, where, self.engine, self.timeout, self.max_retries)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; streams still open close theirs when they end."""
        self._pool.close()

    # -- OpenAI-compatible calls ------------------------------------------------

    def chat(self, model: str, messages: Sequence[Message], *, stream: bool = False,
             **params: Any) -> Any:
        """Create a chat completion.

        *model* is sent as given, except that LiteLLM's ``docker_model_runner/``
        prefix is dropped and a leading engine (``llama.cpp/ai/smollm2``) picks
        that engine for this call.  Every keyword in *params* (temperature,
        max_tokens, tools, response_format, stream_options ...) goes into the
        JSON body as given; None values are left out.

        Returns the response as an AttrDict, or with ``stream=True`` a
        ChatStream of chunks (its final() folds them into the same response).
        """
        engine, name = split_model(model)
        _check_messages(messages)
        return self._generate("/chat/completions", engine, name, {"messages": messages}, stream, params,
                              ChatStream)

    def completions(self, model: str, prompt: Any, *, stream: bool = False, **params: Any) -> Any:
        """Create a legacy text completion (``/completions``) of *prompt*.

        Like chat(): the response as an AttrDict, or with ``stream=True`` a
        CompletionStream.
        """
        engine, name = split_model(model)
        if not isinstance(prompt, (str, list)) or not prompt:
            raise TypeError("prompt must be a non-empty str (or a list of them), not %r" % (prompt,))
        return self._generate("/completions", engine, name, {"prompt": prompt}, stream, params,
                              CompletionStream)

    def _generate(self, route: str, engine: Optional[str], name: str, body: Dict[str, Any], stream: bool,
                  params: Dict[str, Any], stream_class: type) -> Any:
        body = dict(model=name, **body)
        body.update((key, value) for key, value in params.items() if value is not None)
        if stream:
            body["stream"] = True
            exchange = self._send("POST", route, _encode_json(body), engine=engine, model=name,
                                  accept="text/event-stream")
            return stream_class(exchange)
        return self._json(self._send("POST", route, _encode_json(body), engine=engine, model=name))

    def embeddings(self, model: str, input: Any, **params: Any) -> AttrDict:
        """Embed *input* (a str or a list of them) with *model*.

        Returns the OpenAI-shaped list, ``data[i].embedding`` in input order.
        A chat model without pooling gets BadRequestError saying so.
        """
        engine, name = split_model(model)
        if isinstance(input, str):
            if not input:
                raise ValueError("input is empty: pass a non-empty str or a list of them")
        elif not isinstance(input, list) or not input or not all(isinstance(i, (str, int, list)) for i in input):
            raise TypeError("input must be a str or a non-empty list of str, not %r" % (input,))
        body = {"model": name, "input": input}
        body.update((key, value) for key, value in params.items() if value is not None)
        reply = self._json(self._send("POST", "/embeddings", _encode_json(body), engine=engine, model=name))
        if isinstance(reply.get("data"), list):
            reply["data"] = sorted(reply["data"], key=lambda item: item.get("index", 0))
        return reply

    def models(self) -> List[AttrDict]:
        """The models the OpenAI-compatible API lists (``GET /models``)."""
        reply = self._json(self._send("GET", "/models"))
        return reply["data"] if isinstance(reply, dict) and "data" in reply else reply

    def model(self, name: str) -> AttrDict:
        """One model from the OpenAI-compatible API; NotFoundError when it is absent."""
        engine, plain_name = split_model(name)
        return self._json(self._send("GET", "/models/" + quote_model_path(plain_name), engine=engine,
                                     hints={404: "no model %r here: see models() or `docker model ls`"
                                            % plain_name}))

    def rerank(self, model: str, query: str, documents: Sequence[str], top_n: Optional[int] = None,
               **params: Any) -> AttrDict:
        """Rank *documents* by relevance to *query* (DMR's ``/rerank``, outside ``/v1``).

        Returns the engine's answer: ``results`` with ``index`` and ``relevance_score``.
        """
        engine, name = split_model(model)
        if not isinstance(query, str) or not query:
            raise TypeError("query must be a non-empty str, not %r" % (query,))
        if not isinstance(documents, (list, tuple)) or not documents \
                or not all(isinstance(d, str) for d in documents):
            raise TypeError("documents must be a non-empty list of str, not %r" % (documents,))
        body = {"model": name, "query": query, "documents": list(documents), "top_n": top_n}
        body.update(params)
        body = {key: value for key, value in body.items() if value is not None}
        return self._json(self._send("POST", "/rerank", _encode_json(body), where="engine", engine=engine,
                                     model=name))

    # -- DMR's own API --------------------------------------------------------------

    def pull(self, model: str, *, stream: bool = False, bearer_token: Optional[str] = None) -> Any:
        """Pull *model* into DMR's store (``docker model pull``).

        Blocks until DMR reports success and returns that event; with
        ``stream=True`` returns a PullStream of progress events instead.
        *bearer_token* is sent to the registry (e.g. a Hugging Face token).
        """
        name = split_model(model)[1]
        quote_model_path(name)   # refuse what cannot be a reference before asking DMR
        body = {"from": name}
        if bearer_token:
            body["bearer-token"] = bearer_token
        exchange = self._send("POST", "/models/create", _encode_json(body), where="dmr", model=name,
                              hints={404: "no model %r in the registry: check the name and tag" % name})
        progress = PullStream(exchange, name)
        return progress if stream else progress.wait()

    def local_models(self) -> List[AttrDict]:
        """The models in DMR's store, with ``id``, ``tags``, ``created`` and ``config``."""
        return self._json(self._send("GET", "/models", where="dmr"))

    def inspect_model(self, name: str, *, remote: bool = False) -> AttrDict:
        """One model of DMR's store (or of the registry with ``remote=True``)."""
        name = split_model(name)[1]
        route = "/models/" + quote_model_path(name) + ("?remote=true" if remote else "")
        return self._json(self._send("GET", route, where="dmr",
                                     hints={404: "no model %r in DMR's store: see local_models() or "
                                                 "`docker model pull %s`" % (name, name)}))

    def delete_model(self, name: str, *, force: bool = False) -> List[AttrDict]:
        """Remove *name* from DMR's store; returns what was untagged and deleted.

        An ID that several tags point to needs ``force=True`` (ConflictError otherwise).
        """
        name = split_model(name)[1]
        route = "/models/" + quote_model_path(name) + ("?force=true" if force else "")
        # DMR's 409 here is a fact about the store, not a passing state: asking again cannot help.
        return self._json(self._send("DELETE", route, where="dmr", retry_statuses=RETRY_STATUSES - {409}, hints={
            404: "no model %r in DMR's store: see local_models()" % name,
            409: "several tags point to this model: pass force=True to delete it anyway"}))

    def engine_status(self) -> AttrDict:
        """Each engine's state: ``{"llama.cpp": "Running: ...", "vllm": "Not Installed: ..."}``."""
        return self._json(self._send("GET", "/engines/status", where="dmr"))

    def running_models(self) -> List[AttrDict]:
        """The models loaded in an engine now (``docker model ps``)."""
        return self._json(self._send("GET", "/engines/ps", where="dmr"))

    def unload(self, models: Optional[Sequence[str]] = None, *, all: bool = False,
               backend: Optional[str] = None) -> AttrDict:
        """Unload *models* (or ``all=True`` models) from memory; returns ``unloaded_runners``."""
        if not all and not models:
            raise ValueError("name the models to unload, or pass all=True")
        body: Dict[str, Any] = {"all": bool(all)}
        if models:
            if isinstance(models, str):
                models = [models]
            body["models"] = [split_model(m)[1] for m in models]
        if backend:
            body["backend"] = backend
        return self._json(self._send("POST", "/engines/unload", _encode_json(body), where="dmr"))

    def version(self) -> str:
        """DMR's version string."""
        reply = self._json(self._send("GET", "/version", where="dmr"))
        return str(reply.get("version")) if isinstance(reply, dict) else str(reply)

    def ping(self, timeout: float = 5.0) -> bool:
        """True if the server answers ``GET /`` with a status below 500; never raises.

        DMR answers 200 ("Docker Model Runner is running"); Docker Desktop's
        socket answers 503 while Model Runner is disabled.
        """
        for _ in range(2):
            probe = _Pool(self._pool.origin, min(self.connect_timeout or timeout, timeout), timeout)
            _, url, target = self._target("dmr", "/", None)
            try:
                exchange = self._exchange(probe, "GET", target, None, self._request_head("GET", target, "*/*", None), url)
                exchange.read_body(MAX_ERROR_BODY)
                return exchange.response.status < 500
            except _RetryableConnectionError as failure:
                if not (failure.refused and self._use_docker_socket()):
                    return False
            except DMRError:
                return False
            finally:
                probe.close()
        return False

    # -- plumbing -----------------------------------------------------------------

    def _json(self, exchange: _Exchange) -> Any:
        raw = exchange.read_body()
        try:
            return loads(raw)
        except ValueError:
            text = raw.decode("utf-8", "replace")
            raise InvalidResponseError("%s answered %d with a body that is not JSON: %.200r"
                                       % (exchange.url, exchange.response.status, text),
                                       body=text, status_code=exchange.response.status) from None

    def _request_head(self, method: str, target: str, accept: str, body: Optional[bytes]) -> bytes:
        """The request line and headers, ready to write."""
        length = b"Content-Length: %d\r\n" % len(body) if body is not None else b""
        return b"%s %s HTTP/1.1\r\n%sAccept: %s\r\n%s\r\n" % (
            method.encode("ascii"), target.encode("ascii"), self._head, accept.encode("ascii"), length)

    def _path(self, where: str, route: str, engine: Optional[str]) -> str:
        root = self._root
        if where == "api":
            return root.api_path(engine) + route
        if where == "engine":
            return root.engine_path(engine) + route
        return root.dmr_path() + route

    def _send(self, method: str, route: str, body: Optional[bytes] = None, *, where: str = "api",
              engine: Optional[str] = None, model: Optional[str] = None, accept: str = "application/json",
              hints: Optional[Dict[int, str]] = None, retry_statuses: frozenset = RETRY_STATUSES) -> _Exchange:
        """Send a request, retrying what is safe to retry; return a 2xx exchange.

        *route* is appended to the OpenAI root (*where* "api"), DMR's root
        ("dmr") or the engine's root outside /v1 ("engine").
        """
        pool, url, target = self._target(where, route, engine)
        head = self._request_head(method, target, accept, body)
        debug = _log.debugging()
        attempt = 0
        while True:
            try:
                exchange = self._exchange(pool, method, target, body, head, url)
            except _RetryableConnectionError as wrapped:
                failure = wrapped.error
                failure.url = url
                if wrapped.refused and attempt == 0 and self._socket_fallback and self._use_docker_socket():
                    pool, url, target = self._target(where, route, engine)
                    head = self._request_head(method, target, accept, body)
                    continue
                if attempt >= self.max_retries:
                    raise self._connection_failure(failure, attempt, wrapped.refused) from None
                pause = _retry_delay(attempt)
                if debug:
                    _log.debug("%s %s failed (%s); retry %d in %.2f s",
                               method, url, failure.message, attempt + 1, pause)
                self._sleep(pause)
                attempt += 1
                continue
            status = exchange.response.status
            if debug:
                _log.debug("%s %s -> %d", method, url, status)
            if 200 <= status < 300:
                return exchange
            error = self._status_error(exchange, model, hints)
            delay = self._status_retry_delay(error, attempt, retry_statuses)
            if delay is None:
                raise error
            if debug:
                _log.debug("%s %s got %d; retry %d in %.2f s", method, url, status, attempt + 1, delay)
            self._sleep(delay)
            attempt += 1

    def _target(self, where: str, route: str, engine: Optional[str]) -> Tuple[_Pool, str, str]:
        """(pool, URL for messages, request target) of a route; HTTP proxies get the absolute URL."""
        pool = self._pool
        path = self._path(where, route, engine)
        url = self._root.origin + path
        if pool.origin.proxy is None or pool.origin.scheme != "http":
            return pool, url, path
        return pool, url, url

    def _exchange(self, pool: _Pool, method: str, target: str, body: Optional[bytes], head: bytes,
                  url: str) -> _Exchange:
        """Write the request in one go and read the response head.

        http.client opened the connection (TLS and proxy tunnel included) and
        parses the response; the request is written here, pre-encoded, in a
        single write instead of putheader() per header and two writes.
        """
        conn, reused = pool.take()
        message = head + body if body else head
        while True:
            response = None
            try:
                conn.sock.sendall(message)
                response = http.client.HTTPResponse(conn.sock, method=method)
                response.begin()
                return _Exchange(pool, conn, response, url)
            except socket.timeout:
                if response is not None:
                    response.close()
                conn.close()
                # The request went out: the server may be working on it, so this is not retried.
                raise APITimeoutError("no response from %s within %s s (a model load can take "
                                      "minutes: raise timeout=)" % (url, pool.timeout), url=url) from None
            except (OSError, http.client.HTTPException) as exc:
                if response is not None:
                    response.close()   # it holds the socket open until closed
                conn.close()
                if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                               BrokenPipeError, ConnectionAbortedError)):
                    # A kept-alive connection the server had just closed: the request never
                    # reached it, so a fresh connection (not a retry) is the right answer.
                    conn, reused = pool.connect(), False
                    continue
                raise _RetryableConnectionError(APIConnectionError(
                    "%s %s failed before a response: %s" % (method, url, _describe_os_error(exc)),
                    url=url)) from exc

    def _connection_failure(self, error: APIConnectionError, attempt: int, refused: bool) -> APIConnectionError:
        message = error.message
        if attempt:
            message += " (after %d attempts)" % (attempt + 1)
        origin = self._pool.origin
        if origin.unix_socket:
            if refused:
                message += ". Is Docker Desktop (or DMR) running and is this its socket?"
        elif refused and origin.proxy is None:
            if _is_local_host(origin.host) and origin.port == 12434:
                message += (". Is Docker Model Runner running with host TCP access? On Docker Desktop: "
                            "`docker desktop enable model-runner --tcp 12434`; on Docker Engine: "
                            "`docker model install-runner`. Or set %s to where DMR listens" % ENV_BASE_URL)
            else:
                message += ". Is the server running at %s? (set %s or pass base_url=)" % (
                    self._root.origin, ENV_BASE_URL)
        return type(error)(message, url=error.url)

    def _status_error(self, exchange: _Exchange, model: Optional[str],
                      hints: Optional[Dict[int, str]] = None) -> APIStatusError:
        response = exchange.response
        try:
            raw = exchange.read_body(MAX_ERROR_BODY)
        except APIConnectionError:
            raw = b""
        text = raw.decode("utf-8", "replace")
        message, error_type, code = parse_error_body(text)
        status = response.status
        if not message:
            message = response.reason or "no message"
        if 300 <= status < 400 and response.headers.get("Location"):
            message += " (redirect to %s)" % _redact(response.headers["Location"])
        hint = (hints or {}).get(status) or _error_hint(status, message, model, exchange.url, self._root.origin)
        if status == 404 and self.unix_socket and self._root.prefix == DOCKER_SOCKET_PREFIX \
                and message.lower() in ("page not found", "404 page not found", "not found"):
            hint = ("the Docker socket %s does not serve Model Runner (Docker Engine rather than "
                    "Docker Desktop?): run DMR with `docker model install-runner`, or enable it in "
                    "Docker Desktop" % self.unix_socket)
        cls = _STATUS_ERRORS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
        return cls(message, status_code=status, body=text, headers=response.headers,
                   url=exchange.url, hint=hint, error_type=error_type, code=code)

    def _status_retry_delay(self, error: APIStatusError, attempt: int,
                            retry_statuses: frozenset = RETRY_STATUSES) -> Optional[float]:
        """Seconds to wait before retrying *error*, or None to raise it now."""
        should_retry = (error.headers.get("x-should-retry") or "").lower()
        if should_retry == "false":
            return None
        if should_retry != "true" and error.status_code not in retry_statuses:
            return None
        if attempt >= self.max_retries:
            if attempt:
                error.args = (error.args[0] + " (after %d attempts)" % (attempt + 1),)
            return None
        asked = parse_retry_after(error.headers)
        if asked is None:
            return _retry_delay(attempt)
        if asked > MAX_RETRY_AFTER:
            error.args = (error.args[0] + " (the server asked to retry after %.0f s; not waiting "
                          "longer than %.0f s)" % (asked, MAX_RETRY_AFTER),)
            return None
        return asked


def _resolve_api_key(api_key: Optional[str]) -> str:
    if api_key is None:
        api_key = os.environ.get(ENV_API_KEY) or DEFAULT_API_KEY
    if not isinstance(api_key, str):
        raise TypeError("api_key must be a str, not %s" % type(api_key).__name__)
    if any(not (" " < ch <= "~") for ch in api_key):
        # Never echo the key: it may be a real secret.
        raise ValueError("api_key must be printable ASCII without spaces (got %d characters "
                         "that are not); check for a stray newline" % len(api_key))
    return api_key


def _check_timeout(value: Optional[float], name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("%s must be a number of seconds > 0 (or None to wait forever), not %r"
                         % (name, value))
    return float(value)


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+"


def _check_headers(headers: Optional[Headers]) -> Dict[str, str]:
    if headers is None:
        return {}
    checked = {}
    for name, value in dict(headers).items():
        if not isinstance(name, str) or not re.fullmatch(_TOKEN, name):
            raise ValueError("header name %r is not a valid HTTP token" % (name,))
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
            raise ValueError("header %r must have a str value without CR, LF or NUL" % name)
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("header %r must be Latin-1 text (HTTP headers cannot carry other "
                             "characters)" % name) from None
        checked[name] = value
    return checked


def _check_messages(messages: Any) -> None:
    example = "[{'role': 'user', 'content': 'Hello'}]"
    if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list of dicts such as %s, not %s"
                        % (example, type(messages).__name__))
    if not messages:
        raise ValueError("messages is empty: pass at least one message, e.g. %s" % example)
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TypeError("messages[%d] must be a dict such as {'role': 'user', 'content': 'Hello'}, "
                            "not %s" % (position, type(message).__name__))
        if "role" not in message:
            raise ValueError("messages[%d] has no 'role' (use 'system', 'user', 'assistant' or 'tool')"
                             % position)


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _encode_json(body: Dict[str, Any]) -> bytes:
    try:
        return _encode(body).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError("the request cannot be sent as JSON: %s (pass plain str, int, float, bool, "
                        "None, list and dict values)" % exc) from None


# ---------------------------------------------------------------------------
# Command line: python dmr_client.py | python -m dmr_client | dmr-client
# ---------------------------------------------------------------------------

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    import argparse
    import sys

    parser = _cli_parser(argparse)
    args = parser.parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        client = Client(args.base_url, args.api_key, engine=args.engine, timeout=args.timeout)
        with client:
            return args.run(client, args)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (ValueError, TypeError) as exc:
        if args.debug:
            raise
        sys.stderr.write("dmr-client: %s\n" % exc)
        return EXIT_USAGE
    except DMRError as exc:
        if args.debug:
            raise
        sys.stderr.write("dmr-client: %s\n" % exc)
        return EXIT_ERROR


def _cli_parser(argparse: Any) -> Any:
    parser = argparse.ArgumentParser(
        prog="dmr-client", description="Chat with, list, pull and remove Docker Model Runner models.",
        epilog="Environment: %s, %s, %s." % (ENV_BASE_URL, ENV_HOST, ENV_API_KEY))
    parser.add_argument("--base-url", help="DMR or server address (default: environment, then %s)"
                        % DEFAULT_BASE_URL)
    parser.add_argument("--engine", choices=KNOWN_ENGINES, help="DMR engine (default: from the URL or model)")
    parser.add_argument("--api-key", help="API key (default: $%s, then a dummy key)" % ENV_API_KEY)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds of silence allowed (default: %(default)s; model loads are slow)")
    parser.add_argument("--debug", action="store_true", help="log requests to stderr, show tracebacks")
    parser.add_argument("--version", action="version", version="dmr-client " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    chat = commands.add_parser("chat", help="chat with a model (interactive without a prompt at a terminal)",
                               description="Stream a model's answer to PROMPT. PROMPT '-', or no PROMPT with "
                               "piped stdin, reads stdin; no PROMPT at a terminal starts a conversation "
                               "(/reset, /exit or Ctrl-D; Ctrl-C stops an answer).")
    chat.add_argument("-m", "--model", required=True, help="model, e.g. ai/smollm2")
    chat.add_argument("prompt", nargs="?", help="the message to send ('-' reads stdin)")
    chat.add_argument("--system", help="system message")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("--json", action="store_true",
                      help="print the raw response (one JSON chunk per line when streaming)")
    chat.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                      help="any other body parameter; VALUE is JSON if it parses (repeatable)")
    chat.set_defaults(run=_cli_chat)

    models = commands.add_parser("models", help="list the models DMR has", description="List the models DMR has.")
    models.add_argument("--json", action="store_true", help="print the raw list")
    models.set_defaults(run=_cli_models)

    pull = commands.add_parser("pull", help="pull a model into DMR", description="Pull a model into DMR.")
    pull.add_argument("model")
    pull.set_defaults(run=_cli_pull)

    remove = commands.add_parser("rm", help="remove a model", description="Remove a model from DMR.")
    remove.add_argument("model")
    remove.add_argument("--force", action="store_true", help="also when several tags point to it")
    remove.set_defaults(run=_cli_rm)

    status = commands.add_parser("status", help="engines and running models",
                                 description="Show DMR's engines and the models loaded now.")
    status.set_defaults(run=_cli_status)

    ping = commands.add_parser("ping", help="is DMR there?", description="Exit 0 if DMR answers, 1 if not.")
    ping.set_defaults(run=_cli_ping)
    return parser


class _Terminal:
    """What may be written where: escape codes and spinners only on a terminal."""

    def __init__(self, stdout: Any, stderr: Any):
        self.stdout, self.stderr = stdout, stderr
        self.interactive_err = _isatty(stderr)
        self.color = self.interactive_err and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"

    def status(self, text: str) -> None:
        """Rewrite the status line on stderr (terminals only)."""
        if self.interactive_err:
            self.stderr.write("\r" + text[: _columns() - 1] + "\x1b[K" if self.color else
                              "\r" + text[: _columns() - 1].ljust(_columns() - 1))
            self.stderr.flush()

    def clear_status(self) -> None:
        if self.interactive_err:
            self.stderr.write("\r\x1b[K" if self.color else "\r" + " " * (_columns() - 1) + "\r")
            self.stderr.flush()


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns() -> int:
    import shutil

    columns = shutil.get_terminal_size((80, 24)).columns
    return max(20, columns) if columns > 0 else 80   # 0: a terminal that reports no size


class _Spinner:
    """'loading model…' on stderr while the first token is late (a model load), terminals only."""

    def __init__(self, terminal: _Terminal, delay: float = 1.0):
        self.terminal = terminal
        self.delay = delay
        self.done = threading.Event()
        self.shown = False
        self.thread: Optional[threading.Thread] = None

    def __enter__(self) -> _Spinner:
        if self.terminal.interactive_err:
            self.thread = threading.Thread(target=self._spin, daemon=True)
            self.thread.start()
        return self

    def _spin(self) -> None:
        started = time.monotonic()
        if self.done.wait(self.delay):
            return
        frames = "|/-\\"
        tick = 0
        while not self.done.wait(0.1):
            self.shown = True
            self.terminal.status("%s loading model... %ds" % (frames[tick % 4], time.monotonic() - started))
            tick += 1

    def stop(self) -> None:
        if self.done.is_set():
            return
        self.done.set()
        if self.thread is not None:
            self.thread.join()
            if self.shown:
                self.terminal.clear_status()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _cli_params(args: Any) -> Dict[str, Any]:
    params: Dict[str, Any] = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    for item in args.param:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError("-p takes KEY=VALUE, e.g. -p top_k=40 or -p 'stop=[\"\\n\"]' (got %r)" % item)
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _cli_chat(client: Client, args: Any) -> int:
    import sys

    terminal = _Terminal(sys.stdout, sys.stderr)
    messages: List[Dict[str, Any]] = [{"role": "system", "content": args.system}] if args.system else []
    params = _cli_params(args)
    if args.prompt == "-" or (args.prompt is None and not _isatty(sys.stdin)):
        prompt = sys.stdin.read().rstrip("\n")
        if not prompt.strip():
            raise ValueError("stdin is empty: pipe a prompt in, or pass PROMPT")
    elif args.prompt is None:
        return _cli_conversation(client, args, messages, params, terminal)
    else:
        prompt = args.prompt
    messages.append({"role": "user", "content": prompt})
    _cli_answer(client, args, messages, params, terminal)
    return EXIT_OK


def _cli_answer(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
                terminal: _Terminal) -> str:
    """Send *messages*, print the answer as it comes, return its text."""
    out = terminal.stdout
    with _Spinner(terminal) as spinner:
        if args.no_stream:
            reply = client.chat(args.model, messages, **params)
            spinner.stop()
            if args.json:
                out.write(json.dumps(reply, ensure_ascii=False) + "\n")
            text = (reply.choices[0].message.content or "") if reply.get("choices") else ""
            if not args.json:
                out.write(text + "\n")
            out.flush()
            return text
        with client.chat(args.model, messages, stream=True, **params) as stream:
            parts = []
            for chunk in stream:
                spinner.stop()
                if args.json:
                    out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
                    out.flush()
                    continue
                for choice in chunk.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        parts.append(piece)
                        out.write(piece)
                        out.flush()
            if not args.json:
                out.write("\n")
                out.flush()
            return "".join(parts)


def _cli_conversation(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
                      terminal: _Terminal) -> int:
    """An interactive, multi-turn chat at a terminal."""
    import sys

    try:
        import readline  # noqa: F401  (line editing and history for input(), where the platform has it)
    except ImportError:
        pass
    start = list(messages)
    sys.stderr.write("Chatting with %s at %s. /reset forgets, /exit or Ctrl-D leaves, Ctrl-C stops an "
                     "answer.\n" % (args.model, client.base_url))
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            sys.stderr.write("\n")
            return EXIT_OK
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            continue
        command = line.strip()
        if not command:
            continue
        if command in ("/exit", "/quit", "/bye"):
            return EXIT_OK
        if command == "/reset":
            messages[:] = start
            sys.stderr.write("(conversation forgotten)\n")
            continue
        messages.append({"role": "user", "content": line})
        try:
            answer = _cli_answer(client, args, messages, params, terminal)
        except KeyboardInterrupt:
            sys.stderr.write("\n(answer stopped)\n")
            messages.pop()
            continue
        except DMRError as exc:
            sys.stderr.write("dmr-client: %s\n" % exc)
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": answer})


def _cli_models(client: Client, args: Any) -> int:
    import sys

    try:
        models = client.local_models()
    except NotFoundError:   # not DMR (a plain llama.cpp or OpenAI-compatible server)
        models = [AttrDict(tags=[m.get("id")], config={}) for m in client.models()]
    if args.json:
        sys.stdout.write(json.dumps(models, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    rows = [("MODEL", "PARAMETERS", "QUANTIZATION", "SIZE")]
    for model in models:
        config = model.get("config") or {}
        tags = model.get("tags") or [model.get("id", "")]
        for tag in tags:
            name = tag[len("docker.io/"):] if isinstance(tag, str) and tag.startswith("docker.io/") else tag
            rows.append((str(name), str(config.get("parameters") or ""), str(config.get("quantization") or ""),
                         str(config.get("size") or "")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    return EXIT_OK


def _cli_pull(client: Client, args: Any) -> int:
    import sys

    terminal = _Terminal(sys.stdout, sys.stderr)
    layers: Dict[str, int] = {}
    started = time.monotonic()
    last_percent = -1
    with client.pull(args.model, stream=True) as progress:
        for event in progress:
            kind = event.get("type")
            if kind == "progress":
                layer = event.get("layer") or {}
                layers[str(layer.get("id"))] = int(layer.get("current") or 0)
                total = int(event.get("total") or 0)
                done = sum(layers.values())
                percent = int(100 * done / total) if total else 0
                rate = done / max(time.monotonic() - started, 1e-3)
                line = "%s  %3d%%  %s / %s  %s/s" % (args.model, percent, _size(done), _size(total), _size(rate))
                if terminal.interactive_err:
                    bar = "#" * (percent // 5) + "." * (20 - percent // 5)
                    terminal.status("[%s] %s" % (bar, line))
                elif percent != last_percent:
                    sys.stderr.write(line + "\n")
                last_percent = percent
            elif kind == "warning":
                terminal.clear_status()
                sys.stderr.write("warning: %s\n" % event.get("message"))
    terminal.clear_status()
    sys.stdout.write("%s\n" % (progress.result.get("message") or "pulled"))
    return EXIT_OK


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return "%.1f %s" % (count, unit) if unit != "B" else "%d B" % count
        count /= 1000.0
    return "%.1f GB" % count


def _cli_rm(client: Client, args: Any) -> int:
    import sys

    for action in client.delete_model(args.model, force=args.force):
        for verb, what in action.items():
            sys.stdout.write("%s: %s\n" % (verb, what))
    return EXIT_OK


def _cli_status(client: Client, args: Any) -> int:
    import sys

    sys.stdout.write("DMR at %s\n" % client.base_url)
    for engine, state in client.engine_status().items():
        sys.stdout.write("  %-10s %s\n" % (engine, state))
    running = client.running_models()
    sys.stdout.write("running models: %s\n" % ("none" if not running else ""))
    for model in running:
        sys.stdout.write("  %s (%s, %s)\n" % (model.get("model_name"), model.get("backend_name"),
                                              model.get("mode") or "completion"))
    return EXIT_OK


def _cli_ping(client: Client, args: Any) -> int:
    import sys

    if client.ping():
        sys.stdout.write("DMR is answering at %s\n" % client.base_url)
        return EXIT_OK
    sys.stderr.write("dmr-client: nothing answers at %s (set %s or --base-url)\n" % (client.base_url, ENV_BASE_URL))
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
