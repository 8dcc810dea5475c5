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

AsyncClient is the same on asyncio (``reply = await client.chat(...)``).  It is
also a command line: ``python dmr_client.py chat -m ai/smollm2 "Hi"``.

The module reads top to bottom in layers, one-way: a section uses only those
above it.  Each rule lives in one place, and both clients use it.  Its
sections, each a banner below, in this order (a test holds the two together):

    Defaults                      constants users may read or change (URLs, timeouts, limits)
    Errors                        DMRError and its family, drawn as a tree there
    Data types                    AttrDict, Completion, the JSON codec, the vocabularies of a
                                  call, the shapes results must have
    Pure rules: SSE               SSEDecoder, iter_sse.  From here to the transport: no sockets,
                                  no sleeping (clocks and randomness only as defaults)
    Pure rules: framing           what each field may hold; parse_response_head and HeadReader
                                  (1xx skipped), body_framing and the Length / Chunked /
                                  UntilClose decoders, strict and bounded
    Pure rules: addresses         normalize_base_url, split_model, quote_model_path, error
                                  bodies, local hosts
    Pure rules: contexts and TLS  which Model Runner and which TLS checks, resolved as `docker model`
                                  resolves them (contexts.json, MODEL_RUNNER_TLS*): _resolve_endpoint
    Pure rules: streams           ChatFold / CompletionFold (fold as chunks pass); the item
                                  sources, one contract (_ItemSource); StreamTracker (body bytes
                                  in, chunks out, completeness)
    Pure rules: lines, pulls, logs and events
                                  LineSplitter; the other item sources: PullTracker, a model's tar
                                  (_TarBytes), LogLines and ServerEvents (followed resources),
                                  ResponseTracker
    Pure rules: retries           retry_wait(): the whole retry policy
    Pure rules: hints             _error_hint(): what to tell the user about a status
    Pure rules: media             image(), audio(), user(): pictures and sound in messages, their
                                  kind from their first bytes
    Pure rules: running models    speed figures, reasoning, runtime configuration, metrics; a
                                  benchmark level's figures from its requests' (_bench_level)
    Pure rules: schemas           json_schema() (Python types to JSON Schema), validate() and
                                  _build() (JSON that fits, as the caller's type)
    Pure rules: tools and parsed answers
                                  function_tool() (a Python function's schema), _Parse (what
                                  chat(schema=, tools=) makes of a reply: Parsed*), the tool
                                  loop's rules (_ToolTurn)
    Errors: what failures become  where OS and framing failures become the family: connecting,
                                  before the head, and _Reading, the one read boundary
    Transport                     _PoolBase and _tls_context(), shared by both pools;
                                  _ExchangeBase: the framing state of one response and settling
                                  its connection (reuse or close); _Upload (a body sent from
                                  a file in pieces); _Pool and _Exchange: http.client opens,
                                  we write and recv()
    Transport (asyncio)           _AsyncPool (one per event loop) and _AsyncExchange over
                                  _AsyncConnection, an asyncio protocol with a bounded buffer
    Streams                       _items(): an exchange through an item source, for every kind;
                                  Stream, PullStream, FollowStream and their Async twins;
                                  _Download and the export streams (a tar into a file)
    Clients: argument checks and request bodies
                                  what every call checks before anything is sent
    Clients: a call and the core  _Call (what to send, what a 2xx becomes); _ClientCore:
                                  configuration and the rules both transports apply
    Clients: the calls, written once
                                  in three groups (_OpenAICalls, _DMRCalls, _RunningModelCalls)
    Clients: Client and AsyncClient
                                  _Attempts (the retry loop's decisions); Client and AsyncClient
                                  only run a _Call on their transport
    Compatibility: the openai-python shape
                                  OpenAI and AsyncOpenAI: names and forwarding only, over
                                  Client and AsyncClient
    Command line                  argparse and the terminal; only calls Client
    Command line: chat            one answer (streamed, typed by --schema, with --image), and the
                                  conversation at a terminal
    Command line: models and the runner
                                  the other commands: models, pull, status, ps, logs, export,
                                  import, tag, push ...
    Command line: bench           tokens/s and time to first token at several concurrency levels,
                                  on AsyncClient; its table

A request flows: Client.chat() (or AsyncClient.chat()) checks its arguments and
builds a _Call -> _call() -> _send() asks _Attempts where to send -> _exchange()
takes a pooled connection, writes head and body in one go (an upload's pieces
after the head), reads the head
(HeadReader, body_framing) -> a 2xx is read whole (_reply: decoded, checked
against its shape) or handed to a stream; anything else becomes an
APIStatusError, and retry_wait() decides whether to send again.
"""

from __future__ import annotations

import collections
import collections.abc
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
import weakref   # loaded at start-up by the modules above: free

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs import time; with postponed annotations it is only needed here
    import http.client
    from typing import (Any, Callable, Dict, Generator, Iterable, Iterator, List, Mapping, Optional, Sequence,
                        Tuple)

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
    "MAX_RESPONSE_BYTES",
    "MAX_HEAD_BYTES",
    "MAX_HEADERS",
    "MAX_INTERIM_RESPONSES",
    "CONTAINER_BASE_URL",
    "DOCKER_SOCKET_PATHS",
    "DMR_MAX_REQUEST_BYTES",
    "DMRError",
    "OpenAIError",
    "APIError",
    "APIResponseValidationError",
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
    "LengthFinishReasonError",
    "ContentFilterFinishReasonError",
    "ToolLoopError",
    "ValidationError",
    "json_schema",
    "validate",
    "MAX_SCHEMA_DEPTH",
    "function_tool",
    "ToolStep",
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "ParsedFunction",
    "ParsedFunctionToolCall",
    "ProtocolError",
    "SSEError",
    "AttrDict",
    "loads",
    "SSEEvent",
    "SSEDecoder",
    "iter_sse",
    "HTTPHeaders",
    "ResponseHead",
    "parse_response_head",
    "body_framing",
    "ChunkedDecoder",
    "LengthDecoder",
    "UntilCloseDecoder",
    "normalize_base_url",
    "split_model",
    "parse_error_body",
    "parse_retry_after",
    "quote_model_path",
    "fold_chat_chunks",
    "fold_completion_chunks",
    "ChatFold",
    "CompletionFold",
    "StreamTracker",
    "LineSplitter",
    "PullTracker",
    "parse_pull_line",
    "retry_wait",
    "image",
    "audio",
    "user",
    "Stream",
    "ChatStream",
    "CompletionStream",
    "PullStream",
    "AsyncStream",
    "AsyncChatStream",
    "AsyncCompletionStream",
    "AsyncPullStream",
    "HeadReader",
    "Completion",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionChoice",
    "CompletionUsage",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "FunctionCall",
    "Model",
    "TextCompletion",
    "TextCompletionChunk",
    "TopLogprob",
    "speed_stats",
    "split_thinking",
    "parse_metrics",
    "RUNNER_MODES",
    "LogLines",
    "ServerEvents",
    "FollowStream",
    "AsyncFollowStream",
    "Client",
    "AsyncClient",
    "Image",
    "ImagesResponse",
    "Response",
    "ResponseStream",
    "AsyncResponseStream",
    "ResponseTracker",
    "OpenAI",
    "AsyncOpenAI",
    "RawResponse",
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
#: The `docker model` CLI's TLS variables (only the exact string "true" is on; set to anything
#: else they are off, and still override the active context's field).
ENV_TLS = "MODEL_RUNNER_TLS"
ENV_TLS_SKIP_VERIFY = "MODEL_RUNNER_TLS_SKIP_VERIFY"
ENV_TLS_CA_CERT = "MODEL_RUNNER_TLS_CA_CERT"
#: Where DMR listens for TLS on Docker Engine (MODEL_RUNNER_TLS=true with no host).
DMR_TLS_BASE_URL = "https://localhost:12444"
#: The CA DMR makes for its TLS certificate; trusted with TLS on and no CA or skip-verify given.
DMR_CA_CERT = "~/.docker/model-runner/certs/ca.crt"

USER_AGENT = "dmr-client/" + __version__
#: LiteLLM's provider prefix, accepted in model names so LiteLLM code ports as is.
LITELLM_PREFIX = "docker_model_runner/"

#: DMR refuses an inference request body larger than this, unread (400 "request too large" on the
#: OpenAI routes, 413 on the Anthropic and Responses ones).
DMR_MAX_REQUEST_BYTES = 10 * 1024 * 1024

RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504))
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: A server asking for a longer pause than this gets an error, not a sleeping client.
MAX_RETRY_AFTER = 60.0

READ_CHUNK = 64 * 1024
#: Largest error body kept (the rest is not read: the connection is closed instead).
MAX_ERROR_BODY = 1024 * 1024
#: A Content-Length body larger than this is read straight into one buffer (peak memory 1x).
_BIG_BODY = 1024 * 1024
#: Default cap on a non-streaming answer (Client(max_response_bytes=)): room for a large
#: embeddings batch (2,048 inputs of 4,096 floats as JSON is about 170 MB).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
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
#
# The family (openai-python's names), and what each means:
#
#   DMRError (also named OpenAIError)
#     APIError                    about one request to the API
#       APIConnectionError        no answer, or the connection broke (chunks_received: how far)
#         APITimeoutError         connecting, or waiting for bytes, took longer than allowed
#         ProtocolError           the server's bytes broke HTTP/1.1 framing
#       APIStatusError            a non-2xx answer: status_code, message, body, hint, response,
#                                 request_id
#         BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
#         NotFoundError 404, ConflictError 409, UnprocessableEntityError 422,
#         RateLimitError 429, InternalServerError 5xx
#       StreamError               an error event inside a stream that had started
#       InvalidResponseError      a 2xx whose body is not what the API promises (also named
#                                 APIResponseValidationError); with chat(schema=), an answer
#                                 that does not fit (path: where)
#         LengthFinishReasonError, ContentFilterFinishReasonError
#                                 the answer to parse was cut at max_tokens, or filtered
#     PullError                   DMR said a pull failed
#     ToolLoopError               run_tools(): the model still called tools after max_rounds
#   ValidationError (a ValueError) validate(): a value does not fit a schema (path, message)
#     SSEError (a ValueError)     an SSE line or event over MAX_EVENT_BYTES
#
# Bad arguments are TypeError or ValueError, raised before anything is sent.  Inside, OS and
# framing failures become the family in one place each (section "Errors: what failures
# become"): _connect_failure() while connecting, _begin_failure() before the answer's head
# (_NoAnswer: not a byte came; both give _RetryableConnectionError, for retry_wait() to decide
# on), and _Reading, the boundary around every read of a body or a stream (_Truncated: the
# body was cut short).


class DMRError(Exception):
    """Base class of every error this module raises about a request."""


#: openai-python's name for the base class: ``except openai.OpenAIError`` works on us.
OpenAIError = DMRError


class APIError(DMRError):
    """An error about one request to the API (openai-python's APIError): no answer, an error
    status, an error inside a stream, or an answer not of the promised shape."""

    message: str = ""
    body: Any = None
    code: Any = None
    type: Optional[str] = None
    param: Optional[str] = None
    request: Any = None   # openai-python's httpx request: there is none here


class APIConnectionError(APIError):
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


class ProtocolError(APIConnectionError):
    """The server's bytes broke HTTP/1.1 framing (a bad status line, header, Content-Length or
    chunk, or a limit such as MAX_HEAD_BYTES); the connection was closed and is never reused."""


class APIStatusError(APIError):
    """The server answered with a non-success HTTP status.

    ``status_code`` is the status, ``message`` the server's own message (from
    JSON ``error.message``, a string ``error``, ``message``, or the plain-text
    body DMR sends), ``body`` the raw body text and ``headers`` the response
    headers.  ``str(error)`` adds the URL and, where we know one, what to do.
    """

    def __init__(self, message: str, *, status_code: int, body: str = "", headers: Any = None,
                 url: Optional[str] = None, hint: Optional[str] = None,
                 error_type: Optional[str] = None, code: Any = None, note: str = ""):
        text = "HTTP %d from %s: %s%s" % (status_code, url or "the server", message, note)
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

    @property
    def response(self) -> _ErrorResponse:
        """The HTTP answer (openai-python's ``error.response``): status_code, headers, text, json()."""
        return _ErrorResponse(self.status_code, self.headers, self.url, self.body)

    @property
    def request_id(self) -> Optional[str]:
        """The server's ``x-request-id``, when it sent one."""
        return self.headers.get("x-request-id") if self.headers is not None else None


class _ErrorResponse(collections.namedtuple("_ErrorResponse", "status_code headers url text")):
    """What an error status answered, as much of httpx.Response as error handlers read."""

    def json(self) -> Any:
        return loads(self.text)


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


class StreamError(APIError):
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


class InvalidResponseError(APIError):
    """A success response whose body is not what the API promises (e.g. not JSON); with
    ``chat(schema=)``, an answer that does not fit the schema (``path`` says where)."""

    path: Optional[str] = None

    def __init__(self, message: str, *, body: str = "", status_code: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.body = body
        self.status_code = status_code


#: openai-python's name for an answer not of the promised shape.
APIResponseValidationError = InvalidResponseError


class LengthFinishReasonError(InvalidResponseError):
    """The answer to parse was cut at max_tokens (``finish_reason: "length"``): ``completion``
    is the reply as it came."""

    def __init__(self, completion: Any, capped: bool = True):
        usage = completion.get("usage") if isinstance(completion, dict) else None
        used = " (%s tokens generated)" % usage.get("completion_tokens") if isinstance(usage, dict) else ""
        if capped:
            text = ("the answer was cut at max_tokens%s before it was whole, so it cannot be parsed: raise "
                    "max_tokens (or leave it unset)" % used)
        else:   # no max_tokens was asked for: the model's context is what ran out
            text = ("the answer filled the model's context%s before it was whole, so it cannot be parsed: "
                    "shorten the conversation, or give the model a larger context (DMR: configure(model, "
                    "context_size=N))" % used)
        super().__init__(text)
        self.completion = completion


class ContentFilterFinishReasonError(InvalidResponseError):
    """The server filtered the answer to parse (``finish_reason: "content_filter"``)."""

    def __init__(self, completion: Any = None):
        super().__init__("the server's content filter stopped the answer, so it cannot be parsed")
        self.completion = completion


class ToolLoopError(DMRError):
    """run_tools() made max_rounds model calls and the model still called tools; ``messages``
    is the conversation so far (every tool answered), to go on from."""

    def __init__(self, message: str, *, messages: List[Any]):
        super().__init__(message)
        self.message = message
        self.messages = messages


class ValidationError(ValueError):
    """A value does not fit a JSON Schema (validate()): ``path`` says where (``$.address.zip``),
    ``message`` what is wrong (``expected string, got 123``)."""

    def __init__(self, message: str, *, path: str = "$"):
        super().__init__("%s: %s" % (path, message))
        self.message = message
        self.path = path


class SSEError(DMRError, ValueError):
    """A Server-Sent-Events stream broke a limit this parser keeps (see MAX_EVENT_BYTES)."""


def _shown(value: Any) -> str:
    """*value* as an error message shows what the caller passed: repr() kept short, and
    bounded in depth (a structure nested 100,000 deep has no plain repr())."""
    import reprlib   # only when a message needs it

    shown = reprlib.Repr()
    shown.maxlevel, shown.maxstring, shown.maxother = 3, 60, 60
    return shown.repr(value)


class _NoAnswer(Exception):
    """Internal: the connection ended before a single byte of the answer."""


class _Truncated(OSError):
    """Internal: the server closed the connection before the body's framing said it ended."""


# ---------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------


class AttrDict(dict):
    """A dict whose keys can also be read as attributes.

    ``reply.choices[0].message.content`` and
    ``reply["choices"][0]["message"]["content"]`` read the same value.  A
    missing key raises AttributeError (or KeyError with ``[]``), except a
    field the OpenAI schema declares for a typed result (``delta.content``,
    ``message.tool_calls``, ``choice.logprobs``, ``usage`` ...), which reads
    as None, as in openai-python.  Keys that are also dict methods
    (``items``, ``keys``, ``get`` ...) need ``[]``.  model_dump(),
    model_dump_json(), to_dict() and to_json() are openai-python's names for
    the plain JSON it is.
    """

    __slots__ = ()
    _fields: Tuple[str, ...] = ()        # a typed result's declared fields, in openai-python's order
    _declared: frozenset = frozenset()   # the same, to look up: None when absent
    _children: Dict[str, Any] = {}       # field -> the typed class of its object ([cls]: of each item)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            if name in self._declared:
                return None
            raise AttributeError("%s has no key %r (keys: %s)"
                                 % (type(self).__name__, name, ", ".join(map(str, self)))) from None
        # Speed: a child is typed when it is first read, not when the reply is parsed: code
        # that indexes with [] (or reads nothing) pays nothing for the openai-python names.
        child = self._children.get(name)
        if child is not None:
            _typed(value, child)
        return value

    def __dir__(self) -> List[str]:
        names = [key for key in self if isinstance(key, str) and key.isidentifier()]
        return sorted(set(super().__dir__()).union(names).union(self._declared))

    def to_dict(self) -> Dict[str, Any]:
        """A plain dict (deep) of what the server sent."""
        return _plain(self)

    def model_dump(self, *, exclude_none: bool = False) -> Dict[str, Any]:
        """A plain dict (deep) with every declared field, None where the server left it out
        (openai-python's model_dump()); *exclude_none* leaves the None values out."""
        return _dumped(self, exclude_none)

    def to_json(self, *, indent: Optional[int] = 2) -> str:
        """What the server sent, as JSON text (openai-python's to_json())."""
        return json.dumps(self, indent=indent, ensure_ascii=False)

    def model_dump_json(self, *, indent: Optional[int] = None, exclude_none: bool = False) -> str:
        """model_dump() as JSON text."""
        return json.dumps(self.model_dump(exclude_none=exclude_none), indent=indent, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _dumped(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, list):
        return [_dumped(item, exclude_none) for item in value]
    if not isinstance(value, dict):
        return value
    fields = dict.fromkeys(getattr(value, "_fields", ()))
    fields.update(value)
    children = getattr(value, "_children", {})
    for key, child in children.items():
        if fields.get(key) is not None:
            _typed(fields[key], child)
    return {key: _dumped(item, exclude_none) for key, item in fields.items()
            if not (exclude_none and item is None)}


def _typed(value: Any, cls: Any) -> Any:
    """*value* (parsed JSON) as the typed result *cls* ([cls]: a list of them), retyped in place:
    its children are typed when they are read (AttrDict.__getattr__).  Anything of another
    shape is left as it is."""
    if cls.__class__ is list:
        if value.__class__ is list:
            cls = cls[0]
            for item in value:
                if item.__class__ is AttrDict:
                    item.__class__ = cls
    elif value.__class__ is AttrDict:
        value.__class__ = cls
    return value


class Completion(AttrDict):
    """A chat or completion result (an AttrDict) that also knows how fast it came: ``stats``.

    ``stats`` are speed figures (see speed_stats()): from llama.cpp's own
    ``timings`` when the server sent them, else from the client's clock and
    ``usage``; ``stats.source`` says which.  They are not keys: the result's
    JSON stays what the server sent.
    """

    __slots__ = ("elapsed", "first_token", "chunks")
    elapsed: Optional[float]
    first_token: Optional[float]
    chunks: Optional[int]

    @classmethod
    def timed(cls, reply: Any, elapsed: Optional[float], first_token: Optional[float] = None,
              chunks: Optional[int] = None) -> Any:
        if not isinstance(reply, dict):
            return reply
        result = reply if isinstance(reply, Completion) else cls(reply)
        result.elapsed, result.first_token, result.chunks = elapsed, first_token, chunks
        return result

    @property
    def stats(self) -> AttrDict:
        return speed_stats(self, elapsed=self.elapsed, first_token=self.first_token, chunks=self.chunks)

    def __reduce__(self) -> Any:   # pickles and copies as the plain result it is, plus the timing
        return (type(self).timed, (dict(self), self.elapsed, self.first_token, self.chunks))


def _result_type(name: str, fields: str, children: Optional[Dict[str, Any]] = None, base: Any = AttrDict,
                 **members: Any) -> Any:
    """A typed result: an AttrDict (or *base*) whose OpenAI-declared *fields* read as None when
    absent, and whose *children* fields are typed in turn ([cls]: a list of them)."""
    return type(name, (base,), {"__slots__": (), "_fields": tuple(fields.split()), **members,
                                "_declared": frozenset(fields.split()),
                                "_children": children or {}, "__module__": __name__,
                                "__doc__": "An OpenAI %s (an AttrDict): declared fields absent read as None." % name})


# The OpenAI result types, by openai-python's names: one result model for Client and OpenAI.
FunctionCall = _result_type("FunctionCall", "arguments name")
ChatCompletionMessageToolCall = _result_type("ChatCompletionMessageToolCall", "id function type",
                                             {"function": FunctionCall})
TopLogprob = _result_type("TopLogprob", "token bytes logprob")
ChatCompletionTokenLogprob = _result_type("ChatCompletionTokenLogprob", "token bytes logprob top_logprobs",
                                          {"top_logprobs": [TopLogprob]})
ChoiceLogprobs = _result_type("ChoiceLogprobs", "content refusal",
                              {"content": [ChatCompletionTokenLogprob], "refusal": [ChatCompletionTokenLogprob]})
ChatCompletionMessage = _result_type(
    "ChatCompletionMessage", "content refusal role annotations audio function_call tool_calls",
    {"function_call": FunctionCall, "tool_calls": [ChatCompletionMessageToolCall]})
Choice = _result_type("Choice", "finish_reason index logprobs message",
                      {"message": ChatCompletionMessage, "logprobs": ChoiceLogprobs})
CompletionUsage = _result_type(
    "CompletionUsage", "completion_tokens prompt_tokens total_tokens completion_tokens_details prompt_tokens_details")
ChatCompletion = _result_type("ChatCompletion", "id choices created model object service_tier system_fingerprint usage",
                              {"choices": [Choice], "usage": CompletionUsage}, Completion)
ChoiceDeltaFunctionCall = _result_type("ChoiceDeltaFunctionCall", "arguments name")
ChoiceDeltaToolCall = _result_type("ChoiceDeltaToolCall", "index id function type", {"function": ChoiceDeltaFunctionCall})
ChoiceDelta = _result_type("ChoiceDelta", "content function_call refusal role tool_calls",
                           {"function_call": ChoiceDeltaFunctionCall, "tool_calls": [ChoiceDeltaToolCall]})
ChunkChoice = _result_type("ChunkChoice", "delta finish_reason index logprobs",
                           {"delta": ChoiceDelta, "logprobs": ChoiceLogprobs})
ChatCompletionChunk = _result_type("ChatCompletionChunk",
                                   "id choices created model object service_tier system_fingerprint usage",
                                   {"choices": [ChunkChoice], "usage": CompletionUsage})
CompletionChoice = _result_type("CompletionChoice", "finish_reason index logprobs text")
TextCompletion = _result_type("TextCompletion", "id choices created model object system_fingerprint usage",
                              {"choices": [CompletionChoice], "usage": CompletionUsage}, Completion)
TextCompletionChunk = _result_type("TextCompletionChunk", "id choices created model object system_fingerprint usage",
                                   {"choices": [CompletionChoice], "usage": CompletionUsage})
Embedding = _result_type("Embedding", "embedding index object")
EmbeddingUsage = _result_type("EmbeddingUsage", "prompt_tokens total_tokens")
CreateEmbeddingResponse = _result_type("CreateEmbeddingResponse", "data model object usage",
                                       {"data": [Embedding], "usage": EmbeddingUsage})
Model = _result_type("Model", "id created object owned_by")


def _output_text(response: Any) -> str:
    """The text of a Responses API answer: its message items' output_text parts, joined
    (openai-python's ``response.output_text``)."""
    return "".join(part.get("text") or "" for item in response.get("output") or () if isinstance(item, dict)
                   and item.get("type") == "message" for part in item.get("content") or ()
                   if isinstance(part, dict) and part.get("type") == "output_text")


def _image_bytes(image: Any) -> bytes:
    """The picture of an Image (``b64_json`` decoded)."""
    import base64

    data = image.get("b64_json")
    if not isinstance(data, str):
        raise InvalidResponseError("this image came without b64_json (a URL instead?): %s" % _shown(dict(image)))
    return base64.b64decode(data)


def _save_image(image: Any, path: str) -> str:
    """Write the picture to *path*; returns *path*."""
    with open(path, "wb") as out:
        out.write(_image_bytes(image))
    return path


Image = _result_type("Image", "b64_json revised_prompt url", image=property(_image_bytes), save=_save_image)
ImagesResponse = _result_type("ImagesResponse", "created data usage background output_format quality size",
                              {"data": [Image]})

ResponseOutputText = _result_type("ResponseOutputText", "type text annotations logprobs")
ResponseOutputItem = _result_type("ResponseOutputItem", "id type status role content name arguments call_id",
                                  {"content": [ResponseOutputText]})
ResponseUsage = _result_type("ResponseUsage", "input_tokens output_tokens total_tokens input_tokens_details "
                                              "output_tokens_details")
Response = _result_type(
    "Response", "id object created_at status error incomplete_details instructions max_output_tokens model output "
                "parallel_tool_calls previous_response_id reasoning store temperature text tool_choice tools top_p "
                "truncation usage user metadata",
    {"output": [ResponseOutputItem], "usage": ResponseUsage}, output_text=property(_output_text))
ResponseStreamEvent = _result_type("ResponseStreamEvent", "type sequence_number response item output_index item_id "
                                                          "content_index part delta text arguments",
                                   {"response": Response, "item": ResponseOutputItem, "part": ResponseOutputText})
#: The typed result of a non-streaming call, by the stream kind it would have.
_RESULT_TYPES = {"chat": ChatCompletion, "completion": TextCompletion}


# The small vocabularies of a call.  Strings (cheap, printable), but named, and every lookup on
# them is exhaustive: an unknown value raises instead of falling through to a default.

#: Where a call's route hangs off (_Call.where): the OpenAI root (``/engines[/<engine>]/v1``),
#: DMR's own API (``/`` or the Docker socket's prefix), or the engine's root outside ``/v1``.
_API_ROOT, _DMR_ROOT, _ENGINE_ROOT = "api", "dmr", "engine"
#: What a 2xx body is (_Call.answer): JSON, plain text, or nothing to keep (read and dropped);
#: _ANY_STATUS: any status is the answer, as (status, the body's first MAX_ERROR_BODY bytes as text).
_JSON_BODY, _TEXT_BODY, _NO_BODY, _ANY_STATUS = "json", "text", "none", "status"
#: What went wrong when no answer came (retry_wait()'s *failure*): connecting failed (nothing was
#: sent); nothing listens on a loopback address or Unix socket; a reused keep-alive connection
#: closed without a byte of answer; the same on a new connection; a TLS verdict (a certificate
#: refused either way, a plain-HTTP server): it cannot change; a TLS handshake that never finished.
_FAILED_CONNECT, _FAILED_REFUSED_LOCAL, _FAILED_STALE, _FAILED_NO_ANSWER = "connect", "refused-local", "stale", "no-answer"
_FAILED_TLS, _FAILED_HANDSHAKE = "tls", "handshake-stalled"
_FAILURES = (_FAILED_CONNECT, _FAILED_REFUSED_LOCAL, _FAILED_STALE, _FAILED_NO_ANSWER, _FAILED_TLS, _FAILED_HANDSHAKE)


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
    """Parse JSON text or UTF-8 bytes into AttrDicts and lists (ValueError if it is not JSON,
    or nested too deeply for the interpreter's recursion limit)."""
    try:
        return _decode_json(data if isinstance(data, str) else data.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None


def _json_object_with(text: str, key: str) -> bool:
    """True if *text* is a JSON object that has *key*."""
    try:
        parsed = loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and key in parsed


# Shapes of the public results, checked where a reply enters: each returns what is wrong, or None.

def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", AttrDict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number")


def _objects(value: Any, what: str) -> Optional[str]:
    if not isinstance(value, list):
        return "%s must be a list, not %s" % (what, _json_kind(value))
    for position, item in enumerate(value):
        if not isinstance(item, dict):
            return "%s[%d] must be an object, not %s" % (what, position, _json_kind(item))
    return None


def _object_shape(reply: Any) -> Optional[str]:
    return None if isinstance(reply, dict) else "the reply must be an object, not %s" % _json_kind(reply)


def _objects_shape(reply: Any) -> Optional[str]:
    return _objects(reply, "the reply")


def _keyed_objects_shape(key: str) -> Callable[[Any], Optional[str]]:
    """The shape of an object whose *key* is a list of objects (choices, data, results)."""
    def check(reply: Any) -> Optional[str]:
        return _object_shape(reply) or _objects(reply.get(key), "'%s'" % key)
    return check


_choices_shape = _keyed_objects_shape("choices")
_results_shape = _keyed_objects_shape("results")


def _embeddings_shape(reply: Any) -> Optional[str]:
    wrong = _keyed_objects_shape("data")(reply)
    if wrong is None:
        for position, item in enumerate(reply["data"]):
            if not isinstance(item.get("embedding"), (list, str)):   # str: encoding_format=base64
                return "data[%d] has no 'embedding' list" % position
            if not isinstance(item.get("index", 0), int):
                return "data[%d]'s 'index' must be a whole number" % position
    return wrong


def _model_list_shape(reply: Any) -> Optional[str]:
    """An OpenAI list ({"data": [...]}) or a bare list, of objects."""
    return _objects(reply, "the reply") if isinstance(reply, list) else _keyed_objects_shape("data")(reply)


SSEEvent = collections.namedtuple("SSEEvent", "event data id retry")
SSEEvent.__doc__ = """One dispatched Server-Sent Event.

``event`` is the type ("message" unless the stream named one), ``data`` the
joined data lines, ``id`` the last event ID seen so far ("" if none) and
``retry`` the last valid reconnection time in milliseconds (None if none).
"""

def _sorted_embeddings(reply: AttrDict) -> AttrDict:
    reply["data"] = sorted(reply["data"], key=lambda item: item.get("index", 0))
    return _typed(reply, CreateEmbeddingResponse)


#: DMR's 412 "backend ... is not installed" for image generation.
_NO_DIFFUSERS = ("DMR's diffusers engine, which generates images, is not installed: install it with "
                 "install_backend(\"diffusers\") (`docker model install-runner --backend diffusers`), "
                 "then ask again")


def _images_shape(reply: Any) -> Optional[str]:
    if not isinstance(reply, dict) or not isinstance(reply.get("data"), list) \
            or not all(isinstance(item, dict) for item in reply["data"]):
        return "expected an object with a list of objects 'data', got %s" % _json_kind(reply)
    return None


def _as_images(reply: Any) -> Any:
    return _typed(reply, ImagesResponse)


def _as_response(reply: Any) -> Any:
    return _typed(reply, Response)


def _served_context(model: Any, name: str) -> Optional[int]:
    """The context size llama.cpp's server reports for *name* in its model list (``meta.n_ctx``),
    or None."""
    if not isinstance(model, dict) or name not in [model.get("id")] + list(model.get("aliases") or ()):
        return None
    meta = model.get("meta")
    size = meta.get("n_ctx") if isinstance(meta, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _model_list(reply: Any) -> List[AttrDict]:
    return _typed(reply["data"] if isinstance(reply, dict) and "data" in reply else reply, [Model])


def _keyed_int_shape(key: str) -> Callable[[Any], Optional[str]]:
    def check(reply: Any) -> Optional[str]:
        if not isinstance(reply, dict) or isinstance(reply.get(key), bool) or not isinstance(reply.get(key), int):
            return "expected an object with an int %r, got %s" % (key, _json_kind(reply))
        return None
    return check


def _input_tokens(reply: Any) -> int:
    return reply["input_tokens"]


def _loaded(text: str) -> AttrDict:
    """The result of DMR's /models/load: its one success line (an error line raises PullError)."""
    event = None
    for line in text.splitlines():
        event = parse_pull_line(line) or event
    if event is None or event.get("type") != "success":
        raise InvalidResponseError("DMR answered the load without its success line: %.200r" % text, body=text)
    return event


def _version_string(reply: Any) -> str:
    return str(reply.get("version")) if isinstance(reply, dict) else str(reply)


# ---------------------------------------------------------------------------
# Pure rules: SSE
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


# ---------------------------------------------------------------------------
# Pure rules: framing
# ---------------------------------------------------------------------------

#: Largest response head (status line and header fields), and largest trailer section.
MAX_HEAD_BYTES = 64 * 1024
#: Most header fields in one head (or trailer section).
MAX_HEADERS = 128
#: Most interim (1xx) responses skipped before the final one.
MAX_INTERIM_RESPONSES = 16
#: Longest Content-Length accepted, in digits (10**19 bytes is far past any cap).
_MAX_LENGTH_DIGITS = 19
#: Longest chunk-size line (hex digits and ignored extensions).
_MAX_CHUNK_LINE = 4096

# bytes.translate(None, delete) drops these: what is left of a field value is forbidden
# (RFC 9110 5.5: VCHAR, SP, HTAB and obs-text).  One C call instead of a regex per header.
_FIELD_VALUE_BYTES = bytes([9]) + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_HEX_BYTES = b"0123456789abcdefABCDEF"
_DIGIT_BYTES = b"0123456789"
#: What a well-formed head may hold at all: field-value bytes and the CRLFs between lines.
_HEAD_BYTES = _FIELD_VALUE_BYTES + b"\r\n"

# What each field may hold, side by side.  Heads we receive are checked as bytes (above, and
# _TOKEN_BYTES: one C call per field); what we send, with these patterns (re caches them).
#: tchar (RFC 9110 5.6.2): the characters of header names and other tokens.
_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_BYTES = _TOKEN_CHARS.encode("ascii")
_TOKEN = "[" + re.escape(_TOKEN_CHARS) + "]+"
#: C0 controls and DEL: never part of a URL, model name or socket path we send.
_CONTROL_CHARS = r"[\x00-\x1f\x7f]"
#: Not in a header value we send: the controls but HTAB (RFC 9110 5.5).
_NOT_IN_A_HEADER_VALUE = r"[\x00-\x08\x0a-\x1f\x7f]"
#: Not in a host: the controls, whitespace and the URL's delimiters.
_BAD_HOST_CHARS = r"[\s/\\?#@\x00-\x1f\x7f]"
#: Not in a model reference: the controls and the space.
_NOT_IN_A_REFERENCE = r"[\x00-\x20\x7f]"
#: Not in an API key: anything but printable ASCII without the space (it goes into a header as is).
_NOT_IN_A_KEY = r"[^\x21-\x7e]"


class HTTPHeaders(collections.abc.Mapping):
    """The header fields of a response, read-only; names are case-insensitive.

    ``headers["content-type"]`` and ``headers.get("Content-Type")`` give the
    first value of a field, get_all() every value in order, items() the
    fields as received.
    """

    __slots__ = ("_fields", "_first", "_names")

    def __init__(self, fields: Sequence[Tuple[str, str]] = ()):
        self._fields = list(fields)
        self._names = [name.lower() for name, _ in self._fields]
        first: Dict[str, str] = {}
        for name, (_, value) in zip(self._names, self._fields):
            if name not in first:
                first[name] = value
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def get_all(self, name: str) -> List[str]:
        """Every value of *name*, in the order received."""
        name = name.lower()
        if name not in self._first:   # speed: framing asks for fields that are mostly absent
            return []
        return [value for field, (_, value) in zip(self._names, self._fields) if field == name]

    @property
    def repeated(self) -> bool:
        """True when some field came more than once."""
        return len(self._first) != len(self._fields)

    def items(self) -> Any:   # type: ignore[override]  # fields as received, repeats included
        return list(self._fields)

    def __repr__(self) -> str:
        return "HTTPHeaders(%r)" % (self._fields,)


ResponseHead = collections.namedtuple("ResponseHead", "version status reason headers")
ResponseHead.__doc__ = """A parsed response head: ``version`` ("HTTP/1.1"), ``status`` (int),
``reason`` (str) and ``headers`` (HTTPHeaders)."""


def _head_end(data: bytes) -> int:
    """Where the blank line that ends a head (CRLF CRLF, or bare LFs) ends; -1 if not yet."""
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n")
    if crlf < 0:
        return lf + 2 if lf >= 0 else -1
    return crlf + 3 if lf < 0 or crlf < lf else lf + 2


def _field_lines(lines: List[bytes], what: str) -> List[Tuple[str, str]]:
    """Header (or trailer) field lines into (name, value) pairs; ProtocolError if malformed.

    A line that starts with a space or tab continues the field before it
    (obsolete line folding, which a user agent must unfold: RFC 9112 5.2).
    """
    if len(lines) > MAX_HEADERS:
        raise ProtocolError("the %s has more than %d fields" % (what, MAX_HEADERS))
    fields: List[Tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise ProtocolError("the %s starts with a folded line %.60r" % (what, line))
            name, value = fields.pop()
            fields.append((name, (value + b" " + line.lstrip(b" \t")).strip(b" \t")))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN_BYTES):
            raise ProtocolError("the %s has a malformed field line %.60r" % (what, line))
        fields.append((name, value.strip(b" \t")))
    for name, value in fields:
        if value.translate(None, _FIELD_VALUE_BYTES):
            raise ProtocolError("the %s field %r holds control characters" % (what, name.decode("ascii")))
    return [(name.decode("ascii"), value.decode("latin-1")) for name, value in fields]


def _plain_fields(lines: List[bytes]) -> Optional[List[Tuple[str, str]]]:
    """The fields of a head already known to hold only allowed bytes, CRLFs and no folding;
    None (the general path of _field_lines decides) for anything else."""
    if len(lines) > MAX_HEADERS + 1:
        return None
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # bytes.isalnum() is ASCII-only: the usual names (letters, digits, dashes) skip the translate
        if not colon or not name or (not name.replace(b"-", b"").isalnum() and name.translate(None, _TOKEN_BYTES)):
            return None
        fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return fields


def parse_response_head(data: bytes) -> Optional[Tuple[ResponseHead, int]]:
    """Parse the response head at the start of *data* (no I/O).

    Returns (head, offset of the body in *data*), or None while the head is
    incomplete.  Lines end in CRLF or a bare LF (RFC 9112 2.2).  Raises
    ProtocolError for a malformed head or one over MAX_HEAD_BYTES, so a peer
    cannot make a reader buffer without end.
    """
    end = _head_end(data)
    if end > MAX_HEAD_BYTES or (end < 0 and len(data) > MAX_HEAD_BYTES):
        raise ProtocolError("the response head is over %d bytes" % MAX_HEAD_BYTES)
    if end < 0:
        return None
    block = data[:end]
    # Speed: a server sends the same head again and again (the same fields, a Content-Length that
    # repeats); the parse is a pure function of these bytes, so it is remembered (a few dozen at most).
    known = _HEADS_SEEN.get(block)
    if known is not None:
        return known, end
    newlines = block.count(b"\n")
    # Speed: the usual head (CRLF line ends only, nothing forbidden in it, no folding) is checked
    # with three C calls and split once; anything else takes the general path below.
    if (newlines == block.count(b"\r") == block.count(b"\r\n") and not block.translate(None, _HEAD_BYTES)
            and b"\n " not in block and b"\n\t" not in block):
        lines = block[:-4].split(b"\r\n")
        fields = _plain_fields(lines)
    else:
        lines = block.split(b"\n")
        del lines[-2:]   # the blank line's two ends
        lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
        fields = None
    status_line = lines[0]
    version, status, reason = status_line[:8], status_line[9:12], status_line[13:]
    if (version not in (b"HTTP/1.1", b"HTTP/1.0") or status_line[8:9] != b" " or len(status) != 3
            or not status.isdigit() or status[:1] == b"0" or status_line[12:13] not in (b"", b" ")
            or reason.translate(None, _FIELD_VALUE_BYTES)):
        raise ProtocolError("the response does not start with an HTTP/1.x status line: %.60r" % status_line)
    headers = HTTPHeaders(fields if fields is not None else _field_lines(lines[1:], "response head"))
    head = ResponseHead(version.decode("ascii"), int(status), reason.decode("latin-1"), headers)
    if len(block) <= _HEAD_KEPT_BYTES:
        if len(_HEADS_SEEN) >= _HEADS_KEPT:
            _HEADS_SEEN.clear()
        _HEADS_SEEN[block] = head
    return head, end


#: Heads parse_response_head() parsed, by their bytes (HTTPHeaders and ResponseHead are read-only).
_HEADS_SEEN: Dict[bytes, ResponseHead] = {}
_HEADS_KEPT = 64
_HEAD_KEPT_BYTES = 2048   # a usual head is a few hundred bytes; a huge one is not worth keeping


class HeadReader:
    """Reads up to the final response head, fed the bytes as they arrive (no I/O).

    feed() returns (head, bytes after it) once a final head is complete, else
    None; interim 1xx responses are skipped (at most MAX_INTERIM_RESPONSES),
    101 is refused.  ``started`` turns true at the first byte: from then on an
    end of the connection is a cut answer, never a reason to send again.
    Both transports read heads through it.
    """

    __slots__ = ("started", "_pieces", "_size", "_tail", "_interim")

    def __init__(self) -> None:
        self.started = False
        self._pieces: List[bytes] = []
        self._size = 0
        self._tail = b""
        self._interim = 0

    def feed(self, chunk: bytes) -> Optional[Tuple[ResponseHead, bytes]]:
        self.started = True
        # A head can only have ended where a blank line arrived: parse only then (linear in a drip).
        if self._pieces:
            edge = self._tail + chunk[:2]   # a blank line may straddle two reads
            self._pieces.append(chunk)
            self._size += len(chunk)
            self._tail = (self._tail + chunk)[-2:]
            if b"\n\n" not in chunk and b"\n\r\n" not in chunk and b"\n\n" not in edge \
                    and b"\n\r\n" not in edge:
                self._check_size()
                return None
            return self._parse(b"".join(self._pieces))
        if b"\n\n" not in chunk and b"\n\r\n" not in chunk:
            self._pieces, self._size, self._tail = [chunk], len(chunk), chunk[-2:]
            self._check_size()
            return None
        return self._parse(chunk)   # speed: the usual head, whole in the first read

    def _check_size(self) -> None:
        if self._size > MAX_HEAD_BYTES:
            raise ProtocolError("the response head grew past %d bytes without ending" % MAX_HEAD_BYTES)

    def _parse(self, data: bytes) -> Optional[Tuple[ResponseHead, bytes]]:
        while True:
            parsed = parse_response_head(data)
            if parsed is None:
                self._pieces, self._size, self._tail = [data], len(data), data[-2:]
                return None
            head, end = parsed
            if not 100 <= head.status < 200:
                return head, data[end:]
            if head.status == 101:
                raise ProtocolError("the server switched protocols (101), which was never asked for")
            self._interim += 1
            if self._interim > MAX_INTERIM_RESPONSES:
                raise ProtocolError("more than %d interim (1xx) responses" % MAX_INTERIM_RESPONSES)
            data = data[end:]
            if not data:
                self._pieces, self._size, self._tail = [], 0, b""
                return None

    def ended(self, reset: bool = False) -> Exception:
        """What the connection ending (or being reset) before the head is complete means."""
        if not self.started:
            return _NoAnswer()
        if reset:
            return _Truncated("the connection was reset in the middle of the response head")
        return ProtocolError("the server closed the connection in the middle of the response head")


def _tokens(headers: HTTPHeaders, name: str) -> List[str]:
    """The comma-separated list values of field *name*, lower-cased (RFC 9110 5.6.1)."""
    return [item.strip().lower() for value in headers.get_all(name) for item in value.split(",")
            if item.strip()]


def body_framing(head: ResponseHead, method: str) -> Tuple[Any, bool]:
    """(body decoder, keep-alive) for a final response to *method* (RFC 9112 6.3).

    HEAD, 204 and 304 have no body; ``Transfer-Encoding: chunked`` wins over
    Content-Length (and then the connection is not reused: a server that sends
    both is not to be trusted with another request); a Content-Length must be
    digits, and all its values the same; neither means the body ends when the
    server closes.  Any other transfer coding is refused: we never offer one.
    """
    headers = head.headers
    first = headers._first
    if ("connection" not in first and "transfer-encoding" not in first and head.version == "HTTP/1.1"
            and method != "HEAD" and head.status not in (204, 304) and not headers.repeated):
        # Speed: the usual answer, one plain Content-Length and nothing else that frames it.
        length = first.get("content-length")
        if length is not None and length.isdigit() and length.isascii() and len(length) <= _MAX_LENGTH_DIGITS:
            return LengthDecoder(int(length)), True
    connection = _tokens(headers, "connection")
    keep_alive = "close" not in connection and (head.version == "HTTP/1.1" or "keep-alive" in connection)
    if method == "HEAD" or head.status in (204, 304):
        return LengthDecoder(0), keep_alive
    codings = _tokens(headers, "transfer-encoding")
    if codings or "transfer-encoding" in headers:
        if codings != ["chunked"]:
            raise ProtocolError("unsupported Transfer-Encoding %r (only chunked is accepted; we "
                                "asked for no other coding)" % ", ".join(headers.get_all("transfer-encoding")))
        return ChunkedDecoder(), keep_alive and "content-length" not in headers
    lengths = {item.strip() for value in headers.get_all("content-length") for item in value.split(",")}
    if lengths:
        length = lengths.pop()
        if lengths:
            raise ProtocolError("conflicting Content-Length values %s"
                                % ", ".join(headers.get_all("content-length")))
        if not length or length.strip(_DIGIT_BYTES.decode()) or len(length) > _MAX_LENGTH_DIGITS:
            raise ProtocolError("bad Content-Length %.40r: it must be a decimal number of bytes" % length)
        return LengthDecoder(int(length)), keep_alive
    return UntilCloseDecoder(), False


class LengthDecoder:
    """The body of a response with a Content-Length (no I/O).

    pieces(data) yields the payload in *data*; ``done`` turns true at the last
    byte, and anything after it is kept in ``leftover`` (a server that sends
    more than it declared: the connection is not reused).  complete_at_eof()
    says whether the server closing now ends the body properly.
    """

    __slots__ = ("done", "leftover", "length", "_left")

    def __init__(self, length: int):
        self.length = length     # as declared
        self._left = length
        self.done = not length
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        if self.done:
            self.leftover = self.leftover or data[:1]
            return
        left = self._left
        if len(data) >= left:
            self.leftover = data[left:left + 1]
            self._left = 0
            self.done = True
            yield data[:left]
            return
        self._left = left - len(data)
        yield data

    def complete_at_eof(self) -> bool:
        return self.done

    def skip(self, count: int) -> None:
        """*count* payload bytes were read past this decoder (straight into a buffer)."""
        if count > self._left:
            raise ValueError("skip(%d) past the end of the body (%d bytes left)" % (count, self._left))
        self._left -= count
        self.done = not self._left


class UntilCloseDecoder:
    """A body that ends when the server closes the connection (no length, not chunked)."""

    __slots__ = ("done", "leftover")
    length = None

    def __init__(self) -> None:
        self.done = False
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        return data

    def pieces(self, data: bytes) -> Iterator[bytes]:
        yield data

    def complete_at_eof(self) -> bool:
        self.done = True
        return True


class ChunkedDecoder:
    """Incremental, strict decoder of HTTP/1.1 chunked transfer coding (no I/O).

    feed() takes raw body bytes as they arrive and returns the payload they
    complete; pieces() yields it chunk by chunk; ``done`` turns true after the
    last chunk and its trailers, and bytes past that are kept in ``leftover``.
    RFC 9112 7.1, strictly: a chunk size is 1 to 16 hex digits (no sign,
    prefix, space or underscore), extensions after ``;`` are ignored, size
    lines and chunk data end in CRLF, trailer fields are read to their blank
    line and count against MAX_HEAD_BYTES.  Anything else raises
    ProtocolError.  http.client decodes one chunk per read1() call, with a
    regex and several calls per chunk; LLM servers send one small chunk per
    token, so a stream decodes its body here, a network read at a time.
    """

    __slots__ = ("done", "leftover", "_pending", "_left", "_state", "_trailer", "_trailer_size")

    def __init__(self) -> None:
        self.done = False
        self.leftover = b""
        self._pending = b""      # an unfinished size line, chunk end or trailer
        self._left = 0           # payload bytes still due in the current chunk
        self._state = "size"     # size | data | crlf | trailer
        self._trailer: List[bytes] = []
        self._trailer_size = 0

    length = None

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The payload in *data*, one piece per chunk as it is decoded.  Exhaust it
        before the next call."""
        if self.done:
            self.leftover = self.leftover or data[:1]
            return
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == "data":
                take = min(self._left, end - pos)
                yield data[pos:pos + take]
                pos += take
                self._left -= take
                if not self._left:
                    self._state = "crlf"
                continue
            if state == "crlf":
                if end - pos < 2:
                    if data[pos:] != b"\r":
                        raise ProtocolError("a chunk is longer than its size (no CRLF after its data)")
                    self._pending = data[pos:]
                    return
                if data[pos:pos + 2] != b"\r\n":
                    raise ProtocolError("a chunk is longer than its size (no CRLF after its data)")
                pos += 2
                self._state = "size"
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._pending = data[pos:]
                if len(self._pending) > (_MAX_CHUNK_LINE if state == "size" else MAX_HEAD_BYTES):
                    raise ProtocolError("a chunk-size or trailer line over %d bytes" % _MAX_CHUNK_LINE)
                return
            line = data[pos:newline]
            pos = newline + 1
            if state == "size":
                size = self._size(line)
                stop = pos + size
                # The usual case, a whole small chunk in this read: one slice, no state change.
                if size and data[stop:stop + 2] == b"\r\n":
                    yield data[pos:stop]
                    pos = stop + 2
                elif size:
                    self._left, self._state = size, "data"
                else:
                    self._state = "trailer"
            else:
                self._end_trailer_line(line)
                if self.done:
                    self.leftover = data[pos:pos + 1]
                    return

    @staticmethod
    def _size(line: bytes) -> int:
        if line[-1:] != b"\r" or len(line) > _MAX_CHUNK_LINE:
            raise ProtocolError("a chunk-size line does not end in CRLF, or is over %d bytes: %.40r"
                                % (_MAX_CHUNK_LINE, line))
        digits = line[:-1].split(b";", 1)[0]
        if not 0 < len(digits) <= 16 or digits.translate(None, _HEX_BYTES):
            raise ProtocolError("bad chunk size %.40r: it must be 1 to 16 hex digits" % digits)
        return int(digits, 16)

    def _end_trailer_line(self, line: bytes) -> None:
        if line[-1:] == b"\r":
            line = line[:-1]
        if line:
            self._trailer.append(line)
            self._trailer_size += len(line) + 2
            if self._trailer_size > MAX_HEAD_BYTES or len(self._trailer) > MAX_HEADERS:
                raise ProtocolError("the trailer section is over %d bytes or %d fields"
                                    % (MAX_HEAD_BYTES, MAX_HEADERS))
            return
        _field_lines(self._trailer, "trailer section")   # checked, then ignored: we use no trailer
        self._trailer = []
        self.done = True

    def complete_at_eof(self) -> bool:
        return self.done


# ---------------------------------------------------------------------------
# Pure rules: addresses
# ---------------------------------------------------------------------------

# Patterns are compiled on first use (re caches them), which keeps the import cheap.
_SCHEME = r"([A-Za-z][A-Za-z0-9+.\-]*)://"
#: A scheme whose '://' was mistyped ('http//h', 'http:/h', 'http:\\h', 'http:h'); 'http:8080' is
#: host 'http', port 8080, as 'localhost:12434' is.
_MISTYPED_SCHEME = r"(?i)(https?|tcp)([:/\\]*[/\\][:/\\]*|:+(?!\d))"
_ENGINE_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
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
    if re.search(_CONTROL_CHARS, url):
        raise ValueError("base URL %r holds a control character (a stray newline or tab?): remove it"
                         % _redact(url))
    text = url.strip()
    if not text:
        raise ValueError("base URL is empty: use e.g. %r (or leave it unset for the default)"
                         % DEFAULT_BASE_URL)
    scheme = re.match(_SCHEME, text)
    likely = _likely_url(text, scheme)
    if likely and likely[1].endswith("://"):
        raise ValueError("base URL %r has no host: use e.g. %r" % (_redact(text), DEFAULT_BASE_URL))
    if likely:
        raise ValueError("base URL %r is almost a URL (%s): did you mean %s?" % ((_redact(text),) + likely))
    if scheme is None:
        text = "http://" + text          # 'localhost:12434', as MODEL_RUNNER_HOST allows
    elif scheme.group(1).lower() == "tcp":
        text = "http://" + text[scheme.end():]   # DOCKER_HOST style
    parts = urllib.parse.urlsplit(text)
    shown = _redact(text)
    scheme_name = parts.scheme.lower()
    if scheme_name not in ("http", "https"):
        import difflib   # only here, for the hint

        close = difflib.get_close_matches(scheme_name, ("http", "https"), 1, 0.7)
        hint = " (did you mean %s://%s?)" % (close[0], shown[len(parts.scheme) + 3:]) if close else ""
        raise ValueError("base URL %r has scheme %r: only http:// and https:// are supported%s"
                         % (shown, parts.scheme, hint))
    if "@" in text:   # anywhere: a password holding '/' or '?' ends urlsplit's netloc early
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


def _likely_url(text: str, scheme: Any) -> Optional[Tuple[str, str]]:
    """(what is wrong, the URL meant) for a URL whose scheme was mistyped or written twice
    ('http//h:1', 'http:/h', 'http://http://h', 'http:///h'), else None: such a text would
    otherwise become host 'http', port 80."""
    if scheme is None:
        typo = re.match(_MISTYPED_SCHEME, text)
        if typo is None:
            return None
        return "'%s' after the scheme, not '://'" % typo.group(2), _redact(typo.group(1).lower() + "://" +
                                                                           text[typo.end():])
    rest = text[scheme.end():]
    again = re.match(_SCHEME, rest) or re.match(_MISTYPED_SCHEME, rest)
    if again and again.group(1).lower() in ("http", "https", "tcp"):
        return "the scheme is written twice", _redact(again.group(1).lower() + "://" + rest[again.end():])
    if scheme.group(1).lower() in ("http", "https", "tcp") and rest[:1] in ("/", "\\") and rest.lstrip("/\\"):
        return "too many slashes", _redact(scheme.group(1).lower() + "://" + rest.lstrip("/\\"))
    return None


def _redact(url: str) -> str:
    """*url* without any user:password@, for messages: all up to the last '@' goes, as a
    password may itself hold '@', '/' or ':'."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://") if "://" in url.split("@", 1)[0] else ("", "", url)
    return scheme + sep + "***@" + rest.rsplit("@", 1)[1]


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
    if re.search(_CONTROL_CHARS, model):
        raise ValueError("model %r holds a control character: model names never do" % (model,))
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
    ``error``, or a top-level ``message``; gateways built on FastAPI answer
    ``{"detail": "..."}`` or ``{"detail": [{"msg": ...}]}``); DMR itself
    answers plain text.  An HTML page (a proxy's error page) becomes its
    title or first text, one line.  The message is "" when the body says
    nothing.
    """
    text = body.strip()
    try:
        parsed = loads(text)
    except ValueError:
        return (_html_text(text) if _looks_like_html(text) else text), None, None
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
        detail = parsed.get("detail")
        if isinstance(detail, str) and detail:
            return detail, None, None
        if isinstance(detail, list):
            said: List[str] = [_validation_text(item) for item in detail
                               if isinstance(item, dict) and isinstance(item.get("msg"), str)]
            if said:
                return "; ".join(said), None, None
    return text, None, None


def _validation_text(item: Mapping[str, Any]) -> str:
    """One of FastAPI's validation errors: "model: Field required" from its loc and msg."""
    loc = item.get("loc")
    where = [str(part) for part in loc if isinstance(part, (str, int))] if isinstance(loc, list) else []
    if where and where[0] in ("body", "query", "path", "header", "cookie"):
        where = where[1:]   # where in the request, which the field name already says
    return "%s: %s" % (".".join(where), item["msg"]) if where else item["msg"]


def _looks_like_html(text: str) -> bool:
    start = text[:200].lstrip().lower()
    return start.startswith(("<!doctype html", "<html", "<head", "<body", "<title"))


def _html_text(page: str, limit: int = 200) -> str:
    """One line from an HTML page: its title, else its first text (bounded, tags and entities gone)."""
    import html

    page = page[:4096]   # where a title or a heading is; and the regexes below stay cheap on any page
    title = re.search(r"<title[^>]*>(.*?)</title", page, re.I | re.S)
    body = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", page, flags=re.I | re.S)
    found = title.group(1) if title and title.group(1).strip() else re.sub(r"<[^>]*>", " ", body)
    line = " ".join(html.unescape(found).split())
    return line[:limit] + ("..." if len(line) > limit else "") if line else "an HTML page without text"


def _str_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


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


def _model_query(name: str) -> str:
    """``?model=NAME`` for DMR's filters, *name* percent-quoted (``&``, ``=``, ``#``, ``+``,
    ``%``, ``?`` and spaces cannot change the query; a name no model has simply matches none)."""
    return "?model=" + urllib.parse.quote(name, safe="/:@")


def _is_local_host(host: str) -> bool:
    """Hosts a proxy must never see: loopback and Docker's own names."""
    host = host.lower().rstrip(".")
    return (host == "localhost" or host.endswith(".localhost") or host.startswith("127.")
            or host == "::1" or host == "docker.internal" or host.endswith(".docker.internal"))


# ---------------------------------------------------------------------------
# Pure rules: contexts and TLS
# ---------------------------------------------------------------------------
#
# Which Model Runner a client reaches and how it checks its certificate, resolved as the
# `docker model` CLI resolves them (docker/model-runner: cmd/cli/desktop/context.go DetectContext,
# cmd/cli/pkg/modelctx/store.go, pkg/tls/certs.go LoadClientTLSConfig).  Files are read here;
# nothing connects.

#: The reserved name of the auto-detected context (never stored in contexts.json).
DEFAULT_CONTEXT = "default"


class _TLSSettings(collections.namedtuple("_TLSSettings", "verify cert ssl_context dmr_ca source")):
    """How https connections are checked: *verify* True (the system's CAs), False (nothing
    checked) or a CA file or directory; *cert* None, a file, or (cert, key); *ssl_context*
    the caller's own (then nothing else applies); *dmr_ca* DMR's CA file, trusted as well;
    *source* where *verify* came from, for messages."""

    __slots__ = ()

    def shown(self) -> str:
        """One line for `status` and messages."""
        if self.ssl_context is not None:
            return "the caller's ssl_context"
        if self.verify is False:
            text = "certificate not checked (%s)" % self.source
        elif self.verify is True:
            text = "system CAs" + (" and DMR's CA %s" % self.dmr_ca if self.dmr_ca else "")
        else:
            text = "CA %s (%s)" % (self.verify, self.source)
        return text + ("; client certificate %s" % (self.cert if isinstance(self.cert, str) else self.cert[0])
                       if self.cert else "")


_DEFAULT_TLS = _TLSSettings(True, None, None, None, "default")


class _Endpoint(collections.namedtuple("_Endpoint", "base_url source context tls")):
    """Where a client points: *base_url* (None: found by discovery), *source* (what named it),
    *context* (the named context used, or None) and its _TLSSettings."""

    __slots__ = ()


def _docker_config_dir() -> str:
    """$DOCKER_CONFIG, else ~/.docker: where `docker model context` keeps model/contexts.json."""
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def _contexts_path() -> str:
    return os.path.join(_docker_config_dir(), "model", "contexts.json")


#: contexts.json files already warned about (path, mtime): one warning each, not one per client.
_WARNED_CONTEXTS: set = set()


def _read_contexts(strict: bool) -> Optional[Dict[str, Any]]:
    """The parsed contexts.json ({"current": ..., "contexts": {...}}), None if there is none.

    A file that is not JSON (or not its shape) raises ValueError naming it when *strict* (a
    context was asked for by name, or listed); otherwise it is one warning and None, as the
    Go CLI warns and falls back to auto-detection.  It is never written.
    """
    path = _contexts_path()
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        problem = "cannot be read (%s)" % _describe_file_error(exc)
    else:
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            problem = "is not JSON (%s)" % exc
        else:
            contexts = parsed.get("contexts") if isinstance(parsed, dict) else None
            if isinstance(contexts, dict) and isinstance(parsed.get("current") or "", str) \
                    and all(isinstance(value, dict) for value in contexts.values()):
                return parsed
            problem = 'is not a contexts file ({"version": 1, "current": NAME, "contexts": {NAME: {...}}})'
    message = "%s %s" % (path, problem)
    if strict:
        raise ValueError(message)
    try:
        key: Any = (path, os.stat(path).st_mtime_ns)
    except OSError:
        key = (path, None)
    if key not in _WARNED_CONTEXTS:
        _WARNED_CONTEXTS.add(key)
        _log.warning("%s: ignoring it, as `docker model` does (the active context is not used)", message)
    return None


def _describe_file_error(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _named_context(name: str) -> Dict[str, Any]:
    """The configuration of context *name* (ValueError naming it and the known ones)."""
    store = _read_contexts(strict=True)
    contexts = store["contexts"] if store else {}
    if name in contexts:
        return contexts[name]
    known = ", ".join([DEFAULT_CONTEXT] + sorted(contexts))
    raise ValueError("no model context %r in %s (known: %s; `docker model context ls` lists them)"
                     % (name, _contexts_path(), known))


def _active_context() -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(name, configuration) of the context `docker model context use` made active, or
    (None, None) for the default one; a name the file does not hold warns, as the Go CLI does."""
    store = _read_contexts(strict=False)
    name = store.get("current") if store else None
    if not name or name == DEFAULT_CONTEXT:
        return None, None
    config = store["contexts"].get(name) if store else None
    if config is None:
        _log.warning("%s: the active context %r is not in it; auto-detecting instead", _contexts_path(), name)
        return None, None
    return name, config


def _env_switch(name: str) -> Optional[bool]:
    """A `docker model` switch: None when unset; set, only the exact string "true" is on."""
    value = os.environ.get(name)
    return None if value is None else value == "true"


def _tls_host(host: str, use_tls: bool) -> str:
    """A MODEL_RUNNER_HOST or context host as DetectContext reads it: no scheme gets https://
    with TLS on (else http://), and http:// becomes https:// with TLS on."""
    text = host.strip()
    lowered = text.lower()
    if not lowered.startswith(("http://", "https://")):
        return ("https://" if use_tls else "http://") + text
    if use_tls and lowered.startswith("http://"):
        return "https://" + text[len("http://"):]
    return text


def _check_tls_arguments(verify: Any, cert: Any, ssl_context: Any) -> None:
    if verify is not None and not isinstance(verify, (bool, str, os.PathLike)):
        raise TypeError("verify= takes True, False or the path of a CA file or directory, not %s" % _shown(verify))
    if cert is not None and not isinstance(cert, (str, os.PathLike)) and not (
            isinstance(cert, tuple) and len(cert) == 2 and all(isinstance(part, (str, os.PathLike)) for part in cert)):
        raise TypeError("cert= takes the path of a certificate file (with its key), or a (cert, key) pair of "
                        "paths, not %s" % _shown(cert))
    if ssl_context is not None:
        if type(ssl_context).__name__ != "SSLContext" and not hasattr(ssl_context, "wrap_socket"):
            raise TypeError("ssl_context= takes an ssl.SSLContext, not %s" % _shown(ssl_context))
        if verify is not None or cert is not None:
            raise ValueError("pass ssl_context= alone: verify= and cert= are settings of the context it already is")


def _resolve_endpoint(base_url: Optional[str], context: Optional[str], verify: Any = None, cert: Any = None,
                      ssl_context: Any = None) -> _Endpoint:
    """Where a client points and how it checks TLS, from its arguments, the environment and
    the active context, in this order (the README's configuration table):

    base URL: base_url= / context=NAME (not both), DOCKER_MODEL_RUNNER_API_BASE, MODEL_RUNNER_HOST,
    the active context's host, https://localhost:12444 when MODEL_RUNNER_TLS=true, else found.
    TLS, field by field: verify= / ssl_context= / cert=, then each MODEL_RUNNER_TLS* variable
    that is set, then the context's field; TLS on with neither a CA nor skip-verify trusts
    DMR's own CA (DMR_CA_CERT) as well as the system's.
    """
    _check_tls_arguments(verify, cert, ssl_context)
    if context is not None:
        if not isinstance(context, str) or not context:
            raise TypeError("context= takes the name of a `docker model context`, not %s" % _shown(context))
        if base_url is not None:
            raise ValueError("pass base_url= or context=, not both: a context is a base URL with its TLS settings")
    use_tls, skip, ca = _env_switch(ENV_TLS), _env_switch(ENV_TLS_SKIP_VERIFY), os.environ.get(ENV_TLS_CA_CERT)
    skip_source, ca_source = "$" + ENV_TLS_SKIP_VERIFY, "$" + ENV_TLS_CA_CERT
    name: Optional[str] = None
    config: Any = None
    host: Optional[str] = None
    source = "base_url=" if base_url is not None else None
    if context is not None and context != DEFAULT_CONTEXT:
        name, config = context, _named_context(context)
    elif base_url is None and context is None:
        if os.environ.get(ENV_BASE_URL):
            base_url, source = os.environ[ENV_BASE_URL], "$" + ENV_BASE_URL
        elif os.environ.get(ENV_HOST):
            host, source = os.environ[ENV_HOST], "$" + ENV_HOST
        else:
            name, config = _active_context()
    if config is not None:
        tls = config.get("tls") if isinstance(config.get("tls"), dict) else {}
        if use_tls is None:
            use_tls = tls.get("enabled") is True
        if skip is None:
            skip, skip_source = tls.get("skipVerify") is True, "context %s" % name
        if ca is None and isinstance(tls.get("caCert"), str) and tls["caCert"]:
            ca, ca_source = tls["caCert"], "context %s" % name
        host, source = config.get("host") if isinstance(config.get("host"), str) else "", "context %s" % name
        if not host:
            raise ValueError("context %r in %s has no host" % (name, _contexts_path()))
    if host is not None:
        base_url = _tls_host(host, bool(use_tls))
    elif base_url is None and use_tls:
        base_url, source = DMR_TLS_BASE_URL, "$" + ENV_TLS
    if ssl_context is not None:
        settings = _TLSSettings(True, None, ssl_context, None, "ssl_context=")
    elif verify is not None:
        settings = _TLSSettings(verify if isinstance(verify, bool) else os.fspath(verify), None, None, None,
                                "verify=")
    elif skip:
        settings = _TLSSettings(False, None, None, None, skip_source)
    elif ca:
        settings = _TLSSettings(ca, None, None, None, ca_source)
    else:
        settings = _TLSSettings(True, None, None, os.path.expanduser(DMR_CA_CERT) if use_tls else None, "default")
    if cert is not None:
        settings = settings._replace(cert=os.fspath(cert) if not isinstance(cert, tuple)
                                     else (os.fspath(cert[0]), os.fspath(cert[1])))
    if settings.dmr_ca and not os.path.isfile(settings.dmr_ca):
        settings = settings._replace(dmr_ca=None)   # no DMR CA here: the system's CAs alone
    if base_url is not None and base_url.strip().lower().startswith("https://"):
        _check_tls_files(settings)
    return _Endpoint(base_url, source, name, settings)


def _check_tls_files(settings: _TLSSettings) -> None:
    """Files named for TLS exist (ValueError naming the file and who named it); their content
    is read at the first https connection."""
    if isinstance(settings.verify, str) and not os.path.exists(os.path.expanduser(settings.verify)):
        raise ValueError("the CA file %r (from %s) does not exist" % (settings.verify, settings.source))
    cert = settings.cert
    for path in (cert,) if isinstance(cert, str) else cert or ():
        if not os.path.isfile(os.path.expanduser(path)):
            raise ValueError("the client certificate file %r (cert=) does not exist" % path)


def _context_list() -> List[AttrDict]:
    """`dmr-client context ls`: the default context, then the named ones sorted, as the Go CLI lists them."""
    store = _read_contexts(strict=True) or {"contexts": {}}
    current = store.get("current") or DEFAULT_CONTEXT
    rows = [AttrDict(name=DEFAULT_CONTEXT, host="(auto-detect)", tls=AttrDict(enabled=False),
                     description="Auto-detected Docker context", current=current == DEFAULT_CONTEXT)]
    for name in sorted(store["contexts"]):
        config = store["contexts"][name]
        tls = config.get("tls") if isinstance(config.get("tls"), dict) else {}
        rows.append(AttrDict(name=name, host=config.get("host") or "", tls=AttrDict(tls),
                             description=config.get("description") or "", current=current == name))
    return rows


# ---------------------------------------------------------------------------
# Pure rules: streams
# ---------------------------------------------------------------------------


def _shape_error(what: str, value: Any) -> InvalidResponseError:
    text = repr(value)
    return InvalidResponseError("%s, not %s" % (what, text[:200] + ("..." if len(text) > 200 else "")),
                                body=text[:MAX_ERROR_BODY])


#: A fold keeps at most this many text pieces per field before joining them into one block,
#: so a stream of a million one-token chunks costs the text, not a million str objects.
_FOLD_BLOCK = 1024
_FOLD_MASK = _FOLD_BLOCK - 1   # a power of two: "every _FOLD_BLOCK chunks" is one AND
#: A stream folds its chunks in batches of this many (see StreamTracker): at most about 2.5 MB
#: of parsed chunks wait, and a stream shorter than this is folded only if final() asks.
_FOLD_BATCH = 2048


class ChatFold:
    """Folds ``chat.completion.chunk`` objects, one at a time, into the
    ``chat.completion`` they add up to (no I/O; what fold_chat_chunks() and
    ChatStream.final() use).

    add() checks each chunk's shape (InvalidResponseError otherwise) and keeps
    only the fold, never the chunk: memory grows with the text, not the
    number of chunks.  Per choice (``n > 1`` too): text deltas (``content``,
    ``reasoning_content``, ``refusal`` ...) are joined, ``tool_calls`` are
    merged by ``index`` (``id`` and ``name`` arrive once, ``arguments`` in
    fragments, the same index may come twice in one chunk), the last
    ``finish_reason`` wins and ``logprobs.content`` lists are concatenated.
    ``usage`` comes from the ``choices: []`` chunk; ``id``, ``model`` and
    ``created`` from the first chunk that has them.  ``complete`` is true once
    every choice seen has its finish_reason.
    """

    object_name = "chat.completion"
    chunk_type: Any = ChatCompletionChunk    # what each chunk reads as (openai-python's names)
    result_type: Any = ChatCompletion        # what the fold reads as
    _delta = "delta"   # where a choice keeps its new text
    _delta_shape = "an object 'delta'"

    def __init__(self) -> None:
        self.chunks = 0
        self._head = AttrDict(object=self.object_name)
        # index -> (the folded choice, its text pieces since the last block): one lookup per choice
        self._states: Dict[int, Tuple[AttrDict, Dict[str, List[str]]]] = {}
        self._blocks: Dict[int, Dict[str, List[str]]] = {}    # joined blocks of earlier pieces
        self._calls: Dict[int, Dict[int, Any]] = {}
        self._unfinished = 0
        self._missing: Tuple[str, ...] = ("id", "created", "model", "system_fingerprint")
        self._pieces = 0   # non-empty text pieces in joined blocks, and tool-call fragments: see pieces

    @property
    def pieces(self) -> int:
        """How many pieces of answer the chunks carried: non-empty text deltas and tool-call
        fragments (about a token each), not the role, finish or usage chunks.  Counted when
        pieces are joined, off the per-chunk path."""
        waiting = sum(len(parts) - parts.count("") for _, texts in self._states.values() for parts in texts.values())
        return self._pieces + waiting

    @property
    def complete(self) -> bool:
        """True when at least one choice was seen and every one has its finish_reason."""
        return bool(self._states) and not self._unfinished

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Fold one chunk in (InvalidResponseError if it has the wrong shape)."""
        try:
            self.add_unchecked(chunk)
        except (AttributeError, TypeError):
            raise self.shape_error(chunk) from None

    def shape_error(self, chunk: Any) -> InvalidResponseError:
        return _shape_error("a stream chunk must be an object whose 'choices' are objects with an int "
                            "'index' and %s" % self._delta_shape, chunk)

    def add_unchecked(self, chunk: Mapping[str, Any]) -> None:
        """add(), except that a chunk of the wrong shape raises the AttributeError or
        TypeError it causes (add() and StreamTracker turn those into InvalidResponseError)."""
        # The hot path of every stream: shapes are checked by what they break (.get on a list,
        # a list as a dict key ...), not by isinstance() per chunk and choice; the usual text
        # delta needs no method call; everything rarer goes to _add_other().
        if self._missing:
            self._add_head(chunk)
        usage = chunk.get("usage")
        if usage is not None:
            self._head["usage"] = _attrs(usage)
        timings = chunk.get("timings")   # llama.cpp's own speed figures, in the last chunk
        if timings is not None:
            self._head["timings"] = _attrs(timings)
        choices = chunk.get("choices")
        if choices:
            if choices.__class__ is not list:
                raise _shape_error("'choices' in a stream chunk must be a list", choices)
            states = self._states
            for choice in choices:
                index = choice.get("index", 0)
                state = states.get(index)
                if state is None:
                    state = self._new_choice(index)
                folded, texts = state
                delta = choice.get(self._delta)
                if delta:
                    if delta.__class__ is str:   # a completion's text; never a chat delta
                        if self._delta != "text":
                            raise TypeError("a str delta")
                        delta = {"text": delta}
                    for key, value in delta.items():
                        if value.__class__ is str and key != "role":
                            texts[key].append(value)   # a defaultdict(list): one lookup
                        elif value is not None:
                            self._add_other(index, folded, key, value)
                finish = choice.get("finish_reason")
                if finish is not None:
                    if folded["finish_reason"] is None:
                        self._unfinished -= 1
                    folded["finish_reason"] = finish
                if "logprobs" in choice:
                    self._add_logprobs(folded, choice["logprobs"])
        self.chunks += 1
        if not self.chunks & _FOLD_MASK:
            self._join_blocks()

    def _add_other(self, index: int, folded: AttrDict, key: str, value: Any) -> None:
        """A delta field that is not text: tool calls, a function call, or a value to keep."""
        if key == "tool_calls":
            _merge_tool_calls(self._calls.setdefault(index, {}), value)
            self._pieces += 1
        elif key == "function_call" and isinstance(value, dict):
            self._pieces += 1
            message = folded["message"]
            call = message.get("function_call")
            if call is None:
                call = message["function_call"] = _new_call()["function"]
            _merge_function(call, value)
        elif self._delta == "delta":
            folded["message"][key] = _attrs(value)
        else:
            raise _shape_error("a completion choice's 'text' must be a string", value)

    def _add_head(self, chunk: Mapping[str, Any]) -> None:
        # id, created, model, system_fingerprint: each from the first chunk that has it.
        found = [key for key in self._missing if chunk.get(key) is not None]
        if found:
            for key in found:
                self._head[key] = chunk[key]
            self._missing = tuple(key for key in self._missing if key not in found)

    @staticmethod
    def _add_logprobs(folded: AttrDict, logprobs: Any) -> None:
        if logprobs and isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            folded.setdefault("logprobs", AttrDict(content=[]))["content"].extend(_attrs(logprobs["content"]))

    def _new_choice(self, index: Any) -> Tuple[AttrDict, Dict[str, List[str]]]:
        if index.__class__ is not int:
            raise _shape_error("a choice's 'index' must be a whole number", index)
        folded = self._empty_choice(index)
        texts: Dict[str, List[str]] = collections.defaultdict(list)
        self._blocks[index] = {}
        self._unfinished += 1
        state = self._states[index] = (folded, texts)
        return state

    def _empty_choice(self, index: int) -> AttrDict:
        return AttrDict(index=index, message=AttrDict(role="assistant", content=None), finish_reason=None)

    def _join_blocks(self) -> None:
        """Join each field's recent pieces into one block (linear: a block is never joined again)."""
        for index, (_, texts) in self._states.items():
            blocks = self._blocks[index]
            for key, parts in texts.items():
                if parts:
                    blocks.setdefault(key, []).append("".join(parts))
                    self._pieces += len(parts) - parts.count("")
                    parts.clear()

    def _joined(self, index: int, key: str) -> str:
        return "".join(self._blocks[index].get(key, []) + self._states[index][1].get(key, []))

    def result(self) -> AttrDict:
        """The folded response so far."""
        result = AttrDict(self._head)
        choices = []
        for index in sorted(self._states):
            folded = AttrDict(self._states[index][0])
            self._finish_choice(index, folded)
            choices.append(folded)
        result["choices"] = choices
        return result

    def _finish_choice(self, index: int, folded: AttrDict) -> None:
        message = folded["message"] = AttrDict(folded["message"])
        for key in set(self._states[index][1]) | set(self._blocks[index]):
            message[key] = self._joined(index, key)
        if "function_call" in message:
            message["function_call"] = _joined_function(message["function_call"])
        if index in self._calls:
            calls = self._calls[index]
            message["tool_calls"] = [_joined_call(calls[i]) for i in sorted(calls)]

    @staticmethod
    def text(result: AttrDict) -> str:
        """The text of the first choice of a folded *result*."""
        choices = result.choices
        return (choices[0].message.content or "") if choices else ""


class CompletionFold(ChatFold):
    """ChatFold for streamed ``/completions`` chunks: one ``text_completion``."""

    object_name = "text_completion"
    chunk_type = TextCompletionChunk
    result_type = TextCompletion
    _delta = "text"
    _delta_shape = "a string 'text'"

    def _empty_choice(self, index: int) -> AttrDict:
        return AttrDict(index=index, text="", finish_reason=None)

    def _finish_choice(self, index: int, folded: AttrDict) -> None:
        folded["text"] = self._joined(index, "text")

    @staticmethod
    def text(result: AttrDict) -> str:
        choices = result.choices
        return choices[0].text if choices else ""


def fold_chat_chunks(chunks: Iterable[Mapping[str, Any]]) -> AttrDict:
    """Fold streamed ``chat.completion.chunk`` objects into the ``chat.completion``
    they add up to (see ChatFold for the rules)."""
    fold = ChatFold()
    for chunk in chunks:
        fold.add(chunk)
    return fold.result()


def fold_completion_chunks(chunks: Iterable[Mapping[str, Any]]) -> AttrDict:
    """Fold streamed ``/completions`` chunks into one ``text_completion``."""
    fold = CompletionFold()
    for chunk in chunks:
        fold.add(chunk)
    return fold.result()


def _attrs(value: Any) -> Any:
    """*value* with every dict in it an AttrDict (chunks from json.loads without our hook)."""
    if isinstance(value, dict):
        return value if isinstance(value, AttrDict) else AttrDict((k, _attrs(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_attrs(item) for item in value]
    return value


def _new_call() -> AttrDict:
    # Arguments are gathered as a list of fragments and joined once, at the end.
    return AttrDict(id=None, type="function", function=AttrDict(name="", arguments=[]))


def _merge_tool_calls(calls: Dict[int, AttrDict], fragments: Any) -> None:
    if fragments is None:
        return
    if fragments.__class__ is not list:
        raise _shape_error("'tool_calls' in a delta must be a list", fragments)
    for fragment in fragments:
        if not isinstance(fragment, dict):
            raise _shape_error("each tool call fragment must be a JSON object", fragment)
        index = fragment.get("index", 0)
        if index.__class__ is not int:
            raise _shape_error("a tool call's 'index' must be a whole number", index)
        call = calls.get(index)
        if call is None:
            call = calls[index] = _new_call()
        if fragment.get("id"):
            call["id"] = fragment["id"]
        if fragment.get("type"):
            call["type"] = fragment["type"]
        function = fragment.get("function")
        if function is not None:
            if not isinstance(function, dict):
                raise _shape_error("a tool call's 'function' must be a JSON object", function)
            _merge_function(call["function"], function)


def _merge_function(function: AttrDict, fragment: Mapping[str, Any]) -> None:
    # The name comes whole in one fragment; arguments come in pieces to be joined.
    name, arguments = fragment.get("name"), fragment.get("arguments")
    if name and not function["name"]:
        function["name"] = name
    if arguments:
        if arguments.__class__ is not str:
            raise _shape_error("a function call's 'arguments' must be a string", arguments)
        function["arguments"].append(arguments)


def _joined_function(function: AttrDict) -> AttrDict:
    """A copy of a gathered function call with its argument fragments joined."""
    joined = AttrDict(function)
    joined["arguments"] = "".join(function["arguments"])
    return joined


def _joined_call(call: AttrDict) -> AttrDict:
    joined = AttrDict(call)
    joined["function"] = _joined_function(call["function"])
    return joined


class _ItemSource:
    """The contract of everything that turns a live response's body into items (no I/O):
    StreamTracker, PullTracker, LogLines, ServerEvents.  One generator (_items) and one
    async method (_AsyncStreamed._read) drive them all the same way:

        items(data)   the items *data* (body bytes) completes; b"" is the end of the body
        end()         the body ended cleanly: raises if that is too soon
        done          an end marker came ([DONE]): what follows is drained, not read
        received      items handed out so far
        what, unit, meaning   how errors name it: "the stream" from URL, after N "chunks", ...
        json_refused  a JSON body instead is the server's answer, not items (_not_a_stream)
        error         what reading it raised, kept for final() (set by _Reading)
        first_at, ended_at    clock readings (monotonic s) of the first bytes and of the end
    """

    __slots__ = ()
    what = "the response"
    unit = "items"
    meaning = ""
    json_refused = False

    def end(self) -> None:
        """Nothing can be missing from a followed resource: the server ends it when it will."""


def _bad_event(stream: str, url: str, text: str, why: str) -> InvalidResponseError:
    """The error for an SSE event of a JSON stream that is *why* ("not JSON", "not a JSON
    object"): the one wording, for every stream that decodes events (off the hot path: only
    the raise calls it)."""
    return InvalidResponseError("the %s from %s sent an event that is %s: %.200r" % (stream, url, why, text),
                                body=text)


class StreamTracker(_ItemSource):
    """Body bytes in, chunks out, for a chat or completion stream (no I/O).

    The one place that decides what a stream means, for every transport:
    feed(data) parses the Server-Sent Events in the body bytes *data* and
    yields each chunk as soon as its event is parsed; ``[DONE]`` sets
    ``done`` and ends it; events that carry no chunk are skipped; an error
    event raises StreamError, and an event that is not a JSON object whose
    ``choices`` (if any) is a list of objects raises InvalidResponseError at
    once.  Chunks are folded in batches of _FOLD_BATCH, so memory stays
    bounded; a fault deeper in a chunk's shape (an index that is not a whole
    number, a delta that is not an object ...) is raised when its batch is
    folded, at the latest by end() or result().  end() is called when the
    body ended cleanly without ``[DONE]``, and raises unless every choice has
    its finish_reason.  It is an _ItemSource: items() is feed().
    """

    __slots__ = ("fold", "done", "url", "error", "_events", "_pending", "started", "first_at", "ended_at")
    what = "the stream"
    unit = "chunks"
    meaning = "the answer is incomplete"
    json_refused = True

    def __init__(self, fold: ChatFold, url: str = "the server"):
        self.fold = fold
        self.done = False
        self.url = url
        self.error: Optional[BaseException] = None   # what the stream raised, for final()
        # Clock readings the transport notes (monotonic s): request sent, first bytes, end.
        self.started: Optional[float] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self._events = SSEDecoder(extra_fields=("error",)).events
        # Chunks not folded yet: folding one at a time would cost the hot path more than the
        # rest of it; a batch is folded every _FOLD_BATCH chunks (memory stays bounded) and at
        # the end, when the result or the completeness is asked for.
        self._pending: List[AttrDict] = []

    @property
    def chunks_received(self) -> int:
        return self.fold.chunks + len(self._pending)

    received = chunks_received

    def result(self) -> AttrDict:
        """The response the chunks so far add up to."""
        self._fold_pending()
        return self.fold.result()

    def _fold_pending(self) -> None:
        pending, self._pending = self._pending, []
        add = self.fold.add_unchecked
        for position, chunk in enumerate(pending):
            try:
                add(chunk)
            except BaseException as exc:
                self._pending = pending[position + 1:]   # the faulty chunk is dropped, the rest kept
                if isinstance(exc, (AttributeError, TypeError)):
                    raise self.fold.shape_error(chunk) from None
                raise

    def feed(self, data: bytes) -> Iterator[AttrDict]:
        """The chunks *data* completes.  Exhaust it before the next call."""
        # The hot loop of every stream: one generator per network read, nothing per event
        # but the parse and an append; the rare cases are in _other_event().
        decode, pending, chunk_type = _decode_event, self._pending, self.fold.chunk_type
        for event in self._events(data):
            text = event[1]
            if text == "[DONE]":
                self.done = True
                return
            if event[0] != "message":
                self._other_event(event)
                continue
            try:
                chunk = decode(text)
            except (ValueError, RecursionError):
                raise _bad_event("stream", self.url, text, "not JSON") from None
            if chunk.__class__ is not AttrDict:
                raise _bad_event("stream", self.url, text, "not a JSON object")
            if "error" in chunk:
                raise self._stream_error(text)
            choices = chunk.get("choices")
            if choices is not None:   # what a caller indexes into is checked at once
                if choices.__class__ is not list:
                    raise self.fold.shape_error(chunk)
                for choice in choices:
                    if choice.__class__ is not AttrDict:
                        raise self.fold.shape_error(chunk)
            chunk.__class__ = chunk_type   # speed: its children are typed when read (AttrDict)
            pending.append(chunk)
            if len(pending) >= _FOLD_BATCH:
                self._fold_pending()
                pending = self._pending
            yield chunk

    items = feed

    def _other_event(self, event: SSEEvent) -> None:
        if event[0] == "error":
            raise self._stream_error(event[1])
        # Any other named event is one a chat stream does not define: not ours to interpret.

    def end(self) -> None:
        """The body ended cleanly: complete if every choice finished, else APIConnectionError."""
        self._fold_pending()
        if not self.done and not self.fold.complete:
            count = self.fold.chunks
            raise APIConnectionError(
                "the stream from %s ended after %d chunks without [DONE] or a finish_reason: "
                "the answer is incomplete" % (self.url, count), url=self.url, chunks_received=count)
        self.done = True

    def outcome(self) -> AttrDict:
        """After the stream was read as far as it goes: the whole response, or what broke it
        (a cut is never folded into a result), or DMRError if it was closed before it completed."""
        if self.error is not None:
            raise self.error
        if not self.done:
            raise DMRError("the stream was closed before it completed: its result is unknown")
        return self.result()

    def _stream_error(self, data: str) -> StreamError:
        message, error_type, code = parse_error_body(data)
        return StreamError(message or "the server reported an error without a message", body=data,
                           error_type=error_type, code=code, chunks_received=self.chunks_received)


# ---------------------------------------------------------------------------
# Pure rules: lines, pulls, logs and events
# ---------------------------------------------------------------------------


class LineSplitter:
    """Bytes in, complete lines out (LF-terminated; a CR before it is dropped), no I/O.

    Linear in the input however it is split: the pieces of an unfinished line
    are kept as a list and joined once.  A line longer than *max_line* bytes
    raises InvalidResponseError.
    """

    __slots__ = ("max_line", "_pieces", "_size")

    def __init__(self, max_line: Optional[int] = None):
        self.max_line = MAX_EVENT_BYTES if max_line is None else max_line
        self._pieces: List[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> List[bytes]:
        if b"\n" not in data:
            if data:
                self._size += len(data)
                if self._size > self.max_line:
                    raise InvalidResponseError("a line grew past %d bytes without ending" % self.max_line)
                self._pieces.append(data)
            return []
        if self._pieces:
            self._pieces.append(data)
            data = b"".join(self._pieces)
            self._pieces, self._size = [], 0
        lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            self.feed(tail)
        return [line[:-1] if line[-1:] == b"\r" else line for line in lines]

    def close(self) -> Optional[bytes]:
        """The end of the input: the last line if it had no LF (else None)."""
        rest = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        return rest or None


class PullTracker(_ItemSource):
    """DMR's pull progress: lines in, progress events out (no I/O).

    feed(line) returns the event of one line (None for a blank one) and
    raises PullError for DMR's error lines; ``result`` is the success event
    once it came; end() raises unless it did.  As an _ItemSource, items(data)
    splits body bytes into lines itself.
    """

    __slots__ = ("model", "url", "result", "events_received", "error", "first_at", "ended_at", "_lines", "action")
    unit = "progress events"
    meaning = "it did not finish"
    done = False

    def __init__(self, model: str, url: str = "the server", action: str = "pull"):
        self.model = model
        self.url = url
        self.action = action   # "pull" or "push": the same progress lines
        self.result: Optional[AttrDict] = None
        self.events_received = 0
        self.error: Optional[BaseException] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self._lines = LineSplitter()

    @property
    def what(self) -> str:   # type: ignore[override]
        return "the %s of %s" % (self.action, self.model)

    @property
    def received(self) -> int:
        return self.events_received

    def items(self, data: bytes) -> Iterator[AttrDict]:
        """The events of the lines *data* completes (b"": the body ended, the last line too)."""
        return self.events(self._lines, data)

    def feed(self, line: bytes) -> Optional[AttrDict]:
        event = parse_pull_line(line.decode("utf-8", "replace"))
        if event is None:
            return None
        kind = event.get("type")
        if kind == "warning":
            _log.warning("%s %s: %s", self.action, self.model, event.get("message"))
        elif kind == "success":
            self.result = event
        self.events_received += 1
        return event

    def events(self, lines: LineSplitter, data: bytes) -> Iterator[AttrDict]:
        """The events of the lines *data* completes (b"": the body ended, the last line too)."""
        for line in lines.feed(data) if data else [lines.close() or b""]:
            event = self.feed(line)
            if event is not None:
                yield event

    def end(self, url: Optional[str] = None) -> None:
        if self.result is None:
            raise APIConnectionError("the %s of %s ended without DMR reporting success: it did "
                                     "not finish" % (self.action, self.model), url=url or self.url)


class _TarBytes(_ItemSource):
    """An exported model (DMR's tar, no Content-Length): body bytes in, the same bytes out,
    counted (no I/O).  end() checks that the tar's end came: DMR writes an error's text after
    the bytes of a tar it could not finish, and ends the body cleanly."""

    __slots__ = ("model", "received", "error", "first_at", "ended_at", "_tail")
    unit = "bytes"
    meaning = "no file was written"
    done = False
    TAR_END = bytes(1024)   # a tar ends with two blocks of zeros

    def __init__(self, model: str):
        self.model = model
        self.received = 0
        self.error: Optional[BaseException] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self._tail = b""

    @property
    def what(self) -> str:   # type: ignore[override]
        return "the export of %s" % self.model

    def items(self, data: bytes) -> Iterator[bytes]:
        if data:
            self.received += len(data)
            self._tail = (self._tail + data[-1024:])[-1024:]
            yield data

    def end(self) -> None:
        if self.received % 512 or self._tail != self.TAR_END:
            said = self._tail.rstrip(b"\0").rsplit(b"\0", 1)[-1].decode("utf-8", "replace").strip()
            said = re.sub(r"[\x00-\x1f\x7f]", "", said.splitlines()[-1]) if said else said
            raise InvalidResponseError("the export of %s ended without the end of a tar archive (%d bytes)%s: "
                                       "no file was written" % (self.model, self.received,
                                                               "; DMR said: " + said[-300:] if said else ""))


class LogLines(_ItemSource):
    """A followed text body (DMR's ``/logs``): body bytes in, lines (str) out (no I/O)."""

    __slots__ = ("received", "done", "error", "first_at", "ended_at", "_lines")
    what = "the log stream"

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self.received = 0
        self.done = False
        self.error: Optional[BaseException] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None

    def feed(self, data: bytes) -> Iterator[str]:
        """The lines *data* completes; b"" is the end of the body (the last line, unterminated)."""
        found = self._lines.feed(data) if data else [self._lines.close() or b""]
        for line in found:
            if line or data:
                self.received += 1
                yield line.decode("utf-8", "replace").rstrip("\r")

    items = feed


class ServerEvents(_ItemSource):
    """A followed event stream (DMR's live request log): body bytes in, one AttrDict per
    Server-Sent Event out, ``event`` (its name) and ``data`` (JSON when it parses) (no I/O)."""

    __slots__ = ("received", "done", "error", "first_at", "ended_at", "_events")
    what = "the event stream"

    def __init__(self) -> None:
        self._events = SSEDecoder().events
        self.received = 0
        self.done = False
        self.error: Optional[BaseException] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None

    def feed(self, data: bytes) -> Iterator[AttrDict]:
        for event in self._events(data) if data else ():
            try:
                payload = _decode_event(event.data) if event.data else None
            except (ValueError, RecursionError):
                payload = event.data
            self.received += 1
            yield AttrDict(event=event.event, data=payload)

    items = feed


class ResponseTracker(_ItemSource):
    """Body bytes in, Responses API events out (no I/O): each Server-Sent Event as a typed
    ResponseStreamEvent (``type``: "response.created", "response.output_text.delta" ...).
    ``response.completed`` (or ``response.incomplete``) ends the stream and keeps the whole
    answer as ``response``; ``response.failed`` and an ``error`` event raise StreamError; a
    body that ends before one of them is cut (end() raises APIConnectionError)."""

    __slots__ = ("url", "response", "received", "done", "error", "started", "first_at", "ended_at", "_events")
    what = "the response stream"
    unit = "events"
    meaning = "the response is incomplete"
    json_refused = True

    def __init__(self, url: str = "the server"):
        self.url = url
        self.response: Optional[AttrDict] = None
        self.received = 0
        self.done = False
        self.error: Optional[BaseException] = None
        self.started: Optional[float] = None
        self.first_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self._events = SSEDecoder().events

    def items(self, data: bytes) -> Iterator[AttrDict]:
        for name, text, _, _ in self._events(data) if data else ():
            if text == "[DONE]":
                self.done = self.done or self.response is not None
                return
            try:
                event = _decode_event(text)
            except (ValueError, RecursionError):
                raise _bad_event("response stream", self.url, text, "not JSON") from None
            if event.__class__ is not AttrDict:
                raise _bad_event("response stream", self.url, text, "not a JSON object")
            kind = event.get("type") or name
            if kind == "error" or name == "error":
                raise self._failed(text, event)
            if kind == "response.failed":
                raise self._failed(text, event.get("response"))
            event.__class__ = ResponseStreamEvent
            self.received += 1
            if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
                self.response = _typed(event["response"], Response)
                self.done = True
            yield event
            if self.done:
                return

    def _failed(self, text: str, answer: Any) -> StreamError:
        error = answer.get("error") if isinstance(answer, dict) else None
        source = error if isinstance(error, dict) else answer if isinstance(answer, dict) else {}
        message = str(source.get("message") or text)
        return StreamError(message, body=text, error_type=_str_or_none(source.get("type")), code=source.get("code"),
                           chunks_received=self.received)

    def end(self) -> None:
        if not self.done:
            raise APIConnectionError("the response stream from %s ended after %d events without "
                                     "response.completed: the response is incomplete" % (self.url, self.received),
                                     url=self.url, chunks_received=self.received)

    def outcome(self) -> AttrDict:
        """After the stream was read as far as it goes: the whole response, or what broke it."""
        if self.error is not None:
            raise self.error
        if self.response is None:
            raise DMRError("the response stream was closed before it completed: its result is unknown")
        return self.response


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
        event = loads(text)
    except ValueError:
        raise PullError(text) from None
    if not isinstance(event, AttrDict):
        raise PullError(text)
    if event.get("type") == "error":
        raise PullError(str(event.get("message") or text), event=event)
    return event


# ---------------------------------------------------------------------------
# Pure rules: retries
# ---------------------------------------------------------------------------


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


#: How llama.cpp's server refuses a picture or a sound the model cannot take (500, "... - hint: if
#: this is unexpected, you may need to provide the mmproj"): a verdict on the model, never retried.
_INPUT_REFUSALS = ("image input is not supported", "audio input is not supported")


def _refuses_input(message: str) -> bool:
    """Whether an error message is llama.cpp's refusal of image or audio input."""
    return message.lower().lstrip().startswith(_INPUT_REFUSALS)


def retry_wait(attempt: int, max_retries: int, *, failure: Optional[str] = None, replayable: bool = True,
               status: Optional[int] = None, headers: Any = None,
               retry_statuses: frozenset = RETRY_STATUSES, early: bool = False,
               message: str = "") -> Tuple[Optional[float], str]:
    """The retry policy, in one place: whether to send again after attempt *attempt* (0-based).

    *failure* says what went wrong without an answer: "connect" (nothing was
    sent), "refused-local" (nothing listens on a loopback address or Unix
    socket: trying again within seconds will not change that, so it is not
    done), "tls" (a certificate refused, by us or by the server, or a
    plain-HTTP server: it cannot change, never retried), "handshake-stalled"
    (a TLS handshake that did not finish: tried again at most once), "stale" (sent on a reused keep-alive connection that closed
    without a byte of answer), "no-answer" (the same on a new connection);
    otherwise *status* and *headers* are the answer.  *replayable* is false
    for calls that change state, which are never sent twice once they went
    out.  *early* says the answer came before the request was sent whole
    (the server refused it unread: too large, no key ...): it is the
    server's verdict on this request, so it is never sent again.  *message*
    is the answer's error message: llama.cpp's refusal of a picture or a
    sound (a 500) is the model's verdict on the request, so it is final too.  Returns
    (seconds to wait, "") to send again, or (None, note) to give up, where
    *note* is what the error message should add.
    """
    if early:
        return None, " (answered before the request was sent whole; not sent again)"
    if status is None:
        if failure not in _FAILURES:
            raise ValueError("failure must be one of %s (or give status=), not %r" % (", ".join(_FAILURES), failure))
        if failure in (_FAILED_REFUSED_LOCAL, _FAILED_TLS):
            return None, ""
        if failure == _FAILED_HANDSHAKE and attempt >= 1:
            return None, " (after %d attempts)" % (attempt + 1)
        if failure != _FAILED_CONNECT and not replayable:
            return None, " (not sent again: the server may have carried it out)"
    else:
        if _refuses_input(message):
            return None, ""
        should_retry = (headers.get("x-should-retry") or "").lower() if headers is not None else ""
        if should_retry == "false" or (should_retry != "true" and status not in retry_statuses):
            return None, ""
    if attempt >= max_retries:
        return None, " (after %d attempts)" % (attempt + 1) if attempt else ""
    if status is None:
        # A stale keep-alive connection says nothing about the server: send again at once.
        return (0.0 if failure == _FAILED_STALE else _retry_delay(attempt)), ""
    asked = parse_retry_after(headers)
    if asked is None:
        return _retry_delay(attempt), ""
    if asked > MAX_RETRY_AFTER:
        return None, (" (the server asked to retry after %.0f s; not waiting longer than %.0f s)"
                      % (asked, MAX_RETRY_AFTER))
    return asked, ""


# ---------------------------------------------------------------------------
# Pure rules: hints
# ---------------------------------------------------------------------------

#: What LiteLLM's proxy without a database answers (400) for a key other than its master key.
_UNCHECKED_KEY = "no connected db."

#: What a router (DMR's Go mux, llama.cpp's server) answers for a path it does not serve.
_ROUTER_404 = ("not found", "404 page not found", "page not found", "file not found")


def _error_hint(status: int, message: str, *, model: Optional[str] = None, origin: str = "",
                docker_socket: Optional[str] = None, hints: Optional[Mapping[int, str]] = None,
                where: str = _API_ROOT, sent: Optional[int] = None, media: bool = False,
                plain: Optional[str] = None) -> Optional[str]:
    """What a user should do about an error status, where we know: the one table of hints.

    *hints* are the call's own (a 404 from inspect_model() means another
    thing than one from pull()), for answers from the route itself: a
    router's 404 (no such route) says something about the server instead.
    *docker_socket* is the Docker socket the client talks to, when it does; *plain* the base
    URL when it is a plain ``/v1`` root (not DMR's ``/engines/...``);
    *where* the root the call went to ("dmr" for DMR's own API); *sent* the
    size of the request body, when it had one; *media* whether that body
    carried pictures or sounds as data.
    """
    lowered = message.lower()
    router_404 = status == 404 and lowered in _ROUTER_404
    if router_404 and docker_socket:
        return ("the Docker socket %s does not serve Model Runner (Docker Engine rather than "
                "Docker Desktop?): run DMR with `docker model install-runner`, or enable it in "
                "Docker Desktop" % docker_socket)
    if (router_404 or status == 405) and where == _DMR_ROOT:   # our methods are DMR's: a 405 is another server
        return ("the server at %s does not serve Docker Model Runner's own API (model management needs "
                "DMR; a gateway, llama.cpp or another OpenAI-compatible server only serves chat, "
                "completions, embeddings and its model list)" % origin)
    if router_404 and plain and where == _API_ROOT:   # a /v1 root is what we were told: DMR's is elsewhere
        return ("no such route under %s: check the base URL (a server with DMR's layout serves the OpenAI API "
                "under /engines/v1 or /engines/<engine>/v1: then use %s/engines/v1 as the base URL)" % (plain, origin))
    if router_404:
        return ("no such route at %s: check the base URL (DMR serves the OpenAI API under /engines/v1 or "
                "/engines/<engine>/v1; another server, a gateway such as LiteLLM's proxy, under /v1: "
                "then use %s/v1 as the base URL)" % (origin, origin))
    if status == 400 and "invalid model name" in lowered and re.search(r"model=\S*/v1\b", lowered):
        # LiteLLM's proxy serves /engines/{model}/chat/completions too, and takes DMR's engine path for a model.
        return ("the gateway read the /engines/.../v1 of this URL as a model name: a gateway such as "
                "LiteLLM's proxy serves the OpenAI API under /v1, so use %s/v1 as the base URL" % origin)
    if hints and status in hints:
        return hints[status]
    if status == 404 and "model not found" in lowered:
        if model:
            return "the model is not in DMR's store: run `docker model pull %s`" % model
        return "the model is not in DMR's store: pull it with `docker model pull <model>`"
    if status == 404 and "backend not found" in lowered:
        return "DMR does not know the engine in this URL; use one of %s" % ", ".join(KNOWN_ENGINES)
    if status == 413 or (status == 400 and lowered == "request too large"):
        return _too_large_hint(sent, media)
    if _refuses_input(message):
        if lowered.lstrip().startswith("image"):
            return ("the model has no vision support (no multimodal projector): use one that reads images, "
                    "e.g. ai/gemma3, ai/smolvlm or ai/moondream2 (a model's Docker Hub card lists its inputs)")
        return ("the model takes no audio input (no multimodal projector): use one whose Docker Hub card "
                "lists audio among its inputs")
    if status == 401:
        return "the server wants an API key: pass api_key= or set %s" % ENV_API_KEY
    if status == 400 and lowered == _UNCHECKED_KEY:
        return ("LiteLLM's proxy could not check this API key: without a database it takes only its "
                "master key (general_settings.master_key); pass api_key= or set %s" % ENV_API_KEY)
    if status == 412 and "is not installed" in lowered:
        engine = re.search(r'backend "?([\w.-]+)"? is not installed', message)
        if engine:
            return ("DMR's %s engine is not installed: install it with install_backend(%r) (`docker model "
                    "install-runner --backend %s`), then ask again" % (engine.group(1), engine.group(1),
                                                                       engine.group(1)))
    if status == 404 and "does not exist or you do not have access to it" in lowered:
        return ("the gateway serves no model of that name: models() lists the ones in its configuration "
                "(model_list)")
    if status == 503 and lowered.startswith("all deployments for model"):
        return ("the gateway reached none of this model's deployments: check that each Docker Model Runner "
                "in its configuration answers (`dmr-client ping --base-url` with its address)")
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


def _too_large_hint(sent: Optional[int], media: bool = False) -> str:
    size = "the request body was %s (%s bytes); " % (_mib(sent), format(sent, ",")) if sent else ""
    hint = ("%sDMR refuses requests over %s: send a shorter conversation (drop or summarise old "
            "turns), fewer or smaller images (scale them down before encoding), or split the input "
            "over several calls" % (size, _mib(DMR_MAX_REQUEST_BYTES)))
    if media:
        hint += ("; this one carries pictures or sounds, which base64 makes a third larger than their files: "
                 "scale a picture down (1024 pixels on its long side is plenty for most vision models) and "
                 "save it as JPEG, and send shorter sound clips")
    return hint


def _mib(size: int) -> str:
    return "%.1f MiB" % (size / (1024 * 1024)) if size % (1024 * 1024) else "%d MiB" % (size // (1024 * 1024))


# ---------------------------------------------------------------------------
# Pure rules: media
# ---------------------------------------------------------------------------
#
# Pictures and sound in messages, as OpenAI's content parts: image() gives an image_url part (the
# picture's bytes in a base64 data URL, or a web address as it is), audio() an input_audio part
# (base64 and "wav" or "mp3": the shape llama.cpp's server reads), user() a user message of text
# and parts.  What a file is comes from its first bytes, never from its name.

#: The pictures image() sends: (magic bytes at offset 0, or a test of the first bytes) -> media type.
_IMAGE_TYPES = (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WebP", "image/webp"))
#: The sounds audio() sends, as input_audio's formats (OpenAI's and llama.cpp's: "wav" and "mp3").
_AUDIO_FORMATS = (("WAV", "wav"), ("MP3", "mp3"))
_IMAGE_DETAILS = ("auto", "low", "high")
_URL_SCHEMES = ("http://", "https://", "data:")


def _sniff(head: bytes) -> Optional[str]:
    """What the first bytes of a file say it is, as a name in _IMAGE_TYPES or _AUDIO_FORMATS, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    # An ID3 tag, or an MPEG audio frame: 11 set sync bits, then a layer other than 00 (AAC's ADTS).
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "MP3"
    return None


#: What other first bytes are, for the error that refuses them: (prefix, what it looks like).
_OTHER_KINDS = ((b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or a .docx, .xlsx, .jar ...)"),
                (b"\x1f\x8b", "gzip-compressed data"), (b"BM", "a BMP picture"), (b"II*\x00", "a TIFF picture"),
                (b"MM\x00*", "a TIFF picture"), (b"fLaC", "FLAC audio"), (b"OggS", "an Ogg file (Vorbis or Opus audio?)"),
                (b"\x00\x00\x01\x00", "a Windows icon (.ico)"), (b"\x7fELF", "a program (ELF)"))


def _looks_like(head: bytes) -> str:
    """What *head*, the first bytes of a file, looks like, in words."""
    kind = _sniff(head)
    if kind is not None:
        return "a WAV sound" if kind == "WAV" else "an MP3 sound" if kind == "MP3" else "a %s picture" % kind
    for prefix, what in _OTHER_KINDS:
        if head.startswith(prefix):
            return what
    if head[4:8] == b"ftyp":   # ISO media: the brand says which
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "a HEIC picture (an iPhone photo? export it as JPEG)"
        if brand in (b"avif", b"avis"):
            return "an AVIF picture"
        return "an MP4 / M4A / MOV file"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "HTML (a web page, not the picture itself?)"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "an SVG drawing (turn it into PNG first)"
    if text.startswith((b"{", b"[")):
        return "JSON"
    try:
        head.decode("utf-8")
        printable = True
    except UnicodeDecodeError as exc:   # a character cut at the end of *head* is still text
        printable = exc.reason == "unexpected end of data"
    printable = printable and all(c >= 32 or c in b"\t\r\n" for c in head) and b"\x7f" not in head
    if printable:
        return "text"
    return "unknown bytes starting %r" % head[:8]


def _media_bytes(src: Any, what: str) -> Tuple[bytes, str]:
    """The bytes of *src* (a path, bytes, or a binary file object) and a name for it in messages."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "the %s given" % type(src).__name__
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not os.path.exists(path):   # also a name too long to be one, or with a NUL in it (base64 text?)
            import errno

            raise FileNotFoundError(errno.ENOENT, "No such file (%s takes a path, bytes or a binary file object%s)"
                                    % (what, ", or an http://, https:// or data: URL" if what == "image()" else ""),
                                    path if len(path) <= 200 else path[:60] + "...")
        with open(path, "rb") as file:
            return file.read(), path
    read = getattr(src, "read", None)
    if read is None:
        raise TypeError("%s takes a path, bytes or a binary file object, not %s" % (what, _shown(src)))
    data = read()
    name = getattr(src, "name", None)
    name = name if isinstance(name, str) else "the file object"
    if isinstance(data, str):
        raise TypeError('%s: %s is open as text; open it with "rb" (binary)' % (what, name))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("%s: read() of %s gave %s, not bytes" % (what, name, _shown(data)))
    return bytes(data), name


def _media_data(src: Any, what: str, kinds: Sequence[Tuple[str, str]]) -> Tuple[str, str]:
    """(the value for *src*'s kind in *kinds*, its bytes in base64): the checks image() and audio() share."""
    data, name = _media_bytes(src, what)
    accepted = "%s sends %s or %s %s" % (what, ", ".join(kind for kind, _ in kinds[:-1]), kinds[-1][0],
                                         "pictures" if what == "image()" else "sounds")
    if not data:
        raise ValueError("%s: empty (0 bytes); %s" % (name, accepted))
    found = _sniff(data[:16])
    for kind, value in kinds:
        if kind == found:
            import base64

            return value, base64.b64encode(data).decode("ascii")
    raise ValueError("%s: this looks like %s; %s" % (name, _looks_like(data[:64]), accepted))


def image(src: Any, *, detail: Optional[str] = None) -> Dict[str, Any]:
    """An image content part for a chat message: ``{"type": "image_url", "image_url": {"url": ...}}``.

    *src* is a path (str or os.PathLike), bytes, or a binary file object (its read() is read
    whole): the picture goes in a base64 data URL whose media type comes from its first bytes
    (PNG, JPEG, GIF or WebP; anything else is a ValueError saying what it looks like).  A str
    that starts with http://, https:// or data: is a URL and goes as it is (the server fetches a
    web address, if it will).  *detail* ("auto", "low", "high") goes into image_url as OpenAI has
    it.  The base64 text is a third larger than the file, and DMR refuses requests over 10 MiB.
    """
    if detail is not None and detail not in _IMAGE_DETAILS:
        raise ValueError("detail must be one of %s, not %s" % (", ".join(_IMAGE_DETAILS), _shown(detail)))
    if isinstance(src, str) and src[:8].lower().startswith(_URL_SCHEMES):
        url = src
    else:
        media_type, data = _media_data(src, "image()", _IMAGE_TYPES)
        url = "data:%s;base64,%s" % (media_type, data)
    part: Dict[str, Any] = {"url": url}
    if detail is not None:
        part["detail"] = detail
    return {"type": "image_url", "image_url": part}


def audio(src: Any) -> Dict[str, Any]:
    """A sound content part for a chat message: ``{"type": "input_audio", "input_audio": {"data":
    <base64>, "format": "wav" | "mp3"}}``, the shape OpenAI and llama.cpp's server read.

    *src* is a path, bytes or a binary file object, as for image(); the format comes from its first
    bytes (WAV: RIFF....WAVE; MP3: an ID3 tag or an MPEG audio frame).  URLs are refused: an
    input_audio part carries the sound itself, never a link to it.
    """
    if isinstance(src, str) and src[:8].lower().startswith(_URL_SCHEMES):
        raise ValueError("audio() takes a file, bytes or a binary file object, not a URL (%s): an input_audio "
                         "part carries the sound itself; download it first" % _shown(src[:60]))
    audio_format, data = _media_data(src, "audio()", _AUDIO_FORMATS)
    return {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}


def user(text: Optional[str], *parts: Any) -> Dict[str, Any]:
    """A user message of *text* and content *parts*: ``{"role": "user", "content": [{"type": "text",
    "text": text}, *parts]}``.

    *parts* are content parts (dicts with a "type", such as image() and audio() give); a str among
    them becomes a text part where it stands.  *text* None or "" leaves the leading text part out
    (a message of parts only); a message with neither text nor parts is a ValueError.
    """
    content: List[Any] = []
    if text is not None and not isinstance(text, str):
        raise TypeError("user() takes its text as a str (or None), not %s; pictures and sounds go after it, "
                        "as image(...) or audio(...)" % _shown(text))
    if text:
        content.append({"type": "text", "text": text})
    for part in parts:
        if isinstance(part, str):
            content.append({"type": "text", "text": part})
        elif isinstance(part, dict) and isinstance(part.get("type"), str):
            content.append(part)
        else:
            raise TypeError("a part of a user message is a content-part dict with a \"type\" (from image() or "
                            "audio()) or a str, not %s" % _shown(part))
    if not content:
        raise ValueError("user() needs text or at least one part")
    return {"role": "user", "content": content}


def _carries_media(body: Optional[bytes]) -> bool:
    """Whether a request body (our compact JSON) carries a picture or a sound as data."""
    return body is not None and (b"data:image/" in body or b'"input_audio":' in body)


# ---------------------------------------------------------------------------
# Pure rules: running models
# ---------------------------------------------------------------------------


def speed_stats(reply: Mapping[str, Any], *, elapsed: Optional[float] = None, first_token: Optional[float] = None,
                chunks: Optional[int] = None) -> AttrDict:
    """Speed figures of a chat or completion result (no I/O).

    From llama.cpp's ``timings`` when the reply has them (``source`` "server":
    its own prompt and generation rates), else from *elapsed* (seconds from
    sending the request to the end of the answer), *first_token* (seconds to
    the first streamed bytes) and ``usage`` (``source`` "client"); a stream
    without ``usage`` counts as tokens its *chunks* that carried text or a tool
    call's piece (ChatFold.pieces; ``source`` "client, chunks counted").  The
    token counts come from ``usage``, else from ``timings`` (``prompt_tokens``:
    cached plus new prompt tokens).  Figures that cannot be known are None.
    """
    usage: Mapping[str, Any] = reply["usage"] if isinstance(reply.get("usage"), dict) else {}
    stats = AttrDict(source=None, time_to_first_token_s=first_token, total_s=elapsed,
                     prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                     context_tokens=usage.get("total_tokens"), prompt_tokens_per_s=None, generated_tokens_per_s=None)
    timings = reply.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("predicted_per_second"), (int, float)):
        stats["source"] = "server"
        stats["prompt_tokens_per_s"] = timings.get("prompt_per_second")
        stats["generated_tokens_per_s"] = timings["predicted_per_second"]
        if stats.completion_tokens is None:
            stats["completion_tokens"] = timings.get("predicted_n")
        cached, prompt, predicted = [timings.get(key) for key in ("cache_n", "prompt_n", "predicted_n")]
        if stats.prompt_tokens is None and isinstance(prompt, int):
            stats["prompt_tokens"] = prompt + (cached if isinstance(cached, int) else 0)   # cached + new ones
        if stats.context_tokens is None and isinstance(cached, int) and isinstance(prompt, int) \
                and isinstance(predicted, int):
            stats["context_tokens"] = cached + prompt + predicted   # cached + new prompt tokens + generated ones
        prompt_ms, predicted_ms = timings.get("prompt_ms"), timings.get("predicted_ms")
        if first_token is None and isinstance(prompt_ms, (int, float)):
            stats["time_to_first_token_s"] = prompt_ms / 1000.0
        if elapsed is None and isinstance(prompt_ms, (int, float)) and isinstance(predicted_ms, (int, float)):
            stats["total_s"] = (prompt_ms + predicted_ms) / 1000.0
        return stats
    if elapsed is None:
        return stats
    source = "client"
    if stats.completion_tokens is None and chunks is not None:
        stats["completion_tokens"], source = chunks, "client, chunks counted"
    if stats.completion_tokens is None:
        return stats
    stats["source"] = source
    generating = elapsed - (first_token or 0.0)
    if generating > 0:
        stats["generated_tokens_per_s"] = stats.completion_tokens / generating
    if first_token and stats.prompt_tokens:
        stats["prompt_tokens_per_s"] = stats.prompt_tokens / first_token
    return stats


def split_thinking(text: str) -> Tuple[str, str]:
    """(thinking, answer) of a reply that keeps its reasoning inside ``<think>...</think>``.

    Some models (and servers run without a reasoning parser) put the thinking
    into ``content``; llama.cpp normally sends it apart, as
    ``reasoning_content``.  A reply without the tags is all answer; one whose
    template opened the tag in the prompt (only ``</think>`` in the reply)
    is split there; an unclosed ``<think>`` is all thinking (the answer was
    cut short or never came).
    """
    if not isinstance(text, str):
        raise TypeError("split_thinking() takes the reply's text (a str), not %s" % type(text).__name__)
    stripped = text.lstrip()
    if stripped.startswith("<think>"):
        thinking, closed, answer = stripped[len("<think>"):].partition("</think>")
        return (thinking.strip(), answer.strip()) if closed else (thinking.strip(), "")
    thinking, closed, answer = text.partition("</think>")
    if closed:
        return thinking.strip(), answer.strip()
    return "", text


_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|\u00b5s|ms|s|m|h))+")


def _keep_alive(value: Any) -> Optional[str]:
    """*keep_alive* as DMR reads it: a Go duration ("5m", "1h30m"), "-1" (forever) or "0"
    (unload at once); a number is seconds.  ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError("keep_alive must be a duration such as '5m', or seconds, not %s" % _shown(value))
    if not isinstance(value, str):
        if value == -1:
            return "-1"
        if value < 0 or value != value:
            raise ValueError("keep_alive must be seconds >= 0, or -1 for never unloading, not %s" % _shown(value))
        return "%gs" % value
    if value in ("-1", "0") or _DURATION.fullmatch(value):
        return value
    raise ValueError("keep_alive %r is not a duration DMR reads: use e.g. '30s', '5m', '1h', '-1' (never "
                     "unload) or '0' (unload at once)" % value)


def _whole_number(value: Any, name: str, least: int) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError("%s must be a whole number >= %d, not %s" % (name, least, _shown(value)))
    return value


#: The modes DMR runs a model in (``_configure``'s "mode").
RUNNER_MODES = ("completion", "embedding", "reranking", "image-generation")


def _configure_body(model: str, context_size: Any, keep_alive: Any, runtime_flags: Any,
                    reasoning_budget: Any, mode: Any) -> Dict[str, Any]:
    """The body of DMR's ``_configure`` from checked arguments (no I/O)."""
    body: Dict[str, Any] = {"model": model}
    size = _whole_number(context_size, "context_size", 1)
    if size is not None:
        body["context-size"] = size
    alive = _keep_alive(keep_alive)
    if alive is not None:
        body["keep_alive"] = alive
    if runtime_flags is not None:
        if isinstance(runtime_flags, str) or not isinstance(runtime_flags, (list, tuple)) \
                or not all(isinstance(flag, str) for flag in runtime_flags):
            raise TypeError("runtime_flags must be a list of str such as ['--threads', '4'], not %s"
                            % _shown(runtime_flags))
        body["runtime-flags"] = list(runtime_flags)
    budget = _whole_number(reasoning_budget, "reasoning_budget", -1)
    if budget is not None:
        body["llamacpp"] = {"reasoning-budget": budget}
    if mode is not None:
        if mode not in RUNNER_MODES:
            raise ValueError("mode must be one of %s, not %s" % (", ".join(RUNNER_MODES), _shown(mode)))
        body["mode"] = mode
    if len(body) == 1:
        raise ValueError("nothing to configure: pass context_size=, keep_alive=, runtime_flags=, "
                         "reasoning_budget= or mode=")
    return body


def _same_model(reported: Any, name: str) -> bool:
    """Whether DMR's name for a running model (``docker.io/ai/x:latest`` or ``ai/x``) is *name*."""
    def plain(value: str) -> str:
        value = value[len("docker.io/"):] if value.startswith("docker.io/") else value
        return value[:-len(":latest")] if value.endswith(":latest") else value
    return isinstance(reported, str) and plain(reported) == plain(name)


def _anthropic_messages(messages: Sequence[Message]) -> Dict[str, Any]:
    """OpenAI-style *messages* as an Anthropic Messages body (system messages apart)."""
    system: List[str] = [m["content"] for m in messages
                         if m.get("role") == "system" and isinstance(m.get("content"), str)]
    body: Dict[str, Any] = {"messages": [{"role": m["role"], "content": m.get("content") or ""}
                                         for m in messages if m.get("role") != "system"]}
    if system:
        body["system"] = "\n\n".join(system)
    return body


_METRIC_LINE = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$')
_METRIC_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text: str) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
    """Prometheus text exposition (DMR's ``/metrics``) as ``{name: [(labels, value)]}`` (no I/O).

    Comments (``# HELP``, ``# TYPE``) and blank lines are skipped; a line
    that is not a sample raises InvalidResponseError.
    """
    found: Dict[str, List[Tuple[Dict[str, str], float]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _METRIC_LINE.match(line)
        if match is None:
            raise InvalidResponseError("metrics line %d is not a Prometheus sample: %.100r" % (number, line))
        name, label_text, value = match.groups()
        labels = {}
        if label_text:
            position = 0
            while position < len(label_text):
                label = _METRIC_LABEL.match(label_text, position)
                if label is None or label.end() == position:
                    raise InvalidResponseError("metrics line %d has malformed labels: %.100r" % (number, line))
                labels[label.group(1)] = label.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                position = label.end()
        try:
            number_value = float(value)
        except ValueError:
            raise InvalidResponseError("metrics line %d has a value that is not a number: %.100r"
                                       % (number, line)) from None
        found.setdefault(name, []).append((labels, number_value))
    return found


def _nearest_rank(values: Sequence[float], percent: int) -> Optional[float]:
    """The *percent* percentile of *values* by nearest rank: the smallest value with at least
    *percent* % of them at or below it (always a value that was measured, never an
    interpolation; p95 of fewer than 20 values is the largest).  None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, (percent * len(ordered) + 99) // 100) - 1]


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _bench_level(concurrency: int, records: Sequence[Mapping[str, Any]], elapsed: float, failed: int = 0,
                 stopped: bool = False) -> AttrDict:
    """One concurrency level of a benchmark: its requests' speed_stats() figures added up (no I/O).

    *records* are the speed_stats() of the requests that completed, *elapsed* the level's wall time
    (from its first request sent to its last answer ended, or to Ctrl-C when *stopped*), *failed*
    how many requests failed.  ``tokens_per_s`` is the throughput: every completed request's
    generated tokens over *elapsed* (what ``docker model bench`` calls TPS); ``requests_per_s``
    the same for requests.  Time to first token: p50 and p95 by nearest rank, and the mean.
    ``stream_tokens_per_s`` is one request's generation speed (its tokens after the first one over
    the time they took, or llama.cpp's own ``predicted_per_second``), the mean over the requests;
    ``prompt_tokens_per_s`` likewise for reading the prompt.  ``source`` says where the per-request
    speeds came from: "server" (llama.cpp's ``timings``), "client" (this clock), or "mixed".
    """
    def known(key: str) -> List[float]:
        return [record[key] for record in records if isinstance(record.get(key), (int, float))]
    tokens = int(sum(known("completion_tokens")))
    first = known("time_to_first_token_s")
    sources = sorted({str(record.get("source")).split(",")[0] for record in records if record.get("source")})
    rate = (lambda count: count / elapsed) if elapsed > 0 else (lambda count: None)
    return AttrDict(concurrency=concurrency, requests=len(records), failed=failed, elapsed_s=elapsed,
                    completion_tokens=tokens, tokens_per_s=rate(tokens), requests_per_s=rate(len(records)),
                    ttft_p50_s=_nearest_rank(first, 50), ttft_p95_s=_nearest_rank(first, 95), ttft_mean_s=_mean(first),
                    stream_tokens_per_s=_mean(known("generated_tokens_per_s")),
                    prompt_tokens_per_s=_mean(known("prompt_tokens_per_s")),
                    source=sources[0] if len(sources) == 1 else "mixed" if sources else None, stopped=stopped)


# ---------------------------------------------------------------------------
# Pure rules: schemas
# ---------------------------------------------------------------------------
#
# Typed answers without pydantic: json_schema() writes a JSON Schema from Python types, validate()
# checks parsed JSON against a schema, and _build() turns JSON that passed into the caller's type.
# typing, dataclasses and enum are imported by the functions that need them: a program that never
# asks for a schema does not pay for them.

#: How deep validate() follows a value or a schema (each $ref counts): deeper is refused as a
#: ValidationError, never a RecursionError.
MAX_SCHEMA_DEPTH = 100

_NoneType = type(None)
_DEF_NAME = r"[A-Za-z0-9_.-]+"
_TOOL_NAME = r"[A-Za-z0-9_-]{1,64}"   # what OpenAI (and llama.cpp's templates) accept as a function name


def json_schema(tp: Any, *, strict: bool = False) -> Dict[str, Any]:
    """A JSON Schema (a dict) for the type *tp*, for ``chat(schema=)`` and tools.

    Takes a dataclass, TypedDict, NamedTuple (an object of its fields), Enum,
    Literal, Optional / Union (``X | Y`` too), list / tuple / dict, int, float,
    str, bool, None and Any, nested and recursive (named types go under
    ``$defs``, referred to by ``$ref``).  A field with a default is not required;
    its doc comes from ``Annotated[T, "doc"]`` or dataclass field metadata
    (``field(metadata={"description": ...})``).  *strict*: OpenAI's strict form,
    every field required and no other properties.  A dict is taken as a schema
    already and returned as is; a pydantic model answers its own
    ``model_json_schema()``.  What JSON Schema cannot say (a set, a callable, a
    name that does not resolve) is a TypeError naming the field.
    """
    if isinstance(tp, dict):
        return tp
    own = getattr(tp, "model_json_schema", None)
    if callable(own):   # pydantic, by duck typing: never imported here
        return own()
    return _SchemaWriter(strict).root(tp)


def _typing() -> Any:
    import typing
    return typing


def _unwrap(tp: Any) -> Tuple[Any, Optional[str]]:
    """(*tp* without Annotated, Required or NotRequired, the first str of its Annotated metadata)."""
    typing = _typing()
    doc = None
    while True:
        metadata = getattr(tp, "__metadata__", None)
        if metadata is not None and hasattr(tp, "__origin__"):   # Annotated[X, ...]
            doc = doc or next((item for item in metadata if isinstance(item, str)), None)
            tp = tp.__origin__
            continue
        origin = typing.get_origin(tp)
        if origin is not None and getattr(origin, "_name", None) in ("Required", "NotRequired", "ReadOnly"):
            tp = typing.get_args(tp)[0]
            continue
        return tp, doc


def _is_union(origin: Any) -> bool:
    import types
    return origin is _typing().Union or (getattr(types, "UnionType", None) is not None and origin is types.UnionType)


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _is_enum(tp: Any) -> bool:
    import enum
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _is_dataclass(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__dataclass_fields__")


_HINTS: Any = weakref.WeakKeyDictionary()   # class or function -> its resolved annotations


def _hints(owner: Any, what: str) -> Dict[str, Any]:
    """The annotations of *owner* (a class or a function), resolved; one that does not resolve
    is a TypeError naming it.  Cached per owner."""
    try:
        return _HINTS[owner]
    except (KeyError, TypeError):
        pass
    typing = _typing()
    extras = {"include_extras": True} if sys.version_info >= (3, 9) else {}
    # The owner's own name resolves too: a class defined in a function may refer to itself.
    local = {getattr(owner, "__name__", "_"): owner} if isinstance(owner, type) else None
    try:
        hints = typing.get_type_hints(owner, localns=local, **extras)
    except Exception:
        raw = dict(getattr(owner, "__annotations__", None) or {})
        for name, annotation in raw.items():
            probe = type("_", (), {"__annotations__": {name: annotation},
                                   "__module__": getattr(owner, "__module__", __name__)})
            try:
                typing.get_type_hints(probe, localns=local, **extras)
            except Exception as exc:
                raise TypeError("%s %r of %s: its annotation %r does not resolve (%s): define that name at "
                                "module level, or import it" % (what, name, _type_name(owner), annotation, exc)) from None
        raise
    try:
        _HINTS[owner] = hints
    except TypeError:
        pass
    return hints


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)


def _json_default(value: Any) -> Any:
    """A default as JSON Schema shows it, or _NO_DEFAULT when JSON cannot hold it."""
    if _is_enum(type(value)):
        value = value.value
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(item is None or isinstance(item, (str, bool, int, float))
                                                for item in value):
        return list(value)
    return _NO_DEFAULT


_NO_DEFAULT = object()


class _SchemaWriter:
    """Writes the schema of one type: named types (dataclass, TypedDict, NamedTuple, Enum) go
    once into ``$defs`` and are referred to, which is what makes recursion possible."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.defs: Dict[str, Any] = {}
        self.names: Dict[Any, str] = {}
        self.referred: set = set()

    def root(self, tp: Any) -> Dict[str, Any]:
        tp, doc = _unwrap(tp)
        if self._named_kind(tp):
            name = self._name_for(tp)
            body = self.defs[name] = self._named_body(tp)
            schema = dict(body)   # inline at the root; kept under $defs only if it refers to itself
            if name not in self.referred:
                del self.defs[name]
        else:
            schema = self.schema(tp, "the root")
        if doc:
            schema["description"] = doc
        if self.defs:
            schema["$defs"] = self.defs
        return schema

    def properties(self, fields: Iterable[Tuple[str, Any, Any, Optional[str]]], owner: str,
                   open_ended: bool = False) -> Dict[str, Any]:
        """An object's schema from (name, type, default or _NO_DEFAULT, doc) per field."""
        properties: Dict[str, Any] = {}
        required = []
        for name, tp, default, doc in fields:
            tp, annotated_doc = _unwrap(tp)
            prop = self.schema(tp, "field %r of %s" % (name, owner))
            doc = doc or annotated_doc
            if doc:
                prop = dict(prop, description=doc)
            if default is _NO_DEFAULT or self.strict:
                required.append(name)
            elif default is not _FACTORY and _json_default(default) is not _NO_DEFAULT:
                prop = dict(prop, default=_json_default(default))
            properties[name] = prop
        # No other keys: a typed answer has just its fields (and a grammar built from the schema
        # stays tight); a function taking **kwargs takes more.
        return {"type": "object", "properties": properties, "required": required,
                "additionalProperties": open_ended and not self.strict}

    def schema(self, tp: Any, where: str) -> Dict[str, Any]:
        typing = _typing()
        tp, doc = _unwrap(tp)
        schema = self._schema(tp, where, typing)
        return dict(schema, description=doc) if doc else schema

    def _schema(self, tp: Any, where: str, typing: Any) -> Dict[str, Any]:
        if tp is typing.Any or tp is object:
            return {}
        simple = {str: "string", bool: "boolean", int: "integer", float: "number", _NoneType: "null", None: "null"}
        if isinstance(tp, collections.abc.Hashable) and tp in simple:
            return {"type": simple[tp]}
        if isinstance(tp, typing.ForwardRef) or isinstance(tp, str):
            raise TypeError("%s: the name %r does not resolve: define it at module level, or pass the type "
                            "itself" % (where, getattr(tp, "__forward_arg__", tp)))
        supertype = getattr(tp, "__supertype__", None)   # NewType
        if supertype is not None:
            return self.schema(supertype, where)
        if self._named_kind(tp):
            return self._ref(tp)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Literal:
            return _literal_schema(args, where)
        if _is_union(origin):
            return {"anyOf": [self.schema(arm, where) for arm in args]}
        if tp in (list, tuple) or origin in (list, collections.abc.Sequence, collections.abc.MutableSequence,
                                             collections.abc.Iterable, collections.abc.Collection):
            return {"type": "array", "items": self.schema(args[0], where)} if args else {"type": "array"}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0], where)}
            if args == ((),):   # Tuple[()]
                return {"type": "array", "maxItems": 0}
            return {"type": "array", "prefixItems": [self.schema(arm, where) for arm in args],
                    "minItems": len(args), "maxItems": len(args)}
        if tp is dict or origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
            if not args:
                return {"type": "object"}
            if _unwrap(args[0])[0] is not str:
                raise TypeError("%s: a dict's keys must be str in JSON, not %s: use dict[str, ...]"
                                % (where, _type_name(args[0])))
            return {"type": "object", "additionalProperties": self.schema(args[1], where)}
        if tp in (set, frozenset) or origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
            raise TypeError("%s: a set has no JSON Schema form (JSON has no sets): use list[...] and make "
                            "a set of it yourself" % where)
        if origin is collections.abc.Callable or tp is collections.abc.Callable or callable(tp) \
                and not isinstance(tp, type):
            raise TypeError("%s: a callable cannot be an answer or an argument (JSON holds data, not "
                            "functions)" % where)
        if tp is bytes or tp is bytearray:
            raise TypeError("%s: JSON has no bytes: use str (base64 text, if it must be bytes)" % where)
        raise TypeError("%s: %s has no JSON Schema form here: use str, int, float, bool, None, list, tuple, "
                        "dict, a Literal, an Enum, a dataclass, a TypedDict or a NamedTuple" % (where, _type_name(tp)))

    @staticmethod
    def _named_kind(tp: Any) -> bool:
        return _is_dataclass(tp) or _is_typeddict(tp) or _is_namedtuple(tp) or _is_enum(tp)

    def _name_for(self, tp: Any) -> str:
        name = self.names.get(tp)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", getattr(tp, "__name__", "Type")) or "Type"
            name, count = base, 1
            while name in self.defs or name in self.names.values():
                count += 1
                name = "%s%d" % (base, count)
            self.names[tp] = name
        return name

    def _ref(self, tp: Any) -> Dict[str, Any]:
        known = tp in self.names
        name = self._name_for(tp)
        self.referred.add(name)
        if not known:
            self.defs[name] = {}   # taken before the body: a field of the same type refers to it
            self.defs[name] = self._named_body(tp)
        return {"$ref": "#/$defs/" + name}

    def _named_body(self, tp: Any) -> Dict[str, Any]:
        if _is_enum(tp):
            return _literal_schema([member.value for member in tp], "enum " + _type_name(tp))
        owner = _type_name(tp)
        if _is_dataclass(tp):
            import dataclasses
            hints = _hints(tp, "field")
            fields = []
            for item in dataclasses.fields(tp):
                if not item.init:
                    continue
                if item.default is not dataclasses.MISSING:
                    default = item.default
                elif item.default_factory is not dataclasses.MISSING:   # type: ignore[misc]
                    default = _FACTORY
                else:
                    default = _NO_DEFAULT
                doc = item.metadata.get("description") or item.metadata.get("doc")
                fields.append((item.name, hints.get(item.name, item.type), default, doc))
            schema = self.properties(fields, owner)
        elif _is_typeddict(tp):
            hints = _hints(tp, "key")
            required = getattr(tp, "__required_keys__", None)
            if required is None:   # Python 3.8: all or nothing
                required = frozenset(hints) if tp.__total__ else frozenset()
            schema = self.properties([(name, hint, _NO_DEFAULT if name in required else _FACTORY, None)
                                      for name, hint in hints.items()], owner)
        else:   # NamedTuple: an object of its fields (names tell a model more than positions)
            hints = _hints(tp, "field")
            defaults = getattr(tp, "_field_defaults", {})
            schema = self.properties([(name, hints.get(name, object),
                                       defaults.get(name, _NO_DEFAULT), None) for name in tp._fields], owner)
        doc = _own_doc(tp)
        if doc:
            schema["description"] = doc
        return schema


_FACTORY = object()   # a default that is not shown (a default_factory, a TypedDict's optional key)


def _own_doc(tp: Any) -> Optional[str]:
    """A class's docstring when its author wrote one (not dataclass's generated signature)."""
    import inspect

    doc = tp.__dict__.get("__doc__")
    if not doc or doc.startswith(tp.__name__ + "("):
        return None
    if _is_typeddict(tp) or _is_namedtuple(tp) or _is_enum(tp):
        for base in tp.__mro__[1:]:
            if base.__dict__.get("__doc__") == doc:
                return None
    return inspect.cleandoc(doc)


def _literal_schema(values: Sequence[Any], where: str) -> Dict[str, Any]:
    for value in values:
        if not (value is None or isinstance(value, (str, bool, int, float))):
            raise TypeError("%s: the value %r cannot be said in JSON: use str, int, float, bool or None"
                            % (where, value))
    schema: Dict[str, Any] = {"enum": list(values)}
    kinds = {_schema_type_of(value) for value in values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), "enum": list(values)}
    return schema


def _schema_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# -- validate() -----------------------------------------------------------------------------------


def validate(instance: Any, schema: Any) -> None:
    """Check *instance* (parsed JSON) against the JSON Schema *schema*; returns None, or raises
    ValidationError for the first place that does not fit (``error.path`` like ``$.address.zip``).

    Knows type, required, properties, additionalProperties, items, prefixItems, enum, const,
    anyOf, oneOf, allOf, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
    maxLength, minItems, maxItems, pattern, and ``$ref`` into ``$defs`` (or ``#``); other keywords
    are not checked.  Anything nested deeper than MAX_SCHEMA_DEPTH is refused.  A schema that
    is not one (a $ref that goes nowhere) is a ValueError.
    """
    if not isinstance(schema, (dict, bool)):
        raise TypeError("schema must be a JSON Schema dict (see json_schema()), not %s" % _shown(schema))
    try:
        failure = _Validator(schema).check(instance, schema, "$", 0)
    except RecursionError:   # only if the caller's own stack was nearly spent already
        failure = ("$", "is nested too deeply to check (recursion limit %d)" % sys.getrecursionlimit())
    if failure is not None:
        raise ValidationError(failure[1], path=failure[0])


_JSON_TYPES = ("string", "integer", "number", "boolean", "null", "object", "array")


def _schema_type_problem(schema: Any, path: str = "$", depth: int = 0) -> Optional[str]:
    """What is wrong with the ``type`` names of *schema* (a typo a server would refuse), or None."""
    if depth > MAX_SCHEMA_DEPTH:
        return "nested deeper than %d levels at %s" % (MAX_SCHEMA_DEPTH, path)
    if isinstance(schema, list):
        for position, item in enumerate(schema):
            wrong = _schema_type_problem(item, "%s[%d]" % (path, position), depth + 1)
            if wrong is not None:
                return wrong
    elif isinstance(schema, dict):
        kinds = schema.get("type")
        for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
            if kind not in _JSON_TYPES:
                return "unknown type %s at %s.type (JSON Schema's types: %s)" % (_got(kind), path, ", ".join(_JSON_TYPES))
        for key, item in schema.items():
            subs: Iterable[Tuple[Any, Any]]
            if key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
                subs = item.items() if isinstance(item, dict) else ()   # names, each to a schema
            elif key in ("enum", "const", "default", "examples", "required") or not isinstance(item, (dict, list)):
                continue   # values, not schemas
            else:
                subs = [(None, item)]
            for name, sub in subs:
                where = _path_to(path, key) if name is None else _path_to(_path_to(path, key), name)
                wrong = _schema_type_problem(sub, where, depth + 1)
                if wrong is not None:
                    return wrong
    return None


def _path_to(path: str, key: Any) -> str:
    if isinstance(key, int):
        return "%s[%d]" % (path, key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return "%s.%s" % (path, key)
    return "%s[%s]" % (path, json.dumps(key, ensure_ascii=False))


def _got(value: Any) -> str:
    """*value* as a message shows what arrived: short JSON, costing little whatever its size."""
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]   # speed: a long answer is not encoded whole to show 60 characters
    elif isinstance(value, (dict, list)) and len(value) > 8:
        return "an object of %d keys" % len(value) if isinstance(value, dict) else "a list of %d items" % len(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = _shown(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_json_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, (list, tuple))
    raise ValueError("the schema names an unknown type %r: use %s" % (kind, ", ".join(_JSON_TYPES)))


def _json_equal(a: Any, b: Any) -> bool:
    """JSON's equality: true is not 1, 1 is 1.0, objects and arrays compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class _Validator:
    """One validate() call: the root schema (for $ref) and the checks, each returning
    (path, message) for the first misfit or None."""

    def __init__(self, root: Any):
        self.root = root

    def check(self, value: Any, schema: Any, path: str, depth: int) -> Optional[Tuple[str, str]]:
        if depth > MAX_SCHEMA_DEPTH:
            return path, "is nested deeper than %d levels (MAX_SCHEMA_DEPTH): refused" % MAX_SCHEMA_DEPTH
        if schema is True or schema == {}:
            return None
        if schema is False:
            return path, "is not allowed here (the schema allows nothing)"
        if not isinstance(schema, dict):
            raise ValueError("a schema at %s is %s, not an object or a boolean" % (path, _shown(schema)))
        ref = schema.get("$ref")
        if ref is not None:
            failure = self.check(value, self.resolve(ref), path, depth + 1)
            if failure is not None:
                return failure
        kinds = schema.get("type")
        if kinds is not None:
            names = kinds if isinstance(kinds, list) else [kinds]
            if not any(_is_json_type(value, kind) for kind in names):
                return path, "expected %s, got %s" % (" or ".join(names), _got(value))
        if "enum" in schema and not any(_json_equal(value, option) for option in schema["enum"]):
            return path, "expected one of %s, got %s" % (", ".join(_got(option) for option in schema["enum"]),
                                                         _got(value))
        if "const" in schema and not _json_equal(value, schema["const"]):
            return path, "expected %s, got %s" % (_got(schema["const"]), _got(value))
        for check in (self._alternatives, self._number, self._string):
            failure = check(value, schema, path, depth)
            if failure is not None:
                return failure
        if isinstance(value, dict):
            return self._object(value, schema, path, depth)
        if isinstance(value, (list, tuple)):
            return self._array(value, schema, path, depth)
        return None

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ValueError("the schema's $ref %r cannot be followed: only refs inside the schema "
                             "('#/$defs/Name') are" % (ref,))
        target = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else ():
            part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise ValueError("the schema's $ref %r goes nowhere: no %r in the schema" % (ref, part))
        return target

    def _alternatives(self, value: Any, schema: Dict[str, Any], path: str, depth: int) -> Optional[Tuple[str, str]]:
        for sub in schema.get("allOf") or ():
            failure = self.check(value, sub, path, depth + 1)
            if failure is not None:
                return failure
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if not options:
                continue
            failures = [self.check(value, sub, path, depth + 1) for sub in options]
            fits = failures.count(None)
            if fits == 0:
                return _no_alternative(value, options, failures, path)
            if key == "oneOf" and fits > 1:
                return path, "fits %d of the oneOf forms, and must fit exactly one: %s" % (fits, _got(value))
        return None

    @staticmethod
    def _number(value: Any, schema: Dict[str, Any], path: str, depth: int) -> Optional[Tuple[str, str]]:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        for key, wrong, words in (("minimum", lambda v, b: v < b, ">="), ("maximum", lambda v, b: v > b, "<="),
                                  ("exclusiveMinimum", lambda v, b: v <= b, ">"),
                                  ("exclusiveMaximum", lambda v, b: v >= b, "<")):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool) and wrong(value, bound):
                return path, "expected a number %s %s, got %s" % (words, _got(bound), _got(value))
        return None

    @staticmethod
    def _string(value: Any, schema: Dict[str, Any], path: str, depth: int) -> Optional[Tuple[str, str]]:
        if not isinstance(value, str):
            return None
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            return path, "expected a string of at least %d character%s, got %s" % (low, "" if low == 1 else "s",
                                                                                   _got(value))
        if isinstance(high, int) and len(value) > high:
            return path, "expected a string of at most %d character%s, got %s" % (high, "" if high == 1 else "s",
                                                                                  _got(value))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            return path, "expected a string matching %s, got %s" % (_got(pattern), _got(value))
        return None

    def _object(self, value: Dict[Any, Any], schema: Dict[str, Any], path: str, depth: int) -> Optional[Tuple[str, str]]:
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            sub = properties.get(name)
            if sub is None:
                if extra is False:
                    allowed = ", ".join(properties) or "none"
                    return _path_to(path, name), "is not an allowed property (allowed: %s)" % allowed
                sub = extra
            failure = self.check(item, sub, _path_to(path, name), depth + 1)
            if failure is not None:
                return failure
        for name in schema.get("required") or ():   # after the values: a wrong value says more
            if name not in value:
                return _path_to(path, name), "is required but missing"
        return None

    def _array(self, value: Sequence[Any], schema: Dict[str, Any], path: str, depth: int) -> Optional[Tuple[str, str]]:
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            return path, "expected at least %d item%s, got %d" % (low, "" if low == 1 else "s", len(value))
        if isinstance(high, int) and len(value) > high:
            return path, "expected at most %d item%s, got %d" % (high, "" if high == 1 else "s", len(value))
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(items, list):   # draft 4 to 2019-09: a list of items is prefixItems
            prefix, items = items, schema.get("additionalItems")
        prefix = prefix or []
        for position, item in enumerate(value):
            sub = prefix[position] if position < len(prefix) else items
            if sub is None:
                continue
            failure = self.check(item, sub, _path_to(path, position), depth + 1)
            if failure is not None:
                return failure
        return None


def _no_alternative(value: Any, options: Sequence[Any], failures: Sequence[Any], path: str) -> Tuple[str, str]:
    """The misfit of a value that fits none of anyOf's (or oneOf's) forms: the kinds expected
    when the forms differ by type, else the failure that went deepest."""
    kinds = [option.get("type") for option in options if isinstance(option, dict)]
    named = [kind for kind in kinds if isinstance(kind, str)]
    if len(named) == len(options) and not any(_is_json_type(value, kind) for kind in named):
        return path, "expected %s, got %s" % (" or ".join(named), _got(value))
    return max(failures, key=lambda failure: len(failure[0]))


# -- from JSON that fits to the caller's type ------------------------------------------------------


def _build(tp: Any, value: Any) -> Any:
    """*value* (JSON that fits json_schema(*tp*)) as a *tp*: dataclasses, NamedTuples and
    Enums built, nested ones too; a dict for a TypedDict or a dict type."""
    typing = _typing()
    tp = _unwrap(tp)[0]
    if tp is typing.Any or tp is object or tp is str or tp is bool or tp is None or tp is _NoneType:
        return value
    if tp is int:
        return int(value)
    if tp is float:
        return float(value)
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return _build(supertype, value)
    if _is_enum(tp):
        return tp(value)
    if _is_dataclass(tp) or _is_namedtuple(tp):
        hints = _hints(tp, "field")
        names = [item.name for item in __import__("dataclasses").fields(tp) if item.init] \
            if _is_dataclass(tp) else list(tp._fields)
        return tp(**{name: _build(hints.get(name, object), value[name]) for name in names if name in value})
    if _is_typeddict(tp):
        hints = _hints(tp, "key")
        return {key: _build(hints.get(key, object), item) for key, item in value.items()}
    validator = getattr(tp, "model_validate", None)
    if callable(validator):   # pydantic
        return validator(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return value
    if _is_union(origin):
        for arm in args:
            try:
                validate(value, json_schema(arm))
            except ValueError:
                continue
            return _build(arm, value)
        return value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], item) for item in value)
        return tuple(_build(arm, item) for arm, item in zip(args, value))
    if isinstance(value, list):
        item_type = args[0] if args else object
        built = [_build(item_type, item) for item in value]
        return tuple(built) if tp is tuple else built
    if isinstance(value, dict) and len(args) == 2:
        return {key: _build(args[1], item) for key, item in value.items()}
    return value


def _schema_name(tp: Any) -> str:
    """The ``name`` sent with a schema: the type's name, as OpenAI's pattern allows."""
    name = tp.get("title") if isinstance(tp, dict) else getattr(tp, "__name__", None) or getattr(tp, "_name", None)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(name or "answer"))[:64]
    return name or "answer"


def _response_format(schema: Any, strict: Optional[bool]) -> Dict[str, Any]:
    """The ``response_format`` for ``chat(schema=)``: OpenAI's json_schema form, the schema
    nested under ``json_schema`` (llama.cpp makes a grammar of it there, and vLLM reads it
    there; llama.cpp ignores a schema at the top of response_format).  A response_format
    given as *schema* is sent as it is."""
    if isinstance(schema, dict) and schema.get("type") in ("json_schema", "json_object", "text"):
        if schema.get("type") == "json_schema" and not isinstance(schema.get("json_schema"), dict):
            raise TypeError("a json_schema response_format keeps its schema under 'json_schema' (llama.cpp ignores "
                            "one beside 'type'): pass schema=<the schema itself>, or {'type': 'json_schema', "
                            "'json_schema': {'name': ..., 'schema': ...}}")
        return schema
    body: Dict[str, Any] = {"name": _schema_name(schema), "schema": json_schema(schema, strict=bool(strict))}
    if strict is not None:
        body["strict"] = strict
    return {"type": "json_schema", "json_schema": body}


# ---------------------------------------------------------------------------
# Pure rules: tools and parsed answers
# ---------------------------------------------------------------------------
#
# Python functions as tools (function_tool(): a schema from the signature and docstring), what a
# reply with a schema or tools becomes (_Parse: openai-python's Parsed* types), and the tool loop's
# rules (_ToolTurn: the model's arguments are untrusted input, checked before a call, never run).


# -- Python functions as tools ---------------------------------------------------------------------


_PARAM_SECTIONS = ("args", "arguments", "parameters", "params", "keyword args", "keyword arguments",
                   "other parameters")
# Patterns as text: re compiles (and caches) them on first use, not at import.
_GOOGLE_HEADER = r"([A-Za-z][A-Za-z ]*):\s*$"
_NUMPY_RULE = r"\s*-{3,}\s*$"
_REST_PARAM = r":(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\**(\w+)\s*:\s*(.*)"


def _docstring_parts(doc: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """(the description, {parameter: its description}) of a docstring written in Google
    (``Args:``), NumPy (``Parameters`` over a rule of dashes) or reST (``:param x:``) style."""
    import inspect

    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: List[str] = []
    params: Dict[str, str] = {}
    style, current, in_params = None, None, False   # style: None (description), "google", "numpy", "rest"
    for position, line in enumerate(lines):
        stripped, indented = line.strip(), line[:1].isspace()
        following = lines[position + 1] if position + 1 < len(lines) else ""
        if not indented and re.match(_NUMPY_RULE, following) and stripped:          # NumPy header
            style, in_params, current = "numpy", stripped.lower() in _PARAM_SECTIONS, None
            continue
        if style == "numpy" and re.match(_NUMPY_RULE, line):
            continue
        google = re.match(_GOOGLE_HEADER, line)
        if not indented and google:                                             # Google header
            style, in_params, current = "google", google.group(1).strip().lower() in _PARAM_SECTIONS, None
            continue
        rest = re.match(_REST_PARAM, stripped)
        if rest and not indented:                                               # reST field
            style, in_params, current = "rest", True, rest.group(1)
            params[current] = rest.group(2).strip()
            continue
        if stripped.startswith(":") and not indented and re.match(r":\w[^:]*:", stripped):   # :returns: ...
            style, in_params, current = "rest", False, None
            continue
        if style is None:
            description.append(line)
        elif in_params and stripped:
            entry = _param_entry(style, line, indented)
            if entry is not None:
                current = entry[0]
                params[current] = entry[1]
            elif current is not None:
                params[current] = (params[current] + " " + stripped).strip()
    return "\n".join(description).strip(), params


def _param_entry(style: str, line: str, indented: bool) -> Optional[Tuple[str, str]]:
    """(name, description so far) when *line* starts a parameter's entry, else None (it
    continues the entry before)."""
    stripped = line.strip()
    if style == "numpy":   # "city : str" at the section's own indent; its text indented below
        match = re.fullmatch(r"\**(\w+)\s*(?::.*)?", stripped)
        return (match.group(1), "") if match and not indented else None
    if style == "google":  # "    city (str): The city." one indent in; more indent continues it
        match = re.match(r"\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
        return (match.group(1), match.group(2).strip()) if match and len(line) - len(stripped) <= 4 else None
    return None


def function_tool(func: Callable[..., Any], *, name: Optional[str] = None, description: Optional[str] = None,
                  strict: bool = False) -> Dict[str, Any]:
    """The OpenAI tool definition of the Python function *func*: its name, its docstring's
    description, and a JSON Schema of its parameters from the signature, annotations and
    docstring (Google, NumPy or reST descriptions; a parameter without an annotation takes any
    JSON value; one with a default is not required).  ``chat(tools=[func])`` does this for you."""
    return _FunctionTool(func, name, description, strict).spec


class _FunctionTool:
    """A Python function offered as a tool: its definition (*spec*) and how to call it with
    the model's arguments (untrusted: parsed, checked against the schema, built, never evaluated)."""

    def __init__(self, func: Callable[..., Any], name: Optional[str] = None, description: Optional[str] = None,
                 strict: bool = False):
        import inspect

        if not callable(func):
            raise TypeError("a tool must be a function or a tool dict, not %s" % _shown(func))
        self.func = func
        self.name: str = name or getattr(func, "__name__", "") or ""
        if not re.fullmatch(_TOOL_NAME, self.name):
            raise ValueError("the tool name %r is not one a model can call: use letters, digits, _ and - "
                             "(at most 64), e.g. function_tool(func, name='get_weather')" % (self.name,))
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            type(func).__dict__.get("__call__"))   # an object whose __call__ is an async def
        summary, docs = _docstring_parts(inspect.getdoc(func))
        signature = inspect.signature(func)
        hints = _hints(func, "parameter") if getattr(func, "__annotations__", None) else {}
        fields, self.types, open_ended = [], {}, False
        for param in signature.parameters.values():
            if param.kind is param.VAR_KEYWORD:
                open_ended = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
                raise TypeError("tool %s: parameter %r cannot be passed by name, and a model names every "
                                "argument: make it a normal parameter" % (self.name, param.name))
            tp = hints.get(param.name, object)
            self.types[param.name] = tp
            default = _NO_DEFAULT if param.default is param.empty else param.default
            fields.append((param.name, tp, default, docs.get(param.name)))
        writer = _SchemaWriter(strict)
        self.parameters = writer.properties(fields, "tool " + self.name, open_ended)
        if writer.defs:
            self.parameters["$defs"] = writer.defs
        function: Dict[str, Any] = {"name": self.name, "description": description or summary or self.name,
                                    "parameters": self.parameters}
        if strict:
            function["strict"] = True
        self.spec = {"type": "function", "function": function}

    def arguments(self, text: Any) -> Dict[str, Any]:
        """The keyword arguments of a call from the model's *text*: parsed, checked, built."""
        parsed = _parsed_arguments(text, self.parameters)
        return {key: _build(self.types.get(key, object), value) for key, value in parsed.items()}


def _parsed_arguments(text: Any, schema: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A tool call's ``arguments`` (JSON text from the model) as a dict that fits *schema*;
    ValidationError otherwise."""
    if isinstance(text, dict):   # some servers send the object itself
        parsed = text
    else:
        if not isinstance(text, str):
            raise ValidationError("the arguments are %s, not JSON text" % _json_kind(text), path="$")
        try:
            parsed = loads(text) if text.strip() else AttrDict()
        except ValueError as exc:
            raise ValidationError("the arguments are not JSON (%s): %s" % (exc, _got(text)), path="$") from None
    if not isinstance(parsed, dict):
        raise ValidationError("expected the arguments as an object, got %s" % _got(parsed), path="$")
    if schema is not None:
        validate(parsed, schema)
    return parsed


def _tool_specs(tools: Any) -> Tuple[List[Any], Dict[str, Any]]:
    """(what to send as ``tools``, {name: _FunctionTool or the parameters schema of a tool dict})."""
    if isinstance(tools, (str, bytes, dict)) or not isinstance(tools, (list, tuple)):
        raise TypeError("tools must be a list of functions or tool dicts, not %s" % _shown(tools))
    specs: List[Any] = []
    known: Dict[str, Any] = {}
    for position, tool in enumerate(tools):
        if isinstance(tool, _FunctionTool):
            pass
        elif callable(tool) and not isinstance(tool, dict):
            tool = _FunctionTool(tool)
        elif isinstance(tool, dict):
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                known[function["name"]] = function.get("parameters")
            specs.append(tool)
            continue
        else:
            raise TypeError("tools[%d] must be a function or a tool dict, not %s" % (position, _shown(tool)))
        if tool.name in known:
            raise ValueError("two tools are named %r: give one another name (function_tool(f, name=...))" % tool.name)
        known[tool.name] = tool
        specs.append(tool.spec)
    return specs, known


# -- parsed answers (openai-python's Parsed* names) ---------------------------------------------------


class ParsedFunction(FunctionCall):   # type: ignore[misc,valid-type]
    """A tool call's function whose ``parsed_arguments`` are the model's arguments parsed and
    checked against the tool's schema (ValidationError when they do not fit, read then)."""

    __slots__ = ("_schema", "_known")

    @property
    def parsed_arguments(self) -> Dict[str, Any]:
        if not self._known:
            raise ValidationError("the model called %r, which is not one of the tools offered" % self.get("name"),
                                  path="$")
        return _parsed_arguments(self.get("arguments"), self._schema)


ParsedFunctionToolCall = _result_type("ParsedFunctionToolCall", "id function type",
                                      {"function": FunctionCall}, ChatCompletionMessageToolCall)


class ParsedChatCompletionMessage(ChatCompletionMessage):   # type: ignore[misc,valid-type]
    """A message whose ``parsed`` is its content as the schema's type (None without a schema,
    after a refusal, or when the model called tools instead)."""

    __slots__ = ("parsed",)


# Lazy typing only ever turns plain AttrDicts into slot-free types, so children are declared as
# the unparsed types here: the Parsed* objects with slots are made by _Parse, never retyped.
ParsedChoice = _result_type("ParsedChoice", "finish_reason index logprobs message",
                            {"message": ChatCompletionMessage, "logprobs": ChoiceLogprobs}, Choice)


class ParsedChatCompletion(ChatCompletion):   # type: ignore[misc,valid-type]
    """A chat completion whose choices' messages carry ``parsed`` (``reply.parsed``: the first
    one's); after run_tools(), ``messages`` is the whole conversation."""

    __slots__ = ("messages",)
    _children = dict(ChatCompletion._children, choices=[ParsedChoice])

    def __reduce__(self) -> Any:   # copies and pickles whole: parsed answers and messages too
        import copyreg

        slots = {name: getattr(self, name, None) for name in ("messages", "elapsed", "first_token", "chunks")}
        rebuild = copyreg.__newobj__   # type: ignore[attr-defined]
        return rebuild, (type(self),), (None, slots), None, iter(self.items())

    @property
    def parsed(self) -> Any:
        choices = self.get("choices") or []
        message = choices[0].get("message") if choices else None
        return getattr(message, "parsed", None) if isinstance(message, ParsedChatCompletionMessage) else None


class _Parse:
    """What chat(schema=, tools=) does to a reply (or a stream's final()): messages parsed into
    the schema's type, tool calls' arguments made checkable.  One per call."""

    def __init__(self, schema: Any, answer_type: Any, known: Dict[str, Any], capped: bool = True):
        self.schema, self.answer_type, self.known, self.capped = schema, answer_type, known, capped

    def __call__(self, reply: Any) -> Any:
        result = ParsedChatCompletion(reply)
        result.messages = result.elapsed = result.first_token = result.chunks = None
        choices = []
        for choice in result.get("choices") or ():
            choice = ParsedChoice(choice)
            message = choice.get("message")
            if isinstance(message, dict):
                choice["message"] = self._message(ParsedChatCompletionMessage(message), choice, result)
            choices.append(choice)
        if "choices" in result:
            result["choices"] = choices
        return result

    def _message(self, message: ParsedChatCompletionMessage, choice: Any, reply: Any) -> Any:
        message.parsed = None
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            message["tool_calls"] = [self._tool_call(call) if isinstance(call, dict) else call for call in calls]
        if not self.schema or self.schema.get("type") == "text":
            return message
        reason = choice.get("finish_reason")
        if reason == "length":
            raise LengthFinishReasonError(reply, self.capped)
        if reason == "content_filter":
            raise ContentFilterFinishReasonError(reply)
        content = message.get("content")
        if message.get("refusal") or (not content and calls):
            return message   # a refusal (message.refusal says why), or tool calls instead of an answer
        message.parsed = self.parse(content)
        return message

    def _tool_call(self, call: Dict[str, Any]) -> Any:
        call = ParsedFunctionToolCall(call)
        function = call.get("function")
        if isinstance(function, dict):
            parsed = ParsedFunction(function)
            tool = self.known.get(str(function.get("name")))
            parsed._known = function.get("name") in self.known
            parsed._schema = tool.parameters if isinstance(tool, _FunctionTool) else tool
            call["function"] = parsed
        return call

    def parse(self, content: Any) -> Any:
        """The answer *content* as the schema's type; InvalidResponseError (with the text and
        the first failing path) when it is not JSON or does not fit."""
        if not isinstance(content, str) or not content.strip():
            raise InvalidResponseError("the model answered no text, where the schema asked for JSON "
                                       "(content %s)" % _got(content), body=str(content or ""))
        try:
            value = loads(content)
        except ValueError as exc:
            raise InvalidResponseError("the answer is not JSON (%s), where the schema asked for JSON: %s"
                                       % (exc, _got(content)), body=content) from None
        schema = self.schema.get("json_schema", {}).get("schema") if self.schema.get("type") == "json_schema" else None
        if schema is not None:
            try:
                validate(value, schema)
            except ValidationError as exc:
                error = InvalidResponseError("the answer does not fit the schema: %s (the answer: %s)"
                                             % (exc, _got(content)), body=content)
                error.path = exc.path
                raise error from None
        if self.answer_type is None:
            return value
        try:
            return _build(self.answer_type, value)
        except (TypeError, ValueError) as exc:   # a pydantic model's own check, or a type's constructor
            raise InvalidResponseError("the answer fits the schema but does not make a %s: %s"
                                       % (_type_name(self.answer_type), exc), body=content) from None


def _parse_plan(schema: Any, strict: Optional[bool], tools: Any,
                capped: bool = True) -> Tuple[Optional[Dict[str, Any]], Any, Any]:
    """(the response_format to send, the tools to send, the _Parse to apply) of chat()'s
    *schema*, *strict* and *tools* (*capped*: the call set max_tokens); (None, tools, None)
    when there is nothing to parse."""
    if schema is None and strict is not None:
        raise TypeError("strict= goes with schema=: pass schema=YourType (or a JSON Schema dict)")
    if schema is None and not tools:
        return None, tools, None
    specs, known = _tool_specs(tools) if tools else (tools, {})
    response_format = _response_format(schema, strict) if schema is not None else None
    answer_type = None if schema is None or isinstance(schema, dict) else schema
    return response_format, specs, _Parse(response_format or {}, answer_type, known, capped) if (
        schema is not None or known) else None


# -- the tool loop's rules (run_tools(); the clients run the calls) ----------------------------------

ToolStep = _result_type("ToolStep", "round id name arguments result content error")
ToolStep.__doc__ = """One tool call of run_tools(), as on_step() sees it: the model's ``round`` (from 1),
the call's ``id`` and tool ``name``, the ``arguments`` it was called with (built from the
model's JSON; the raw text when they did not fit), the tool's ``result``, the ``content`` sent
back to the model, and ``error`` (None, or what went wrong: an unknown tool, invalid arguments,
the tool's exception)."""


class _ToolTurn:
    """The tool calls of one model turn, for the client to run (Client one after another,
    AsyncClient concurrently) and answer with one ``role: tool`` message each."""

    def __init__(self, calls: List[Any], known: Dict[str, Any], round: int, on_step: Optional[Callable[..., Any]]):
        self.calls, self.known, self.round, self.on_step = calls, known, round, on_step

    def prepare(self, call: Any) -> Tuple[Any, Optional[_FunctionTool], Dict[str, Any]]:
        """(its ToolStep, the tool to call or None, the keyword arguments) of one call: the
        model's arguments parsed, checked and built here, never evaluated."""
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        name, text = function.get("name"), function.get("arguments")
        step = ToolStep(round=self.round, id=call.get("id"), name=name, arguments=text, result=None, content=None,
                        error=None)
        tool = self.known.get(str(name))
        if not isinstance(tool, _FunctionTool):
            step["error"] = "there is no tool named %s; the tools are: %s" % (
                _got(name), ", ".join(sorted(self.known)) or "none")
            return step, None, {}
        try:
            kwargs = tool.arguments(text)
        except (TypeError, ValueError) as exc:   # ValidationError, or a type's constructor refusing
            step["error"] = "invalid arguments for %s: %s" % (name, exc)
            return step, None, {}
        step["arguments"] = kwargs
        return step, tool, kwargs

    @staticmethod
    def finish(step: Any, result: Any = None, error: Optional[BaseException] = None) -> Any:
        """*step* with the tool's *result* (or *error*) and the content to send back."""
        if error is not None:
            step["error"] = "%s: %s" % (type(error).__name__, error)
        else:
            step["result"] = result
        step["content"] = "error: " + step["error"] if step["error"] else _tool_content(result)
        return step

    @staticmethod
    def message(step: Any) -> Dict[str, Any]:
        return {"role": "tool", "tool_call_id": step["id"], "content": step["content"]}


def _tool_content(result: Any) -> str:
    """A tool's return value as the text the model reads: a str as it is, anything else as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if _is_dataclass(type(value)):
        import dataclasses
        return dataclasses.asdict(value)
    if _is_enum(type(value)):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def _assistant_turn(message: Dict[str, Any], round: int) -> Dict[str, Any]:
    """The reply's message as the conversation's next turn: its fields without None values,
    and an id for each tool call that came without one (the tool messages refer to it)."""
    turn = {key: value for key, value in message.items() if value is not None}
    turn["role"] = "assistant"
    calls = []
    for position, call in enumerate(turn.get("tool_calls") or ()):
        if isinstance(call, dict) and not call.get("id"):
            call = dict(call, id="call_%d_%d" % (round, position))
        calls.append(call)
    if calls:
        turn["tool_calls"] = calls
    return turn


# ---------------------------------------------------------------------------
# Errors: what failures become
# ---------------------------------------------------------------------------
#
# Where OS and framing failures become the documented family, for both transports: while
# connecting (_connect_failure), before the answer's head (_begin_failure), and while reading a
# body or a stream (_Reading, the one read boundary).


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name (%s)" % (exc.strerror or exc)
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


class _RetryableConnectionError(Exception):
    """Internal: an APIConnectionError before any byte of answer; *kind* is retry_wait()'s failure."""

    def __init__(self, error: APIConnectionError, kind: str = _FAILED_CONNECT, refused: bool = False):
        super().__init__(error)
        self.error = error
        self.kind = kind
        self.refused = refused


def _connect_failure(exc: BaseException, origin: _Origin, connect_timeout: Optional[float],
                     handshake: bool = False) -> Exception:
    """What a failure to open a connection to *origin* (or its proxy) is; *handshake*: it
    came during the TLS handshake (TCP and any proxy tunnel were open)."""
    proxy = origin.proxy
    if handshake:
        return _tls_failure(exc, origin, connect_timeout, False) or _RetryableConnectionError(
            APIConnectionError("the TLS handshake with %s:%s failed: %s"
                               % (origin.host, origin.port, _describe_os_error(exc))), _FAILED_TLS)
    if origin.unix_socket:
        where = "unix socket " + origin.unix_socket
    elif proxy is None:
        where = "%s:%s" % (origin.host, origin.port)
    else:
        where = "proxy %s:%s" % (proxy.host, proxy.port)
    if isinstance(exc, socket.timeout):
        return _RetryableConnectionError(APITimeoutError(
            "connecting to %s took longer than %s s" % (where, connect_timeout)))
    return _RetryableConnectionError(
        APIConnectionError("cannot connect to %s: %s" % (where, _describe_os_error(exc))),
        refused=isinstance(exc, (ConnectionRefusedError, FileNotFoundError)))


#: OpenSSL's reasons when an https:// request is answered in plain HTTP ("HTTP/1.1 400 ..." read
#: as a TLS record), by OpenSSL version.
_PLAIN_HTTP_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                       "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "UNEXPECTED_RECORD")
#: Certificate check codes (X509_V_ERR_*): the signer is not trusted; expired; not yet valid;
#: not for this name or address.
_UNKNOWN_CA_CODES = (2, 18, 19, 20, 21)
_EXPIRED, _NOT_YET_VALID, _WRONG_NAME_CODES = 10, 9, (62, 64)


def _note_certificate_request(conn: Any, direction: str, version: Any, content_type: int, message_type: int,
                              data: bytes) -> None:
    """The TLS message callback of our contexts: marks a connection whose server asked for a
    client certificate, so that its refusal (an alert, or a reset) can be named as such."""
    if content_type == 22 and message_type == 13 and direction == "read":   # handshake: CertificateRequest
        try:
            conn.dmr_certificate_asked = True
        except AttributeError:
            pass


def _certificate_asked(conn: Any) -> bool:
    """Whether the server of *conn* (either transport's connection) asked for a client certificate."""
    tls_object = getattr(conn, "tls", None) or getattr(conn, "sock", None)   # asyncio's SSLObject, or the SSLSocket
    return bool(getattr(tls_object, "dmr_certificate_asked", False))


def _tls_failure(exc: BaseException, origin: _Origin, connect_timeout: Optional[float],
                 certificate_asked: bool) -> Optional[_RetryableConnectionError]:
    """The one-line error for a TLS failure of *origin*, or None if *exc* is none of those
    named here.  Each is a verdict (retry_wait's "tls": never retried) except a handshake
    that did not finish within *connect_timeout* ("handshake-stalled": tried again once)."""
    where = "%s:%s" % (origin.host, origin.port)
    settings = origin.tls.settings if origin.tls is not None else _DEFAULT_TLS
    ssl = sys.modules.get("ssl")
    kind, text = _FAILED_TLS, None
    if isinstance(exc, socket.timeout):
        kind, text = _FAILED_HANDSHAKE, ("the TLS handshake with %s did not finish within %s s (is it an "
                                         "HTTPS server? a plain-HTTP one needs http://)" % (where, connect_timeout))
    elif ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        code, why = exc.verify_code, exc.verify_message or exc.reason
        if code in _UNKNOWN_CA_CODES:
            trusted = ("%s %s" % (settings.source, settings.verify) if isinstance(settings.verify, str)
                       else "the system's CAs" + (" and DMR's CA %s" % settings.dmr_ca if settings.dmr_ca else ""))
            text = ("the certificate of %s is signed by a CA this client does not trust (%s; trusted: %s): pass "
                    "verify='ca.pem' (--cacert, or %s) with the CA that signed it"
                    % (where, why, trusted, ENV_TLS_CA_CERT))
        elif code == _EXPIRED:
            text = "the certificate of %s has expired (%s): the server must renew it" % (where, why)
        elif code == _NOT_YET_VALID:
            text = "the certificate of %s is not valid yet (%s): check this machine's clock" % (where, why)
        elif code in _WRONG_NAME_CODES:
            text = ("the certificate of %s is for another name (%s): connect by a name it holds"
                    % (where, why))
        else:
            text = "the certificate of %s was refused: %s" % (where, why)
    elif ssl is not None and isinstance(exc, ssl.SSLError) and exc.reason in _PLAIN_HTTP_REASONS:
        text = "the server at %s speaks plain HTTP: write the base URL with http://, not https://" % where
    elif certificate_asked and not settings.cert and isinstance(exc, (OSError, _NoAnswer)):
        text = ("client certificate required: %s asked for one and ended the connection (%s): pass cert="
                % (where, _describe_os_error(exc) if isinstance(exc, OSError) else "no answer"))
    elif ssl is not None and isinstance(exc, ssl.SSLError) and "CERTIFICATE_REQUIRED" in (exc.reason or ""):
        text = "client certificate required: %s refused the connection without one: pass cert=" % where
    if text is None:
        return None
    return _RetryableConnectionError(APITimeoutError(text) if kind == _FAILED_HANDSHAKE
                                     else APIConnectionError(text), kind)


def _begin_failure(exc: BaseException, method: str, url: str, timeout: Optional[float], reused: bool,
                   origin: Optional[_Origin] = None, certificate_asked: bool = False) -> Exception:
    """What a failure between writing a request and its answer's head is.

    Failures before any byte of answer become _RetryableConnectionError for
    retry_wait() to decide on; the rest are documented errors.  On a new
    TLS connection whose server asked for a client certificate
    (*certificate_asked*: TLS 1.3 refuses it after the handshake), its alert
    or reset is that refusal.
    """
    if origin is not None and origin.scheme == "https" and not reused and not isinstance(exc, socket.timeout):
        refused = _tls_failure(exc, origin, None, certificate_asked)
        if refused is not None:
            refused.error.url = url
            return refused
    if isinstance(exc, (_NoAnswer, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
        # The request went out (or partly) and the connection ended without a byte of answer:
        # on a reused keep-alive connection the server had most likely closed it meanwhile.
        return _RetryableConnectionError(APIConnectionError(
            "%s %s: the connection closed before any answer%s" % (
                method, url, "" if isinstance(exc, _NoAnswer) else " (%s)" % _describe_os_error(exc)),
            url=url), kind=_FAILED_STALE if reused else _FAILED_NO_ANSWER)
    if isinstance(exc, socket.timeout):
        # The request went out: the server may be working on it, so this is not retried.
        return APITimeoutError("no response from %s within %s s (a model load can take "
                               "minutes: raise timeout=)" % (url, timeout), url=url)
    if isinstance(exc, ProtocolError):
        return ProtocolError("the response from %s broke HTTP/1.1 framing: %s" % (url, exc.message), url=url)
    return APIConnectionError("%s %s failed while waiting for the answer: %s"
                              % (method, url, _describe_os_error(exc)), url=url)


def _read_failure(exc: BaseException, what: str, url: str, timeout: Optional[float], count: int = 0,
                  unit: str = "", meaning: str = "") -> BaseException:
    """The documented error for *exc*, raised while reading *what* (from *url*); *exc* itself
    if it is one already."""
    after = " after %d %s" % (count, unit) if unit else ""
    meaning = "; " + meaning if meaning else ""
    if isinstance(exc, socket.timeout):
        return APITimeoutError("%s stalled: nothing for %s s%s%s" % (what, timeout, after, meaning),
                               url=url, chunks_received=count)
    if isinstance(exc, ProtocolError):
        return ProtocolError("%s broke HTTP/1.1 framing%s: %s%s" % (what, after, exc.message, meaning),
                             url=url, chunks_received=count)
    if isinstance(exc, OSError):
        return APIConnectionError("%s was cut%s (%s)%s" % (what, after, _describe_os_error(exc), meaning),
                                  url=url, chunks_received=count)
    return exc


class _Reading:
    """The read boundary: ``with _Reading(exchange, source):`` around every read of an answer
    after its head -- a whole body, a stream, a pull, a followed resource -- of both clients.

    Whatever leaves the block early, the connection is closed unless it was
    settled (never pooled half-read); a consumer that stops (GeneratorExit,
    StopAsyncIteration) is not a failure.  OS and framing failures become
    APITimeoutError, APIConnectionError or ProtocolError naming what was
    read and how far it got; the source keeps what was raised, for final().
    A sync context manager: it works inside generators and ``async def`` alike.
    """

    __slots__ = ("exchange", "source")

    def __init__(self, exchange: Any, source: Any = None):
        self.exchange = exchange
        self.source = source

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        if kind is None:
            return
        exchange, source = self.exchange, self.source
        exchange.discard()   # a no-op once finish() or drain() settled it
        if kind is GeneratorExit or kind is StopAsyncIteration:
            return
        if source is None:
            failure = _read_failure(exc, "the response from " + exchange.url, exchange.url, exchange.timeout)
        else:
            failure = _read_failure(exc, "%s from %s" % (source.what, exchange.url), exchange.url,
                                    exchange.timeout, source.received, source.unit, source.meaning)
            source.error = failure
        if failure is not exc:
            raise failure from exc


def _is_json(exchange: Any) -> bool:
    return (exchange.headers.get("Content-Type") or "").startswith("application/json")


def _not_a_stream(exchange: Any, raw: bytes) -> DMRError:
    """A JSON answer where an event stream was asked for: what the server said instead."""
    body = raw.decode("utf-8", "replace")
    message, error_type, code = parse_error_body(body)
    if _json_object_with(body, "error"):
        return StreamError(message, body=body, error_type=error_type, code=code)
    return InvalidResponseError("%s answered a streaming request with one JSON body instead of an "
                                "event stream (does it support stream=True?)" % exchange.url, body=body,
                                status_code=exchange.status)


# ---------------------------------------------------------------------------
# Transport
# ---------------------------------------------------------------------------

#: Where connections go: *tls* is the client's _TLSContext (https), shared by all its pools.
_Origin = collections.namedtuple("_Origin", "scheme host port proxy unix_socket tls", defaults=(None,))

#: Every pool of this process, so that a forked child can drop what it inherited (_after_fork).
_POOLS: Any = weakref.WeakSet()
#: Transports a forked child inherited and must never touch (_AsyncConnection.forget).
_INHERITED: List[Any] = []


def _after_fork() -> None:
    for pool in list(_POOLS):
        pool.forget_parent()


if hasattr(os, "register_at_fork"):   # POSIX; a fork it does not see is caught by the pools' PID check
    os.register_at_fork(after_in_child=_after_fork)


def _close_all(connections: List[Any]) -> None:
    """Close *connections* (and empty the list: a pool's finalizer may run after its close())."""
    for conn in connections[:]:
        try:
            conn.close()
        except OSError:   # closing a socket never raises out of here (at exit, at collection)
            pass
    del connections[:]

_Proxy = collections.namedtuple("_Proxy", "host port authorization")


def _origin_for(root: _Root, tls: Optional[_TLSContext] = None) -> _Origin:
    parts = urllib.parse.urlsplit(root.origin)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Origin(parts.scheme, parts.hostname, port, _proxy_for(parts.scheme, parts.hostname), None,
                   tls or _TLSContext(_DEFAULT_TLS))


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


def _check_tunnel(head: ResponseHead, rest: bytes) -> None:
    """The proxy's answer to CONNECT: anything but a bare 200 means no tunnel."""
    if head.status != 200 or rest:
        raise OSError("Tunnel connection failed: %d %s" % (head.status, head.reason))


def _connect_request(origin: _Origin) -> bytes:
    """The CONNECT request that opens a tunnel to *origin* through its HTTP proxy."""
    host = _wire_host(origin.host)
    lines = ["CONNECT %s:%d HTTP/1.1" % (host, origin.port), "Host: %s:%d" % (host, origin.port)]
    if origin.proxy.authorization:
        lines.append("Proxy-Authorization: " + origin.proxy.authorization)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _tls_context(settings: _TLSSettings) -> Any:
    """The ssl.SSLContext of https connections, for both transports, from *settings*: the
    system's CA store (and DMR's CA), a CA file or directory, or no check at all; a client
    certificate; host names checked; HTTP/1.1 asked for by ALPN (as http.client asks).  The
    caller's own ssl_context= is used as it is.  ValueError names a file that cannot be used."""
    if settings.ssl_context is not None:
        return settings.ssl_context
    import ssl   # http.client loads it anyway; an AsyncClient pays for it at its first https URL

    verify = settings.verify
    try:
        if verify is False:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif verify is True:
            context = ssl.create_default_context()
            if settings.dmr_ca:
                context.load_verify_locations(settings.dmr_ca)
        else:
            path = os.path.expanduser(verify)
            context = ssl.create_default_context(**{"capath" if os.path.isdir(path) else "cafile": path})
    except (OSError, ValueError) as exc:   # ssl.SSLError is an OSError
        raise ValueError("cannot use the CA %s (from %s): %s" % (
            verify if isinstance(verify, str) else settings.dmr_ca, settings.source, exc)) from None
    if settings.cert:
        certfile, keyfile = settings.cert if isinstance(settings.cert, tuple) else (settings.cert, None)
        try:
            context.load_cert_chain(os.path.expanduser(certfile), keyfile and os.path.expanduser(keyfile))
        except (OSError, ValueError) as exc:
            raise ValueError("cannot use the client certificate %s (cert=): %s" % (certfile, exc)) from None
    elif hasattr(context, "_msg_callback"):   # to tell "client certificate required" from other refusals
        context._msg_callback = _note_certificate_request
    context.set_alpn_protocols(["http/1.1"])
    return context


class _TLSContext:
    """One client's TLS context: built at its first https connection (loading CAs costs
    milliseconds), then shared by all its pools, threads and event loops."""

    __slots__ = ("settings", "_context", "_lock")

    def __init__(self, settings: _TLSSettings):
        self.settings = settings
        self._context: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = _tls_context(self.settings)
        return self._context


class _PoolBase:
    """What the pools of both transports hold: the origin and its timeouts, the idle
    connections, the TLS context, and the process that owns them (see forget_parent)."""

    def __init__(self, origin: _Origin, connect_timeout: Optional[float], timeout: Optional[float]):
        self.origin = origin
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.closed = False
        self.keeps = True   # False: a pool for one call (its own timeout), which keeps no connection
        self._idle: List[Any] = []
        self.pid = os.getpid()
        _POOLS.add(self)

    def tls(self) -> Any:
        """The TLS context of this pool's https connections (the client's, made at the first one)."""
        return self.origin.tls.get()


class _Pool(_PoolBase):
    """Keep-alive connections to one origin, shared safely between threads.

    A pool opens its connections with http.client (TCP, TLS, Unix socket);
    a tunnel through an HTTP proxy it opens itself (_connect_request,
    HeadReader), as the asyncio transport does.

    Each request takes a connection for itself; a connection goes back only
    when its response was read to the end of its framing, with no byte
    beyond it and no ``Connection: close``, so a socket never carries two
    requests at once and no reply is read by the wrong caller.
    """

    def __init__(self, origin: _Origin, connect_timeout: Optional[float], timeout: Optional[float]):
        super().__init__(origin, connect_timeout, timeout)
        self._lock = threading.Lock()
        # A client dropped without close(), or alive at exit: its idle connections close quietly,
        # never as "ResourceWarning: unclosed socket".  A finalizer, not __del__: when the client
        # dies in a reference cycle (an OpenAI(), an object of the caller's), __del__ may run after
        # the sockets' own finalizers, but the weakref callback runs before them, and the list it
        # holds keeps those sockets alive until it has closed them.  _idle is never replaced.
        weakref.finalize(self, _close_all, self._idle)

    def take(self) -> Tuple[http.client.HTTPConnection, bool]:
        """Return (connection, reused)."""
        if self.pid != os.getpid():   # forked by a way _after_fork() did not see
            self.forget_parent()
        while True:
            with self._lock:
                if self.closed:
                    raise DMRError("this Client is closed; create a new one")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self.connect(), False
            if _looks_alive(conn.sock):
                return conn, True
            conn.close()

    def connect(self) -> http.client.HTTPConnection:
        origin = self.origin
        proxy = origin.proxy
        https = origin.scheme == "https" and not origin.unix_socket
        context: Any = self.tls() if https else None
        if origin.unix_socket:
            conn = _unix_connection(origin.unix_socket, self.connect_timeout)
        elif proxy is None:
            conn = http.client.HTTPConnection(origin.host, origin.port, timeout=self.connect_timeout)
        else:   # the proxy; for https a tunnel opened by us (as the asyncio transport does), then TLS
            conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=self.connect_timeout)
        if not origin.unix_socket:
            conn._create_connection = _create_connection   # type: ignore[attr-defined]  # memory: see below
        started, handshake = time.monotonic(), False
        try:
            conn.connect()
            if https:   # TLS by us, after TCP (and the tunnel): a failure says which step it was
                if proxy is not None:
                    self._tunnel(conn)
                handshake = True
                if self.connect_timeout is not None:   # connect_timeout bounds TCP and handshake together
                    conn.sock.settimeout(max(0.001, self.connect_timeout - (time.monotonic() - started)))
                conn.sock = context.wrap_socket(conn.sock, server_hostname=origin.host)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _connect_failure(exc, origin, self.connect_timeout, handshake) from exc
        conn.sock.settimeout(self.timeout)
        conn.dmr_pid = self.pid   # type: ignore[attr-defined]  # see give_back()
        return conn

    def _tunnel(self, conn: http.client.HTTPConnection) -> None:
        sock = conn.sock
        sock.sendall(_connect_request(self.origin))
        reader = HeadReader()
        parsed = None
        while parsed is None:
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                raise ConnectionResetError("the proxy closed the connection during CONNECT")
            parsed = reader.feed(chunk)
        _check_tunnel(*parsed)

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        """Keep *conn* for the next request; a connection of another process (a stream that
        was open when this one forked) is closed instead."""
        with self._lock:
            if self.keeps and not self.closed and conn.sock is not None and len(self._idle) < MAX_IDLE_CONNECTIONS \
                    and conn.dmr_pid == self.pid == os.getpid():   # type: ignore[attr-defined]
                if conn.sock.gettimeout() != self.timeout:   # a call had its own
                    conn.sock.settimeout(self.timeout)
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle = self._idle[:]
            del self._idle[:]
        _close_all(idle)

    def forget_parent(self) -> None:
        """In a forked child: drop the connections inherited from the parent.

        Both processes would write on one socket and each could read the
        other's answer.  Closing the child's copy of a socket sends nothing
        (the parent still holds it) and leaves the parent's connection usable.
        The lock is new too: another thread of the parent may have held it.
        """
        self._lock = threading.Lock()
        idle = self._idle[:]
        del self._idle[:]
        self.pid = os.getpid()
        _close_all(idle)


def _create_connection(address: Tuple[str, int], *args: Any) -> socket.socket:
    """socket.create_connection() with an ASCII host name passed as bytes.

    Memory: getaddrinfo() puts a str host through the "idna" codec, whose
    first use imports stringprep and unicodedata, about 0.4 MB of a small
    script's peak RSS; the bytes of an ASCII name resolve alike.  Any other
    name still goes through IDNA.
    """
    host, port = address
    name: Any = host.encode("ascii") if host.isascii() else host
    return socket.create_connection((name, port), *args)


def _wire_host(host: str) -> str:
    """*host* as it goes in a request: IDNA for non-ASCII names, brackets for IPv6."""
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    return "[%s]" % host if ":" in host else host


def _host_header(origin: _Origin) -> str:
    if origin.unix_socket:
        return "localhost"
    host = _wire_host(origin.host)
    default = 443 if origin.scheme == "https" else 80
    return host if origin.port == default else "%s:%d" % (host, origin.port)


def _fixed_head(origin: _Origin, headers: Mapping[str, str]) -> bytes:
    """The header lines every request to *origin* carries, encoded once.

    http.client's putheader() validates and encodes each header on every
    request; these were validated when the Client was made.  A Host given
    in *headers* replaces ours (one Host on the wire, never two).
    """
    lines = [] if any(name.lower() == "host" for name in headers) else ["Host: " + _host_header(origin)]
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


def _looks_alive(sock: Optional[socket.socket]) -> bool:
    """False if an idle keep-alive connection was closed by the server meanwhile: an idle
    connection is readable only at EOF (or on garbage)."""
    return sock is not None and not _has_input(sock)


def _has_input(sock: socket.socket) -> bool:
    """True when reading *sock* now would not wait: bytes, EOF or an error are there.

    poll() where there is one: select() fails for descriptors above 1023,
    which a busy process reaches.
    """
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Body:
    """The pieces of a whole body as they are read, up to *limit* bytes (see _collected)."""

    __slots__ = ("limit", "truncate", "parts", "size")

    def __init__(self, limit: int, truncate: bool):
        self.limit, self.truncate = limit, truncate
        self.parts: List[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> bool:
        """Keep *data* (b"": the end of the body); False when there is no more to read."""
        if not data:
            return False
        self.parts.append(data)
        self.size += len(data)
        return self.size <= self.limit


class _Upload:
    """A request body sent from a file in pieces, after the head (import_model()): its size is
    taken first (Content-Length), and no more than one piece is in memory at a time.

    pieces() reads the file again from its start for each attempt; *progress* is called as
    progress(bytes sent, size) after each piece went out.
    """

    __slots__ = ("path", "size", "progress", "content_type", "sent")
    PIECE = 1 << 20

    def __init__(self, path: str, size: int, progress: Optional[Callable[[int, Optional[int]], Any]] = None,
                 content_type: str = "application/octet-stream"):
        self.path, self.size, self.progress, self.content_type = path, size, progress, content_type
        self.sent = 0

    def pieces(self) -> Iterator[bytes]:
        self.sent = 0
        with open(self.path, "rb") as file:
            while self.sent < self.size:
                piece = file.read(min(self.PIECE, self.size - self.sent))
                if not piece:
                    raise DMRError("%s got shorter while it was sent (%d of %d bytes): nothing was loaded"
                                   % (self.path, self.sent, self.size))
                yield piece
                self.sent += len(piece)
                if self.progress is not None:
                    self.progress(self.sent, self.size)

    def stalled(self, url: str, timeout: Optional[float]) -> APITimeoutError:
        return APITimeoutError("the upload to %s stalled: the server took nothing for %s s after %d of %d bytes "
                               "(it stopped reading without answering)" % (url, timeout, self.sent, self.size),
                               url=url)


class _ExchangeBase:
    """One request and its response, holding the connection until it is settled.

    What both transports share: the framing state of the response being read
    (the pure decoders do the framing), and settling: finish() puts the
    connection back only after a whole, cleanly framed body, and discard()
    closes it.  An exchange dropped unsettled closes its connection at once
    (no reference cycle holds it: streams keep the exchange, never the other
    way round).  The subclasses only move bytes.
    """

    __slots__ = ("pool", "conn", "url", "timeout", "status", "reason", "headers", "keep_alive", "decoder",
                 "settled", "early", "_raw", "_rest")

    def __init__(self, pool: Any, conn: Any, url: str, timeout: Optional[float] = None):
        self.pool = pool
        self.conn = conn
        self.url = url
        self.timeout = pool.timeout if timeout is None else timeout   # each wait for bytes of the answer
        self.settled = False
        self.keep_alive = False
        self.early = False                           # answered before the request was sent whole
        self._raw = b""                              # body bytes read with the head, not decoded yet
        self._rest: Optional[Iterator[bytes]] = None  # pieces of the last read after the one handed over

    def _start(self, head: ResponseHead, raw: bytes, method: str) -> None:
        self.status, self.reason, self.headers = head.status, head.reason, head.headers
        self.decoder, self.keep_alive = body_framing(head, method)
        if self.early:   # the server stopped reading our request: the connection is spent
            self.keep_alive = False
        self._raw = raw

    def answered_early(self, exc: OSError, has_input: bool, upload: Optional[_Upload] = None) -> None:
        """Sending the request failed with *exc*: re-raise it unless the server has answered
        already (*has_input*), as a server does that refuses a request without reading it
        (a body too large, no key) and closes; then that answer is read as any other."""
        if not has_input:
            if upload is not None and upload.sent and isinstance(exc, socket.timeout):
                raise upload.stalled(self.url, self.timeout) from exc
            raise exc
        self.early = True

    def answered_before_end(self, has_input: bool) -> bool:
        """Between two pieces of a body sent from a file: True (stop sending, read the answer)
        once the server has answered (an error in the middle of an upload)."""
        if has_input:
            self.early = True
        return has_input

    def _buffered(self) -> Optional[bytes]:
        """The next body piece from bytes already received: b"" at the end of the body, None
        when the network must be read."""
        rest = self._rest
        if rest is not None:   # what the last network read held after its first piece
            self._rest = None
            data = b"".join(rest)
            if data:
                return data
        if self.decoder.done:
            return b""
        raw = self._raw
        if raw:
            self._raw = b""
            return self._decoded(raw)
        return None

    def _decoded(self, raw: bytes) -> Optional[bytes]:
        """The first body piece of *raw*, one network read (b"": the connection ended); the
        rest is kept for the next call.  None when *raw* held no payload yet.

        The first piece is handed over before the rest is decoded: a streamed
        event never waits for bytes that come after it.  A body cut short
        raises _Truncated, never a quiet end; framing faults raise ProtocolError.
        """
        decoder = self.decoder
        if not raw:
            if decoder.complete_at_eof():
                self.keep_alive = False
                return b""
            raise _Truncated("the connection closed before the end of the body")
        pieces = decoder.pieces(raw)
        for data in pieces:
            if data:
                self._rest = pieces
                return data
        return b"" if decoder.done else None

    def _declared_too_big(self, limit: int, truncate: bool) -> Optional[int]:
        """The declared body length; a declared length over *limit* is refused before reading."""
        declared = self.decoder.length
        if declared is not None and declared > limit and not truncate:
            self.discard()
            raise self._too_big(declared, limit)
        return declared

    def _buffered_body(self, limit: int) -> Optional[bytes]:
        """The whole body when it came with the head (a small Content-Length answer), read and
        settled without another read; None otherwise."""
        length, raw = self.decoder.length, self._raw
        if length is None or length > limit or len(raw) < length or self._rest is not None:
            return None
        self._raw = b""
        body = self.decoder.feed(raw)   # bytes past the body stay leftover: finish() then closes
        self.finish()
        return body

    def _collected(self, body: _Body) -> bytes:
        """Settle the connection after reading *body* as far as it goes: a whole body is the
        answer; past its limit the connection is closed and the first *limit* bytes returned
        (*truncate*) or InvalidResponseError raised."""
        if body.size <= body.limit:
            self.finish()
            parts = body.parts
            return parts[0] if len(parts) == 1 else b"".join(parts)
        self.discard()
        if body.truncate:
            return b"".join(body.parts)[:body.limit]
        raise self._too_big(body.size, body.limit)

    def _too_big(self, size: int, limit: int) -> InvalidResponseError:
        return InvalidResponseError("the response from %s is over %d bytes (%d seen or declared): raise "
                                    "max_response_bytes= if such answers are expected" % (self.url, limit, size),
                                    status_code=self.status)

    def _drain_begin(self) -> Tuple[float, int]:
        """Start draining what follows a stream's end marker: (deadline, byte budget)."""
        if self._rest is not None:
            for _ in self._rest:
                pass
            self._rest = None
        return time.monotonic() + DRAIN_SECONDS, DRAIN_BYTES

    def _drained(self, raw: bytes, budget: int) -> int:
        """Frame and drop *raw* (b"": the connection ended); the budget left (0: stop)."""
        if not raw:
            self.decoder.complete_at_eof()
            self.keep_alive = False
            return 0
        for _ in self.decoder.pieces(raw):
            pass
        return max(budget - len(raw), 0)

    def finish(self) -> None:
        """The body was read to its end: reuse the connection if nothing speaks against it."""
        if self.settled:
            return
        self.settled = True
        if self.keep_alive and self.decoder.done and not self.decoder.leftover and not self._raw:
            self.pool.give_back(self.conn)
        else:
            self.conn.close()

    def discard(self) -> None:
        """Close the connection: its response is unfinished, unwanted or broken."""
        if self.settled:
            return
        self.settled = True
        self.conn.close()

    def __del__(self) -> None:
        # An exchange dropped unsettled (an abandoned stream) closes its connection now, not at GC.
        try:
            self.discard()
        except Exception:   # never "Exception ignored in __del__" on stderr
            pass


class _Exchange(_ExchangeBase):
    """An exchange over a blocking socket: http.client opened the connection (TLS, proxy
    tunnel, Unix socket); the answer is read here, one recv() at a time, each bounded by
    the pool's timeout."""

    __slots__ = ("sock",)

    def __init__(self, pool: _Pool, conn: http.client.HTTPConnection, url: str, timeout: Optional[float] = None):
        super().__init__(pool, conn, url, timeout)
        self.sock = conn.sock
        if self.timeout != pool.timeout:   # this call's own: the pool sets its own back (give_back)
            self.sock.settimeout(self.timeout)

    def begin(self, method: str) -> None:
        """Read up to the final response head (HeadReader skips interim 1xx responses).

        Raises _NoAnswer when the connection ends before the first byte,
        ProtocolError for a malformed head, socket errors as they come.
        """
        recv = self.sock.recv
        reader = HeadReader()
        while True:
            try:
                chunk = recv(READ_CHUNK)
            except (ConnectionResetError, ConnectionAbortedError):
                raise reader.ended(reset=True) from None
            if not chunk:
                raise reader.ended()
            parsed = reader.feed(chunk)
            if parsed is not None:
                self._start(parsed[0], parsed[1], method)
                return

    def read_some(self) -> bytes:
        """The next piece of the body as soon as it arrives (one network read at most); b"" at its end."""
        data = self._buffered()
        while data is None:
            data = self._decoded(self.sock.recv(READ_CHUNK))
        return data

    def read_body(self, limit: int, truncate: bool = False) -> bytes:
        """Read the whole body and settle the connection.

        Over *limit* bytes: InvalidResponseError (or, with *truncate*, the
        first *limit* bytes), and the connection is closed.  A stall or a cut
        raises APITimeoutError or APIConnectionError.
        """
        declared = self._declared_too_big(limit, truncate)
        if declared is not None and declared > _BIG_BODY and not truncate:
            return self._read_length(declared)
        whole = self._buffered_body(limit)
        if whole is not None:   # speed: the usual small answer, whole in the first read
            return whole
        body = _Body(limit, truncate)
        with _Reading(self):
            while body.add(self.read_some()):
                pass
        return self._collected(body)

    def _read_length(self, length: int) -> bytes:
        """A large Content-Length body read straight into one buffer: in memory once, not
        as pieces plus their join."""
        start = self.decoder.feed(self._raw)   # what came with the head (bytes past the body stay leftover)
        self._raw = b""
        body = bytearray(length)
        body[:len(start)] = start
        got = len(start)
        with _Reading(self), memoryview(body) as view:
            while got < length:
                received = self.sock.recv_into(view[got:], min(length - got, 1 << 20))
                if not received:
                    raise _Truncated("the connection closed before the end of the body")
                got += received
        self.decoder.skip(length - len(start))
        self.finish()
        return body   # type: ignore[return-value]  # a bytearray: bytes-like, decoded by the caller

    def drain(self) -> None:
        """Read what follows a stream's end marker so the connection can be reused:
        at most DRAIN_BYTES within DRAIN_SECONDS in all, else the connection is closed."""
        sock, decoder = self.sock, self.decoder
        deadline, budget = self._drain_begin()
        try:
            while not decoder.done and budget > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                raw, self._raw = self._raw, b""
                if not raw:
                    sock.settimeout(remaining)
                    raw = sock.recv(READ_CHUNK)
                budget = self._drained(raw, budget)
        except (OSError, ProtocolError):
            self.discard()
            return
        finally:
            if not self.settled:
                sock.settimeout(self.timeout)
        self.finish()


# ---------------------------------------------------------------------------
# Transport (asyncio)
# ---------------------------------------------------------------------------

asyncio: Any = None   # imported by the first AsyncClient(): see _asyncio()


def _asyncio() -> Any:
    """asyncio, imported the first time an AsyncClient is made (import dmr_client stays cheap)."""
    global asyncio
    if asyncio is None:
        import asyncio
    return asyncio


#: Bytes an asyncio connection buffers before it stops reading from the socket.
_ASYNC_BUFFER = 256 * 1024


class _AsyncConnection:
    """One connection on an event loop: an asyncio protocol with a bounded read buffer.

    It is duck-typed to asyncio.Protocol rather than a subclass, so that
    defining it does not import asyncio.  recv() hands over everything
    received so far without waiting when there is any (the speed of a stream
    of small events), else waits at most *timeout* for more.
    """

    __slots__ = ("loop", "transport", "tls", "_buffer", "_size", "_eof", "_error", "_reader", "_writer",
                 "_reading_paused", "_writing_paused", "__weakref__")

    def __init__(self, loop: Any):
        self.loop = loop
        self.transport: Any = None
        self.tls: Any = None   # the ssl.SSLObject of an https connection
        self._buffer: List[bytes] = []
        self._size = 0
        self._eof = False
        self._error: Optional[BaseException] = None
        self._reader: Any = None   # the future a recv() waits on
        self._writer: Any = None   # the future a send() waits on while the transport is full
        self._reading_paused = False
        self._writing_paused = False

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer.append(data)
        self._size += len(data)
        if self._size > _ASYNC_BUFFER and not self._reading_paused:
            self._reading_paused = True   # bounded memory: the server waits until we read
            self.transport.pause_reading()
        self._wake(self._reader, None)

    def eof_received(self) -> bool:
        self._eof = True
        self._wake(self._reader, None)
        return False   # the transport closes itself

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        # The transport is gone (and has closed its socket): never abort() it again, which
        # some asyncio versions answer with AttributeError once it closed itself after an EOF.
        transport, self.transport = self.transport, None
        if transport is not None and sys.version_info < (3, 11) and hasattr(transport, "_ssl_protocol"):
            # Before 3.11 a TLS transport is not told that its connection was lost, and says
            # "unclosed transport" when collected: it is closed, its socket is.
            transport._closed = True
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake(self._reader, None)
        self._wake(self._writer, exc or ConnectionResetError("the connection closed"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake(self._writer, None)

    @staticmethod
    def _wake(future: Any, error: Optional[BaseException]) -> None:
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    # -- what an exchange uses ------------------------------------------------------

    async def recv(self, timeout: Optional[float]) -> bytes:
        """Everything received so far; waits (up to *timeout*, then socket.timeout) only
        when nothing is.  b"" once the server ended the connection."""
        if not self._buffer:
            if self._eof:
                if self._error is not None:
                    raise self._error
                return b""
            self._reader, timer = self._waiter(timeout)
            try:
                await self._reader
            finally:
                self._reader = None
                if timer is not None:
                    timer.cancel()
            if not self._buffer:   # woken by the end of the connection
                if self._error is not None:
                    raise self._error
                return b""
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        self._buffer, self._size = [], 0
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> bool:
        """Write *data*; True when the transport's buffer is full (then await drained())."""
        if self._error is not None or self.transport is None or self.transport.is_closing():
            raise self._error or BrokenPipeError("the connection is closed")
        self.transport.write(data)
        return self._writing_paused

    async def send(self, data: bytes, timeout: Optional[float]) -> None:
        """Write *data*; wait (up to *timeout*) while the transport's buffer is full."""
        if self.write(data):
            await self.drained(timeout)

    async def drained(self, timeout: Optional[float]) -> None:
        """Wait (up to *timeout*) until the transport's buffer has room again."""
        if self._writing_paused:
            self._writer, timer = self._waiter(timeout)
            try:
                await self._writer
            finally:
                self._writer = None
                if timer is not None:
                    timer.cancel()

    def _waiter(self, timeout: Optional[float]) -> Tuple[Any, Any]:
        """(a future to wait on, the timer that fails it with socket.timeout after *timeout*).

        Speed: one future and one timer per wait, and only when there is
        nothing to read; asyncio.wait_for would cost a task per read.
        """
        future = self.loop.create_future()
        if timeout is None:
            return future, None
        return future, self.loop.call_later(timeout, self._time_out, future)

    def _time_out(self, future: Any) -> None:
        self._wake(future, socket.timeout("timed out"))

    def has_input(self) -> bool:
        """True when bytes arrived that nobody read yet."""
        return bool(self._buffer)

    def alive(self) -> bool:
        """An idle connection is fit for reuse: nothing arrived on it, the server kept it open."""
        return not self._eof and not self._buffer and self.transport is not None \
            and not self.transport.is_closing()

    def forget(self) -> None:
        """In a forked child: close this process's copy of the socket, and nothing else.

        The transport and the event loop are the parent's: aborting the
        transport here would take its socket out of an epoll set the two
        processes share.  So the descriptor is pointed at /dev/null (the
        socket stays open in the parent only, and nothing is sent), and the
        transport is kept, never collected, for its __del__ would warn and
        close the descriptor number again.
        """
        transport, self.transport = self.transport, None
        self._eof = True
        sock = transport.get_extra_info("socket") if transport is not None else None
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
        _INHERITED.append(transport)

    def close(self) -> None:
        """Close at once (abort): an unfinished answer is never read to its end.

        From another thread (a stream dropped there) the abort is handed to
        the loop's thread, where a transport must be closed.
        """
        transport, self.transport = self.transport, None
        self._eof = True
        if transport is None:
            return
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here:
            transport.abort()
            return
        try:
            self.loop.call_soon_threadsafe(transport.abort)
        except RuntimeError:   # the loop is closed: the transport closes its socket when collected
            pass


class _AsyncPool(_PoolBase):
    """Keep-alive connections to one origin on one event loop (see _Pool for the rules).

    A pool lives as long as its loop: a sentinel async generator started on
    the loop is closed by the loop's shutdown_asyncgens() (asyncio.run does
    it), and closing it closes every connection the pool opened -- idle ones,
    and those of streams still held -- while the loop can still run their
    callbacks.  None outlives the loop: a closed loop can no longer close a
    transport, so a stream dropped after it would leave its socket open.
    """

    def __init__(self, origin: _Origin, connect_timeout: Optional[float], timeout: Optional[float], loop: Any,
                 guarded: bool = True):
        super().__init__(origin, connect_timeout, timeout)
        self.loop = loop
        self._opened: Any = weakref.WeakSet()   # every connection opened, for the loop's end
        self._guard: Any = None if guarded else ()   # () : a short-lived probe needs no guard

    def idle(self) -> Optional[_AsyncConnection]:
        """A kept-alive connection fit for reuse, or None (then connect())."""
        if self.closed:
            raise DMRError("this AsyncClient is closed; create a new one")
        if self.pid != os.getpid():   # forked by a way _after_fork() did not see
            self.forget_parent()
        while self._idle:
            conn = self._idle.pop()
            if conn.alive():
                return conn
            conn.close()
        return None

    async def connect(self) -> _AsyncConnection:
        if self._guard is None:   # the first connection is made on the pool's loop: start the guard there
            self._guard = _close_with_loop(self)
            await self._guard.asend(None)
        conn = _AsyncConnection(self.loop)
        context = self.tls() if self.origin.scheme == "https" and not self.origin.unix_socket else None
        steps: List[str] = []   # "handshake" once TCP (and any tunnel) is open
        try:
            if self.connect_timeout is None:
                await self._open(conn, context, steps)
            else:
                await asyncio.wait_for(self._open(conn, context, steps), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            conn.close()
            if isinstance(exc, asyncio.TimeoutError):
                exc = socket.timeout("timed out")
            raise _connect_failure(exc, self.origin, self.connect_timeout, bool(steps)) from None
        except BaseException:
            conn.close()
            raise
        self._opened.add(conn)
        return conn

    async def _open(self, conn: _AsyncConnection, context: Any, steps: List[str]) -> None:
        origin, loop = self.origin, self.loop
        if origin.unix_socket:
            await loop.create_unix_connection(lambda: conn, origin.unix_socket)
            return
        proxy = origin.proxy
        await loop.create_connection(lambda: conn, *((origin.host, origin.port) if proxy is None
                                                    else (proxy.host, proxy.port)))
        if context is None:
            return
        if proxy is not None:   # a tunnel through the HTTP proxy, then TLS inside it (http.client's set_tunnel)
            await conn.send(_connect_request(origin), self.timeout)
            reader = HeadReader()
            parsed = None
            while parsed is None:
                chunk = await conn.recv(self.timeout)
                if not chunk:
                    raise ConnectionResetError("the proxy closed the connection during CONNECT")
                parsed = reader.feed(chunk)
            _check_tunnel(*parsed)
        steps.append("handshake")   # TLS after TCP (and the tunnel): a failure says which step it was
        conn.transport = await loop.start_tls(conn.transport, conn, context, server_hostname=origin.host)
        conn.tls = conn.transport.get_extra_info("ssl_object")

    def give_back(self, conn: _AsyncConnection) -> None:
        if self.keeps and not self.closed and len(self._idle) < MAX_IDLE_CONNECTIONS and conn.alive() \
                and self.pid == os.getpid():
            self._idle.append(conn)
            return
        conn.close()

    def close(self, everything: bool = False) -> None:
        """Close the idle connections; *everything*: those of live streams too (the loop ends)."""
        self.closed = True
        idle, self._idle = self._idle, []
        if everything:
            idle += list(self._opened)
        for conn in idle:
            conn.close()

    def forget_parent(self) -> None:
        """In a forked child: drop every connection inherited from the parent (see
        _Pool.forget_parent), without touching the parent's event loop."""
        self._idle = []
        self.pid = os.getpid()
        for conn in list(self._opened):
            conn.forget()
        self._opened = weakref.WeakSet()


async def _close_with_loop(pool: _AsyncPool) -> Any:
    """Closes *pool*, streams included, when its loop shuts its async generators down (see
    _AsyncPool)."""
    try:
        yield
    finally:
        pool.close(everything=True)
        await asyncio.sleep(0)   # the transports' connection_lost callbacks run before the loop closes


class _AsyncExchange(_ExchangeBase):
    """An exchange over an asyncio connection; the rules are _ExchangeBase's, the waits are
    awaits.  A cancelled await closes the connection (never pooled half-read)."""

    __slots__ = ()

    async def begin(self, method: str) -> None:
        """Read up to the final response head (as _Exchange.begin)."""
        recv, timeout = self.conn.recv, self.timeout
        reader = HeadReader()
        while True:
            try:
                chunk = await recv(timeout)
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                raise reader.ended(reset=True) from None
            if not chunk:
                raise reader.ended()
            parsed = reader.feed(chunk)
            if parsed is not None:
                self._start(parsed[0], parsed[1], method)
                return

    async def read_some(self) -> bytes:
        """The next piece of the body (as _Exchange.read_some)."""
        data = self._buffered()
        while data is None:
            data = self._decoded(await self.conn.recv(self.timeout))
        return data

    async def read_body(self, limit: int, truncate: bool = False) -> bytes:
        """Read the whole body and settle the connection (as _Exchange.read_body)."""
        self._declared_too_big(limit, truncate)
        whole = self._buffered_body(limit)
        if whole is not None:   # speed: the usual small answer, whole in the first read
            return whole
        body = _Body(limit, truncate)
        with _Reading(self):
            while body.add(await self.read_some()):
                pass
        return self._collected(body)

    async def drain(self) -> None:
        """Read what follows a stream's end marker (as _Exchange.drain)."""
        deadline, budget = self._drain_begin()
        try:
            while not self.decoder.done and budget > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                raw, self._raw = self._raw, b""
                if not raw:
                    raw = await self.conn.recv(remaining)
                budget = self._drained(raw, budget)
        except (OSError, ProtocolError):
            self.discard()
            return
        except BaseException:
            self.discard()
            raise
        self.finish()


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


def _items(exchange: _Exchange, source: Any) -> Generator[Any, None, None]:
    """A live response's items, for every kind of stream: the exchange's bytes through
    *source* (the _ItemSource contract), inside the read boundary."""
    with _Reading(exchange, source):
        if source.json_refused and _is_json(exchange):
            raise _not_a_stream(exchange, exchange.read_body(MAX_ERROR_BODY, truncate=True))
        items, read = source.items, exchange.read_some
        data = read()
        source.first_at = time.monotonic()   # once, off the per-item path
        while data:
            yield from items(data)
            if source.done:
                source.ended_at = time.monotonic()
                exchange.drain()
                return
            data = read()
        yield from items(b"")
        source.end()
        source.ended_at = time.monotonic()
        exchange.finish()


class _Streamed:
    """An iterator over a live response: what Stream, PullStream and FollowStream share.

    Stopping early (close(), leaving the ``with`` block, or dropping it)
    closes the connection instead of reading the rest of the body.  The
    items come from a generator (_items) that holds the exchange and the
    source, never this object, so a stream dropped without close() closes its
    socket as soon as its last reference goes.
    """

    def __init__(self, exchange: _Exchange, source: Any):
        self._exchange = exchange
        self._source = source
        self._items = _items(exchange, source)
        self.url = exchange.url
        self.status_code = exchange.status
        self.headers = exchange.headers

    def __iter__(self) -> Iterator[Any]:
        return self._items   # the generator itself: no Python-level __next__ per item

    def __next__(self) -> Any:
        return next(self._items)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading; an unfinished response's connection is closed, not reused."""
        self._items.close()
        self._exchange.discard()

    @property
    def response(self) -> Any:
        """The HTTP answer (openai-python's ``stream.response``): status_code, headers, url."""
        return _ErrorResponse(self.status_code, self.headers, self.url, "")

    def _exhaust(self) -> None:
        for _ in self._items:
            pass


class _AsyncStreamed:
    """An async iterator over a live response: what the Async streams share.

    ``async for`` it; ``async with`` it or ``await aclose()`` to stop early
    (the connection is closed).  Cancelling the task that iterates closes the
    connection too.  Each network read is turned into items by the same
    sources as the blocking streams; the items of one read are handed out
    without another trip through the event loop.
    """

    def __init__(self, exchange: _AsyncExchange, source: Any):
        self._exchange = exchange
        self._source = source
        self._boundary = _Reading(exchange, source)   # speed: one per stream, not one per item
        self._batch: Iterator[Any] = iter(())
        self._ended = False
        self._first = True
        self._at_end = False
        self.url = exchange.url
        self.status_code = exchange.status
        self.headers = exchange.headers

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        if self._source.error is not None:   # it broke: as a generator that raised, it has ended
            raise StopAsyncIteration
        with self._boundary:
            item = next(self._batch, None)
            while item is None:
                if self._ended:
                    raise StopAsyncIteration
                self._batch = await self._read()
                item = next(self._batch, None)
            return item

    async def _read(self) -> Iterator[Any]:
        """The items of the next network read (as _items, one step at a time)."""
        exchange, source = self._exchange, self._source
        if self._first:
            self._first = False
            if source.json_refused and _is_json(exchange):
                raise _not_a_stream(exchange, await exchange.read_body(MAX_ERROR_BODY, truncate=True))
        if source.done:
            self._ended = True
            source.ended_at = time.monotonic()
            await exchange.drain()
            return iter(())
        if self._at_end:
            self._ended = True
            source.end()
            source.ended_at = time.monotonic()
            exchange.finish()
            return iter(())
        data = await exchange.read_some()
        if source.first_at is None:
            source.first_at = time.monotonic()
        self._at_end = not data
        return iter(source.items(data))

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading; an unfinished response's connection is closed, not reused."""
        self._ended = True
        self._exchange.discard()

    close = aclose   # openai-python's name: ``await stream.close()``

    @property
    def response(self) -> Any:
        """The HTTP answer (openai-python's ``stream.response``): status_code, headers, url."""
        return _ErrorResponse(self.status_code, self.headers, self.url, "")

    async def _exhaust(self) -> None:
        async for _ in self:
            pass


class _StreamState:
    """What a chat or completion stream reports, for both clients: the tracker's view."""

    _Fold = ChatFold
    _finish: Optional[Callable[[Any], Any]] = None   # chat(schema=, tools=): the _Parse of the call
    _source: StreamTracker
    _exchange: Any
    url: str

    @property
    def completed(self) -> bool:
        return self._source.done

    @property
    def chunks_received(self) -> int:
        return self._source.chunks_received

    def __repr__(self) -> str:
        state = "completed" if self.completed else "open" if not self._exchange.settled else "closed"
        return "<%s %s %s, %d chunks>" % (type(self).__name__, self.url, state, self.chunks_received)

    @property
    def stats(self) -> Optional[AttrDict]:
        """Speed figures of the complete stream (see speed_stats()); None until it completed."""
        return self._timed(self._source.result()).stats if self.completed else None

    def _finished(self, result: AttrDict) -> AttrDict:
        return self._finish(result) if self._finish is not None else result

    def _timed(self, result: AttrDict) -> Completion:
        tracker = self._source
        started, first, ended = tracker.started, tracker.first_at, tracker.ended_at
        elapsed = ended - started if started is not None and ended is not None else None
        first_token = first - started if started is not None and first is not None else None
        return self._Fold.result_type.timed(result, elapsed, first_token, tracker.fold.pieces)

    def _tracker_for(self, exchange: Any, started: Optional[float]) -> StreamTracker:
        tracker = StreamTracker(self._Fold(), exchange.url)
        tracker.started = started
        return tracker


class Stream(_StreamState, _Streamed):
    """The chunks of a streamed completion, each an AttrDict, as they arrive.

    Iterate it; use it as a context manager or call close() to stop early
    (the connection is then closed).  After a complete stream the connection
    goes back to the client's pool.  The stream is complete at ``[DONE]``, or
    at the cleanly framed end of the body once every choice has its
    ``finish_reason``; any other end raises APIConnectionError, and an error
    event raises StreamError, so a cut answer is never mistaken for a whole
    one.  A ``choices: []`` chunk carries ``usage`` when ``stream_options``
    asks.

    final() reads what is left and returns the folded response; text() just
    its text.  The fold is kept as the chunks pass (not the chunks), so a
    long stream costs its text, not its chunk count.  ``status_code`` and
    ``headers`` describe the HTTP response; ``completed`` turns true at the
    end of a complete stream.  One stream is for one thread.
    """

    def __init__(self, exchange: _Exchange, model: Optional[str] = None, started: Optional[float] = None):
        super().__init__(exchange, self._tracker_for(exchange, started))

    def final(self) -> AttrDict:
        """Read the rest of the stream and return the whole response it adds up to.

        Raises what the stream raised if it broke (a cut is never folded into a
        result), and DMRError if it was closed before it completed.
        """
        self._exhaust()
        return self._timed(self._finished(self._source.outcome()))

    def text(self) -> str:
        """The text of the first choice of final()."""
        return self._Fold.text(self.final())


class ChatStream(Stream):
    """A streamed chat completion (see Stream); final() is a ``chat.completion``."""


class CompletionStream(Stream):
    """A streamed ``/completions`` answer (see Stream); final() is a ``text_completion``."""

    _Fold = CompletionFold


class AsyncStream(_StreamState, _AsyncStreamed):
    """The chunks of a streamed completion for AsyncClient: Stream's rules, awaited.

    ``async for chunk in stream``; ``await stream.final()`` and
    ``await stream.text()`` read the rest; ``completed``, ``chunks_received``,
    ``status_code`` and ``headers`` as on Stream.
    """

    def __init__(self, exchange: _AsyncExchange, model: Optional[str] = None, started: Optional[float] = None):
        super().__init__(exchange, self._tracker_for(exchange, started))

    async def final(self) -> AttrDict:
        """Read the rest of the stream; the whole response it adds up to (as Stream.final)."""
        await self._exhaust()
        return self._timed(self._finished(self._source.outcome()))

    async def text(self) -> str:
        """The text of the first choice of final()."""
        return self._Fold.text(await self.final())


class AsyncChatStream(AsyncStream):
    """A streamed chat completion for AsyncClient; final() is a ``chat.completion``."""


class AsyncCompletionStream(AsyncStream):
    """A streamed ``/completions`` answer for AsyncClient; final() is a ``text_completion``."""

    _Fold = CompletionFold


class ResponseStream(_Streamed):
    """A streamed Responses API answer: typed events as they arrive (``event.type``,
    ``event.delta`` ...); final() reads the rest and returns the Response (``output_text``);
    text() its text.  Complete at ``response.completed``; any other end raises."""

    def __init__(self, exchange: _Exchange, model: Optional[str] = None, started: Optional[float] = None):
        super().__init__(exchange, ResponseTracker(exchange.url))

    def final(self) -> AttrDict:
        self._exhaust()
        return self._source.outcome()

    def text(self) -> str:
        return _output_text(self.final())


class AsyncResponseStream(_AsyncStreamed):
    """ResponseStream for AsyncClient: ``async for event in stream``, ``await stream.final()``."""

    def __init__(self, exchange: _AsyncExchange, model: Optional[str] = None, started: Optional[float] = None):
        super().__init__(exchange, ResponseTracker(exchange.url))

    async def final(self) -> AttrDict:
        await self._exhaust()
        return self._source.outcome()

    async def text(self) -> str:
        return _output_text(await self.final())


class _PullState:
    """What a pull stream reports, for both clients."""

    model: str
    _source: PullTracker

    @property
    def result(self) -> Optional[AttrDict]:
        return self._source.result

    @property
    def events_received(self) -> int:
        return self._source.events_received

    def _outcome(self) -> AttrDict:
        if self.result is None:
            raise DMRError("the %s of %s was closed before it finished" % (self._source.action, self.model))
        return self.result


class PullStream(_PullState, _Streamed):
    """The progress of a model pull: one AttrDict per line DMR sends.

    Each event has ``type`` (progress, warning, success), ``message``, ``total``
    and ``layer`` (``id``, ``size``, ``current``).  Iteration ends after the
    ``success`` event, kept as ``result``.  An error line raises PullError with
    DMR's message; a stream that ends without success raises
    APIConnectionError.  close() (or leaving the ``with`` block) drops the
    connection, which makes DMR cancel the pull.
    """

    def __init__(self, exchange: _Exchange, model: str, started: Optional[float] = None, action: str = "pull"):
        self.model = model
        super().__init__(exchange, PullTracker(model, exchange.url, action))

    def wait(self) -> AttrDict:
        """Follow the pull to its end and return the success event."""
        self._exhaust()
        return self._outcome()


class AsyncPullStream(_PullState, _AsyncStreamed):
    """The progress of a model pull for AsyncClient (see PullStream); ``await wait()``."""

    def __init__(self, exchange: _AsyncExchange, model: str, started: Optional[float] = None, action: str = "pull"):
        self.model = model
        super().__init__(exchange, PullTracker(model, exchange.url, action))

    async def wait(self) -> AttrDict:
        """Follow the pull to its end and return the success event."""
        await self._exhaust()
        return self._outcome()


class _Download:
    """Where an exported model goes: a temporary file beside *path*, renamed to *path* only
    once the whole tar came, and removed whatever else happens (a cut, an error, Ctrl-C), so
    that no half file ever has the final name.  *progress* is called as progress(bytes, None)
    after each piece (DMR sends no length)."""

    __slots__ = ("path", "progress", "temp", "file", "written")

    def __init__(self, path: str, progress: Optional[Callable[[int, Optional[int]], Any]] = None):
        self.path, self.progress = path, progress
        self.temp: Optional[str] = None
        self.file: Any = None
        self.written = 0

    def check(self) -> None:
        """Refuse, before anything is asked, a path that cannot be written."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(self.path):
            raise ValueError("%s is a directory: name the tar file to write" % self.path)
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
            raise ValueError("cannot write %s: %s is not a directory this process may write to"
                             % (self.path, directory))

    def open(self) -> None:
        import tempfile

        fd, self.temp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".", suffix=".part",
                                         dir=os.path.dirname(os.path.abspath(self.path)))
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)
        if self.progress is not None:
            self.progress(self.written, None)

    def commit(self) -> AttrDict:
        self.file.close()
        os.replace(self.temp, self.path)   # type: ignore[arg-type]
        self.temp = None
        return AttrDict(path=self.path, bytes=self.written)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except OSError:
                pass
            self.temp = None


class _ExportStream(_Streamed):
    """An exported model's bytes, written to its _Download (``into``) by wait()."""

    into: _Download

    def __init__(self, exchange: _Exchange, model: str, started: Optional[float] = None):
        super().__init__(exchange, _TarBytes(model))

    def wait(self) -> AttrDict:
        """Write the whole tar to its file and return ``path`` and ``bytes``."""
        into = self.into
        try:
            into.open()
            for piece in self._items:
                into.write(piece)
            return into.commit()
        except BaseException:
            into.abort()
            self.close()
            raise


class _AsyncExportStream(_AsyncStreamed):
    """_ExportStream for AsyncClient."""

    into: _Download

    def __init__(self, exchange: _AsyncExchange, model: str, started: Optional[float] = None):
        super().__init__(exchange, _TarBytes(model))

    async def wait(self) -> AttrDict:
        """Write the whole tar to its file and return ``path`` and ``bytes``."""
        into = self.into
        try:
            into.open()
            async for piece in self:
                into.write(piece)
            return into.commit()
        except BaseException:
            into.abort()
            await self.aclose()
            raise


class FollowStream(_Streamed):
    """What a followed DMR resource sends, item by item as it comes: log lines (str) from
    ``logs(follow=True)``, events from ``requests(follow=True)``.  It runs until the server
    ends it or you close() it (or leave the ``with`` block); a cut raises APIConnectionError."""

    @property
    def received(self) -> int:
        return self._source.received


class AsyncFollowStream(_AsyncStreamed):
    """FollowStream for AsyncClient: ``async for line in await client.logs(follow=True)``."""

    @property
    def received(self) -> int:
        return self._source.received


# ---------------------------------------------------------------------------
# Clients: argument checks and request bodies
# ---------------------------------------------------------------------------


def _resolve_api_key(api_key: Optional[str]) -> str:
    if api_key is None:
        api_key = os.environ.get(ENV_API_KEY) or DEFAULT_API_KEY
    if not isinstance(api_key, str):
        raise TypeError("api_key must be a str, not %s" % type(api_key).__name__)
    bad = len(re.findall(_NOT_IN_A_KEY, api_key))
    if bad:
        # Never echo the key: it may be a real secret.
        raise ValueError("api_key must be printable ASCII without spaces (it has %d other character%s); "
                         "check for a stray newline" % (bad, "" if bad == 1 else "s"))
    return api_key


def _check_timeout(value: Optional[float], name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("%s must be a number of seconds > 0 (or None to wait forever), not %s"
                         % (name, _shown(value)))
    return float(value)


#: Headers that frame the request: the library writes them, a user header may not.
_FRAMING_HEADERS = ("content-length", "transfer-encoding", "connection")


def _check_headers(headers: Optional[Headers]) -> Dict[str, str]:
    if headers is None:
        return {}
    checked = {}
    for name, value in dict(headers).items():
        if not isinstance(name, str) or not re.fullmatch(_TOKEN, name):
            raise ValueError("header name %r is not a valid HTTP token" % (name,))
        if name.lower() in _FRAMING_HEADERS:
            raise ValueError("header %r frames the request and is set by dmr_client; leave it out"
                             % name)
        if not isinstance(value, str) or re.search(_NOT_IN_A_HEADER_VALUE, value):
            raise ValueError("header %r must have a str value without control characters (CR, LF, NUL ...)"
                             % name)
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("header %r must be Latin-1 text (HTTP headers cannot carry other "
                             "characters)" % name) from None
        checked[name] = value
    return checked


def _merge_headers(defaults: Mapping[str, str], user: Mapping[str, str]) -> Dict[str, str]:
    """*defaults* with *user*'s headers replacing those of the same name, whatever its case."""
    mine = {name.lower() for name in user}
    merged = {name: value for name, value in defaults.items() if name.lower() not in mine}
    merged.update(user)
    return merged


def _unexpected_keywords(callee: str, unknown: Mapping[str, Any], known: Iterable[str]) -> TypeError:
    """The error for keywords *callee* (a public name: ``Client()``) does not take: each named,
    with the close match when there is one (``base_ur``: did you mean ``base_url``?)."""
    import difflib

    known = [name for name in known if not name.startswith("_")]
    said = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        said.append("%r%s" % (name, " (did you mean %r?)" % close[0] if close else ""))
    return TypeError("%s got %s %s; it takes %s" % (
        callee, "an unexpected keyword argument" if len(said) == 1 else "unexpected keyword arguments",
        ", ".join(said), ", ".join(known)))


def _keywords_of(function: Callable[..., Any]) -> Tuple[str, ...]:
    """The parameter names of *function* (no inspect: it is costly to import)."""
    code = function.__code__
    return code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]


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


#: ollama-python's keywords of a chat, which an OpenAI server would take as unknown body fields
#: and ignore: each is mapped to what DMR understands, or refused naming our way.
_OLLAMA_KEYWORDS = frozenset(("format", "options", "keep_alive", "images"))
#: ollama's options with the same meaning in an OpenAI or llama.cpp request body (num_predict
#: is max_tokens); llama.cpp reads its sampling settings from the body by these names.
_OLLAMA_OPTIONS = {"num_predict": "max_tokens", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
                   "stop": "stop", "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
                   "top_k": "top_k", "min_p": "min_p", "typical_p": "typical_p", "repeat_penalty": "repeat_penalty",
                   "repeat_last_n": "repeat_last_n", "mirostat": "mirostat", "mirostat_tau": "mirostat_tau",
                   "mirostat_eta": "mirostat_eta", "num_keep": "n_keep"}
#: ollama's options that configure the model itself, which DMR sets per model.
_OLLAMA_MODEL_OPTIONS = ("num_ctx", "num_gpu", "num_thread", "num_batch", "main_gpu", "use_mmap", "use_mlock",
                         "numa", "low_vram", "f16_kv", "vocab_only")


#: The body fields of a chat that OpenAI's API, llama.cpp's server or vLLM read, and chat()'s own
#: keywords: a keyword a letter or two away from one of these (temprature=, max_token=, shcema=) is
#: a slip, refused with the name meant rather than sent for the server to ignore.
_CHAT_NAMES = frozenset((
    "audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens max_tokens metadata "
    "modalities n parallel_tool_calls prediction presence_penalty prompt_cache_key reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream_options temperature tool_choice tools top_logprobs top_p "
    "user verbosity web_search_options "
    "top_k min_p typical_p repeat_penalty repeat_last_n mirostat mirostat_tau mirostat_eta n_keep n_probs n_predict "
    "samplers grammar json_schema cache_prompt id_slot chat_template_kwargs reasoning_format dry_multiplier dry_base "
    "dry_allowed_length dry_penalty_last_n xtc_probability xtc_threshold ignore_eos t_max_predict_ms n_indent "
    "return_tokens timings_per_token post_sampling_probs lora parse_tool_calls add_generation_prompt "
    "continue_final_message top_n_sigma dynatemp_range dynatemp_exponent penalty_last_n n_cmpl "
    "best_of use_beam_search length_penalty min_tokens skip_special_tokens guided_json guided_regex guided_choice "
    "guided_grammar repetition_penalty echo "
    "stream think schema strict format options keep_alive images "
    "timeout extra_headers extra_query extra_body max_retries api_key base_url headers default_headers default_query "
    "connect_timeout http_client organization project").split())
_SLIPS: Dict[str, Optional[str]] = {}   # a name seen -> the name it is a slip for, or None


def _check_slips(params: Mapping[str, Any], callee: str) -> None:
    """TypeError for a keyword of *params* that is a slip of a known name (see _CHAT_NAMES)."""
    for name in params:
        if name in _CHAT_NAMES:
            continue
        meant = _SLIPS.get(name, "")
        if meant == "":
            import difflib

            close = difflib.get_close_matches(name, _CHAT_NAMES, n=1, cutoff=0.8)
            meant = _SLIPS[name] = close[0] if close and len(_SLIPS) < 1024 else None
        if meant is not None:
            raise TypeError("%s got %s=: did you mean %s=? (to send %r as it is, pass extra_body={%r: ...})"
                            % (callee, name, meant, name, name))


def _from_ollama(params: Dict[str, Any], messages: Optional[List[Any]]) -> Tuple[Any, Optional[List[Any]]]:
    """(the schema ``format=`` asks for, the messages with ``images=`` attached) of a call made
    with ollama-python's keywords; *params* get ``options=`` as body fields.  What has no
    per-request meaning in DMR (``keep_alive=``, ``num_ctx`` ...) is a TypeError saying where
    it is set."""
    if "keep_alive" in params:
        raise TypeError("keep_alive is set per model in DMR, not per request: client.configure(model, "
                        "keep_alive=...) (e.g. '10m', or -1 to keep it loaded)")
    options = params.pop("options", None)
    if options is not None:
        if not isinstance(options, collections.abc.Mapping):
            raise TypeError("options must be a dict of ollama options, not %s" % _shown(options))
        for name, value in options.items():
            if name in _OLLAMA_MODEL_OPTIONS:
                raise TypeError("options[%r] configures the model, which DMR does per model: client.configure(model, "
                                "context_size=N) for num_ctx; the runtime's flags for the others" % name)
            if name not in _OLLAMA_OPTIONS:
                raise TypeError("options[%r] is not an option DMR's engines read; they read: %s" % (
                    name, ", ".join(sorted(_OLLAMA_OPTIONS))))
            params.setdefault(_OLLAMA_OPTIONS[name], value)
    schema = params.pop("format", None)
    if schema == "json":
        params["response_format"], schema = {"type": "json_object"}, None
    elif isinstance(schema, (str, bytes)):
        raise TypeError("format takes 'json', a JSON Schema or a type (as schema= does), not %s" % _shown(schema))
    images = params.pop("images", None)
    if images is not None:
        if messages is None:
            raise TypeError("images= goes with chat(): put dmr_client.image(...) parts in a message")
        messages = _with_images(messages, images)
    return schema, messages


def _with_images(messages: List[Any], images: Any) -> List[Any]:
    """*messages* with *images* (paths, bytes, data or http URLs: see image()) as parts of the
    last user message, as ollama-python's ``images=`` attach them."""
    if isinstance(images, (str, bytes)) or not isinstance(images, (list, tuple)):
        raise TypeError("images must be a list of paths, bytes or URLs, not %s" % _shown(images))
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            text = [{"type": "text", "text": content}] if isinstance(content, str) and content else list(content or ())
            messages = list(messages)
            messages[position] = dict(message, content=text + [image(item) for item in images])
            return messages
    raise ValueError("images= needs a user message to go with: add one")


#: Text goes out as UTF-8, not \\u escapes: smaller, and a lone surrogate fails its encoding (below).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def _check_surrogates(value: Any, where: str) -> None:
    """ValueError naming where *value* holds a lone surrogate: text decoded with errors=
    'surrogateescape' (bytes that were not UTF-8).  It cannot be written as UTF-8, and json.dumps's
    \\udcxx escape is refused by servers (llama.cpp: a JSON parse error) or mangled."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("%s holds %r at character %d, a lone surrogate, not text a server can read: "
                             "bytes that were not UTF-8, decoded with errors='surrogateescape'? Decode them "
                             "with their real encoding (e.g. data.decode('latin-1'))"
                             % (where or "the request", value[exc.start], exc.start)) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if isinstance(key, str) else repr(key)
            _check_surrogates(key, "a key in " + (where or "the request"))
            _check_surrogates(item, "%s.%s" % (where, name) if where else name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_surrogates(item, "%s[%d]" % (where, index))


#: Keywords of a call that are options of the request, never JSON body fields (openai-python's).
_REQUEST_OPTIONS = ("timeout", "extra_headers", "extra_query", "extra_body")
#: Settings of a client that a call cannot change: refused rather than sent as body fields.
_CLIENT_SETTINGS = ("max_retries", "api_key", "base_url", "headers", "default_headers", "default_query",
                    "connect_timeout", "http_client", "organization", "project")

_Options = collections.namedtuple("_Options", "timeout headers query body")
_NO_OPTIONS = _Options(None, b"", "", None)
_NOT_BODY_FIELDS = frozenset(_REQUEST_OPTIONS + _CLIENT_SETTINGS)


def _request_options(params: Dict[str, Any], reserved: Callable[[], Iterable[str]] = tuple) -> _Options:
    """Take the request options out of a call's *params* (the rest are body fields): *timeout*
    (this call's, on a connection of its own), *extra_headers* (header lines; none of
    the names *reserved*() gives, the client's own), *extra_query* (added to the URL), *extra_body* (merged
    into the JSON body last).  A client setting among *params* is a TypeError."""
    if _NOT_BODY_FIELDS.isdisjoint(params):   # speed: the usual call, one set operation
        return _NO_OPTIONS
    for name in _CLIENT_SETTINGS:
        if name in params:
            raise TypeError("%s is a setting of the client, not of one call: pass it to the client, or use "
                            "client.with_options(%s=...)" % (name, name))
    timeout = _check_timeout(params.pop("timeout", None), "timeout")
    headers = _check_headers(params.pop("extra_headers", None))
    taken = {name.lower() for name in reserved()}
    for name in headers:
        if name.lower() in taken:
            raise ValueError("extra_headers cannot set %r, which the client sets: give it to the client "
                             "(headers=)" % name)
    query = params.pop("extra_query", None)
    if query is not None and not isinstance(query, collections.abc.Mapping):
        raise TypeError("extra_query must be a dict of query parameters, not %s" % _shown(query))
    body = params.pop("extra_body", None)
    if body is not None and not isinstance(body, collections.abc.Mapping):
        raise TypeError("extra_body must be a dict of JSON body fields, not %s" % _shown(body))
    lines = "".join("%s: %s\r\n" % pair for pair in headers.items()).encode("latin-1")
    return _Options(timeout, lines, "?" + urllib.parse.urlencode(query, doseq=True) if query else "",
                    dict(body) if body else None)


def _request_body(body: Dict[str, Any], params: Mapping[str, Any], options: _Options = _NO_OPTIONS) -> bytes:
    """The JSON body of a call: *body* plus the caller's *params*, None values left out, then
    the *extra_body* of *options* as given (it wins)."""
    body.update((key, value) for key, value in params.items() if value is not None)
    if options.body:
        body.update(options.body)
    return _encode_json(body)


def _model_tar(path: str) -> Tuple[int, str]:
    """(size, model ID) of the exported model at *path*, read before anything is sent: DMR
    names the model it loads by the sha256 of the tar's manifest.json.  A file that cannot be
    read, or is not such a tar, raises ValueError.  Reads headers only: memory stays small."""
    import hashlib
    import tarfile

    manifest, blobs = None, 0
    try:
        size = os.stat(path).st_size
        with tarfile.open(path, "r:") as archive:
            for member in archive:
                if not member.isreg():
                    continue
                if member.name == "manifest.json" and member.size <= 4 << 20:
                    manifest = archive.extractfile(member).read()   # type: ignore[union-attr]
                elif member.name.startswith(("blobs/", "manifests/")):
                    blobs += 1
    except (OSError, tarfile.TarError, EOFError) as exc:
        what = "is not a tar archive" if isinstance(exc, (tarfile.TarError, EOFError)) else "cannot be read"
        raise ValueError("%s %s (%s): import_model() loads what export_model() or `docker model package` "
                         "wrote" % (path, what, exc)) from None
    if manifest is None or not blobs:
        raise ValueError("%s is a tar archive, but not an exported model (it has no %s)"
                         % (path, "manifest.json" if manifest is None else "blobs/"))
    return size, "sha256:" + hashlib.sha256(manifest).hexdigest()


def _split_tag(target: str) -> Tuple[str, str]:
    """(repository, tag) of a model reference such as ``myorg/model:v2`` (``latest`` when it
    names none), as `docker model tag` splits it; ValueError when it cannot be one."""
    if not isinstance(target, str):
        raise TypeError("the target must be a str such as 'myorg/smollm2:v2', not %s" % _shown(target))
    quote_model_path(target)
    repository, colon, tag = target.rpartition(":")
    if not colon or "/" in tag:   # no tag, or the colon was a registry's port
        repository, tag = target, "latest"
    if not re.match(r"^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*$", repository) \
            or not re.match(r"^[\w][\w.-]{0,127}$", tag):
        raise ValueError("%r cannot be a tag: use REPOSITORY[:TAG], e.g. 'myorg/smollm2:v2'" % (target,))
    return repository, tag


def _encode_json(body: Dict[str, Any]) -> bytes:
    try:
        text = _encode(body)
    except RecursionError:
        raise ValueError("the request cannot be sent as JSON: a value in it is nested deeper than Python "
                         "can encode (sys.getrecursionlimit() is %d); flatten it" % sys.getrecursionlimit()) from None
    except (TypeError, ValueError) as exc:
        raise TypeError("the request cannot be sent as JSON: %s (pass plain str, int, float, bool, "
                        "None, list and dict values)" % exc) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate: say where (as \\udcxx escapes, servers refuse it)
        _check_surrogates(body, "")
        raise


# ---------------------------------------------------------------------------
# Clients: a call and the core
# ---------------------------------------------------------------------------

class _Call:
    """One call, described without I/O: what to send and what a 2xx answer becomes.

    Each field is declared once, below, with its default and meaning (a
    class rather than a namedtuple, whose defaults are matched by counting).
    """

    __slots__ = ("method", "route", "body", "where", "engine", "model", "accept", "hints", "retry_statuses",
                 "replayable", "shape", "then", "stream", "wait", "extra", "answer", "timed", "timeout", "retries",
                 "probe", "finish", "upload", "into")

    def __init__(self,
                 method: str,                                # "GET", "POST", "DELETE"
                 route: str,                                 # the path below the root *where* names
                 body: Optional[bytes] = None,               # the request body (JSON bytes), or None
                 *,
                 where: str = _API_ROOT,                     # _API_ROOT, _DMR_ROOT or _ENGINE_ROOT
                 engine: Optional[str] = None,               # the engine a model name or the caller chose
                 model: Optional[str] = None,                # the model's name, for hints and streams
                 accept: str = "application/json",           # the Accept header
                 hints: Optional[Mapping[int, str]] = None,  # {status: hint} for answers of this route
                 retry_statuses: frozenset = RETRY_STATUSES,  # statuses sent again (retry_wait())
                 replayable: bool = True,                    # False: it changes DMR's state, never resent
                 shape: Optional[Callable[[Any], Optional[str]]] = None,   # what is wrong with a JSON answer
                 then: Optional[Callable[[Any], Any]] = None,  # turns the checked answer into the result
                 stream: Optional[str] = None,               # the stream's key in _streams ("chat", "pull" ...)
                 wait: bool = False,                         # follow that stream to its end, return its result
                 extra: bytes = b"",                         # header lines of this call only
                 answer: str = _JSON_BODY,                   # _JSON_BODY, _TEXT_BODY, _NO_BODY or _ANY_STATUS
                 timed: bool = False,                        # the result carries speed figures (a Completion)
                 timeout: Optional[float] = None,            # its own wait for each read; None: the client's
                 retries: Optional[int] = None,              # times it may be sent again; None: max_retries
                 probe: bool = False,                        # a pool of its own, connecting within *timeout*
                 finish: Optional[Callable[[Any], Any]] = None,  # what a stream's final() passes through
                 upload: Optional[_Upload] = None,           # a body sent from a file, in pieces (not *body*)
                 into: Optional[_Download] = None):          # the file a streamed body is written to

        self.method, self.route, self.body, self.where, self.engine = method, route, body, where, engine
        self.model, self.accept, self.hints, self.retry_statuses = model, accept, hints, retry_statuses
        self.replayable, self.shape, self.then, self.stream, self.wait = replayable, shape, then, stream, wait
        self.extra, self.answer, self.timed, self.timeout, self.retries = extra, answer, timed, timeout, retries
        self.probe, self.finish, self.upload, self.into = probe, finish, upload, into


class _ClientCore:
    """Configuration, and the rules that turn a _Call into bytes and an answer into a
    result, shared by Client and AsyncClient (see Client for the arguments).

    The calls themselves are the three groups below (_OpenAICalls,
    _DMRCalls, _RunningModelCalls): each public method checks its arguments
    and describes its request as a _Call; the subclass's _call() sends it on
    its transport and turns the answer into the result (Client returns it,
    AsyncClient an awaitable of it).
    """

    _pool: Any

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *,
                 engine: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 connect_timeout: Optional[float] = DEFAULT_CONNECT_TIMEOUT,
                 max_retries: int = DEFAULT_MAX_RETRIES, headers: Optional[Headers] = None,
                 unix_socket: Optional[str] = None, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 verify: Any = None, cert: Any = None, ssl_context: Any = None, context: Optional[str] = None,
                 **unknown: Any):
        if unknown:
            raise _unexpected_keywords(type(self).__name__ + "()", unknown, _keywords_of(_ClientCore.__init__))
        self.engine = _check_engine(engine)
        self._api_key = _resolve_api_key(api_key)
        self.timeout = _check_timeout(timeout, "timeout")
        self.connect_timeout = _check_timeout(connect_timeout, "connect_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be a whole number >= 0, not %s" % _shown(max_retries))
        self.max_retries = max_retries
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) \
                or max_response_bytes < 1:
            raise ValueError("max_response_bytes must be a whole number of bytes >= 1, not %s"
                             % _shown(max_response_bytes))
        self.max_response_bytes = max_response_bytes
        self._headers = _merge_headers({
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",   # compressed SSE would be buffered, and urllib never inflates
            "Content-Type": "application/json",
        }, _check_headers(headers))
        self._accept = not any(name.lower() == "accept" for name in self._headers)
        self._head = b""
        self._lock = threading.Lock()
        self._socket_fallback = False
        if unix_socket is not None:
            if context is not None:
                raise ValueError("pass unix_socket= or context=, not both")
            self._endpoint = _Endpoint(base_url, "unix_socket=", None, _DEFAULT_TLS)
            self._tls = _TLSContext(_DEFAULT_TLS)
            self._connect_unix(unix_socket, base_url)
            return
        self._endpoint = _resolve_endpoint(base_url, context, verify, cert, ssl_context)
        self._tls = _TLSContext(self._endpoint.tls)
        self._set_root(_parse_base_url(self._endpoint.base_url or self._discover()), None)

    @property
    def context(self) -> Optional[str]:
        """The `docker model context` this client uses (context=, or the active one), or None."""
        return self._endpoint.context

    def _where(self) -> str:
        """Which context and TLS settings this client uses, in a line (status, ping)."""
        endpoint = self._endpoint
        context = ("context %s (%s)" % (endpoint.context, _contexts_path()) if endpoint.context
                   else "no context (%s)" % (endpoint.source or "found"))
        tls = "TLS: " + endpoint.tls.shown() if self._origin.scheme == "https" else "TLS: off"
        return "%s; %s" % (context, tls)

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
        if not isinstance(path, str) or not path or re.search(_CONTROL_CHARS, path):
            raise ValueError("unix_socket must be the path of a socket file, without control "
                             "characters, not %r" % (path,))
        path = os.path.expanduser(path)
        if base_url is None:
            docker = os.path.basename(path) == "docker.sock"
            base_url = "http://localhost" + (DOCKER_SOCKET_PREFIX if docker else "")
        self._set_root(_parse_base_url(base_url), path)

    def _set_root(self, root: _Root, unix_socket: Optional[str]) -> None:
        if self.engine and not root.plain:
            root = root._replace(engine=self.engine)
        self._origin = _origin_for(root, self._tls) if unix_socket is None else _Origin("http", "localhost", 80,
                                                                                        None, unix_socket)
        self._root = root
        self.base_url = root.url()
        self.unix_socket = unix_socket
        self._new_pools()
        self._build_head()

    def _new_pools(self) -> None:
        raise NotImplementedError

    @property
    def api_key(self) -> str:
        """The key sent as ``Authorization: Bearer <key>``; "" and DEFAULT_API_KEY send none."""
        return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._api_key = _resolve_api_key(value)
        self._build_head()

    def _build_head(self) -> None:
        headers = dict(self._headers)
        # The dummy key stands for "no key" and is not sent: DMR reads no key, and a server that
        # checks keys then says that none was given (401) instead of looking up a made-up one
        # (LiteLLM's proxy without a database answers 400 "No connected db." for that).
        if self._api_key not in ("", DEFAULT_API_KEY) and not any(name.lower() == "authorization"
                                                                   for name in headers):
            headers["Authorization"] = "Bearer " + self._api_key
        self._head = _fixed_head(self._origin, headers)
        self._starts: Dict[Tuple[Any, ...], Tuple[str, bytes]] = {}   # see _request()

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
        return "<dmr_client.%s base_url=%r%s engine=%r timeout=%r max_retries=%r>" % (
            type(self).__name__, self.base_url, where, self.engine, self.timeout, self.max_retries)

    def _call(self, call: _Call) -> Any:
        raise NotImplementedError

    def _run(self, plan: Generator[Any, Any, Any]) -> Any:
        raise NotImplementedError

    # -- the rules both transports apply ------------------------------------------

    def _request_head(self, method: str, target: str, accept: str, body: Optional[bytes], extra: bytes = b"") -> bytes:
        """The request line and headers, ready to write (*extra*: this call's own header lines)."""
        length = b"Content-Length: %d\r\n" % len(body) if body is not None else b""
        return self._head_start(method, target, accept, extra) + length + b"\r\n"

    def _head_start(self, method: str, target: str, accept: str, extra: bytes) -> bytes:
        accept_line = b"Accept: %s\r\n" % accept.encode("ascii") if self._accept else b""
        return b"%s %s HTTP/1.1\r\n%s%s%s" % (method.encode("ascii"), target.encode("ascii"), self._head,
                                               accept_line, extra)

    def _request(self, call: _Call) -> Tuple[str, bytes]:
        """(URL for messages, the request's bytes) of *call*.

        Speed: the head up to Content-Length is built once per kind of call
        (method, route, engine ...) and kept, a few hundred at most; a new
        API key or base URL starts afresh (_build_head).
        """
        key = (call.method, call.where, call.route, call.engine, call.accept, call.extra)
        known = self._starts.get(key)
        if known is None:
            if len(self._starts) >= 256:
                self._starts.clear()
            _, url, target = self._target(call.where, call.route, call.engine)
            known = self._starts[key] = (url, self._head_start(call.method, target, call.accept, call.extra))
        url, start = known
        body = call.body
        if call.upload is not None:   # its pieces follow the head (_exchange); its own Content-Type
            start = start.replace(b"Content-Type: application/json\r\n", b"Content-Type: %s\r\n"
                                  % call.upload.content_type.encode("ascii"))
            return url, b"%sContent-Length: %d\r\n\r\n" % (start, call.upload.size)
        if body is None:
            return url, start + b"\r\n"
        return url, b"%sContent-Length: %d\r\n\r\n%s" % (start, len(body), body)

    def _path(self, where: str, route: str, engine: Optional[str]) -> str:
        root = self._root
        if where == _API_ROOT:
            return root.api_path(engine) + route
        if where == _ENGINE_ROOT:
            return root.engine_path(engine) + route
        if where == _DMR_ROOT:
            return root.dmr_path() + route
        raise ValueError("unknown root %r: use _API_ROOT, _DMR_ROOT or _ENGINE_ROOT" % (where,))

    def _target(self, where: str, route: str, engine: Optional[str]) -> Tuple[Any, str, str]:
        """(pool, URL for messages, request target) of a route; HTTP proxies get the absolute URL."""
        pool = self._pool_here()
        path = self._path(where, route, engine)
        url = self._root.origin + path
        if self._origin.proxy is None or self._origin.scheme != "http":
            return pool, url, path
        return pool, url, url

    def _pool_here(self) -> Any:
        raise NotImplementedError

    def _reply(self, call: _Call, exchange: _ExchangeBase, raw: bytes) -> Any:
        """The result of a 2xx answer whose body is *raw*: decoded, checked, finished."""
        if call.answer != _JSON_BODY:
            if call.answer == _ANY_STATUS:
                return exchange.status, raw.decode("utf-8", "replace")
            if call.answer not in (_TEXT_BODY, _NO_BODY):
                raise ValueError("unknown answer %r: use _JSON_BODY, _TEXT_BODY, _NO_BODY or _ANY_STATUS"
                                 % (call.answer,))
            text = raw.decode("utf-8", "replace") if call.answer == _TEXT_BODY else None
            return call.then(text) if call.then is not None else text
        status = exchange.status
        why: Optional[str] = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, why = raw.decode("utf-8", "replace"), "is not UTF-8"
        # Peak memory: the body once as bytes and once as text, never more (the caller passes
        # *raw* without keeping it: on CPython 3.11+ this frees it).
        del raw
        if why is None:
            try:
                reply = _decode_event(text)   # speed: scan_once first, decode()'s regexes only if needed
            except RecursionError:
                why = "is nested too deeply"
            except ValueError:
                why = "is not JSON"
        if why is not None:
            shown = text[:MAX_ERROR_BODY]
            raise InvalidResponseError("%s answered %d with a body that %s: %.200r"
                                       % (exchange.url, status, why, shown), body=shown, status_code=status)
        wrong = call.shape(reply) if call.shape is not None else None
        if wrong is not None:
            if call.where == _DMR_ROOT and isinstance(reply, dict) and _model_list_shape(reply) is None:
                wrong += (" (it is an OpenAI model list: the server at %s is a gateway or another "
                          "OpenAI-compatible server, without Docker Model Runner's own API; models() lists "
                          "what it serves)" % self._root.origin)
            raise InvalidResponseError("%s answered %d with JSON of the wrong shape: %s"
                                       % (exchange.url, status, wrong),
                                       body=text[:MAX_ERROR_BODY], status_code=status)
        return call.then(reply) if call.then is not None else reply

    def _connection_failure(self, error: APIConnectionError, note: str, refused: bool) -> APIConnectionError:
        message = error.message + note
        origin = self._origin
        if origin.unix_socket:
            if refused:
                message += ". Is Docker Desktop (or DMR) running and is this its socket?"
        elif refused and origin.proxy is None:
            if _is_local_host(origin.host) and origin.port == 12434:
                message += (". Is Docker Model Runner running with host TCP access? On Docker Desktop: "
                            "`docker desktop enable model-runner --tcp 12434`; on Docker Engine: "
                            "`docker model install-runner`. Or set %s to where DMR listens" % ENV_BASE_URL)
            elif self._endpoint.source == "base_url=":   # the caller named it: nothing to point at
                message += ". Is the server running at %s?" % self._root.origin
            else:
                message += ". Is the server running at %s? (set %s or pass base_url=)" % (
                    self._root.origin, ENV_BASE_URL)
        return type(error)(message, url=error.url)

    def _status_error(self, exchange: _ExchangeBase, raw: bytes, call: _Call, note: str) -> APIStatusError:
        """The error for a non-2xx answer whose (first MAX_ERROR_BODY bytes of) body is *raw*."""
        text = raw.decode("utf-8", "replace")
        message, error_type, code = parse_error_body(text)
        status, headers = exchange.status, exchange.headers
        if not message:
            message = exchange.reason or "no message"
        if 300 <= status < 400 and headers.get("Location"):
            message += " (redirect to %s)" % _redact(headers["Location"])
        docker = self.unix_socket if self._root.prefix == DOCKER_SOCKET_PREFIX else None
        hint = _error_hint(status, message, model=call.model, origin=self._root.origin, docker_socket=docker,
                           hints=call.hints, where=call.where, sent=len(call.body) if call.body else None,
                           media=_carries_media(call.body), plain=self.base_url if self._root.plain else None)
        cls = _STATUS_ERRORS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
        return cls(message, status_code=status, body=text, headers=headers, url=exchange.url, hint=hint,
                   error_type=error_type, code=code, note=note)

    _raw = False   # results as RawResponse (with_raw_response): see _result

    def _copy(self, *, max_retries: Optional[int] = None, headers: Optional[Headers] = None,
              raw: Optional[bool] = None) -> Any:
        """A copy with these settings that shares this client's connections (with_options)."""
        import copy

        clone = copy.copy(self)
        if max_retries is not None:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ValueError("max_retries must be a whole number >= 0, not %s" % _shown(max_retries))
            clone.max_retries = max_retries
        if headers:
            clone._headers = _merge_headers(self._headers, _check_headers(headers))
            clone._accept = not any(name.lower() == "accept" for name in clone._headers)
            clone._build_head()
        if raw is not None:
            clone._raw = raw
        return clone

    def _options(self, params: Dict[str, Any]) -> _Options:
        """The request options among a call's *params* (_request_options); the headers the
        client sets itself cannot be set again per call."""
        return _request_options(params, lambda: tuple(self._headers) + ("Host", "Accept", "Authorization"))

    def _pool_for(self, call: _Call) -> Any:
        """The pool *call* goes through: the client's, or for a probe one of its own, which
        connects within the probe's timeout and keeps no connection."""
        return self._own_pool(call.timeout or self.timeout or DEFAULT_TIMEOUT) if call.probe else self._pool_here()

    def _own_pool(self, timeout: float) -> Any:
        raise NotImplementedError

    def _limit(self, call: _Call) -> Tuple[int, bool]:
        """(most bytes read, whether to cut there rather than fail) of *call*'s whole answer."""
        if call.answer in (_NO_BODY, _ANY_STATUS):
            return MAX_ERROR_BODY, True
        return self.max_response_bytes, False

    def _stream(self, call: _Call, exchange: _ExchangeBase, started: float) -> Any:
        """The stream *call* asked for, over *exchange*."""
        stream = self._streams[call.stream](exchange, call.model, started)   # type: ignore[attr-defined]
        if call.finish is not None:
            stream._finish = call.finish
        if call.into is not None:
            stream.into = call.into
        return stream

    def _result(self, call: _Call, exchange: _ExchangeBase, raw: bytes, started: float) -> Any:
        """What *call* returns for its whole answer *raw*."""
        result = self._reply(call, exchange, raw)
        if call.timed:
            result = Completion.timed(result, time.monotonic() - started)
        if self._raw:
            return RawResponse(exchange.status, exchange.headers, exchange.url, result)
        return result

    # -- what answers at the base URL ---------------------------------------------------

    def server_kind(self, timeout: float = 5.0) -> Optional[str]:
        """What answers at the base URL: "dmr" (Docker Model Runner says so at its root),
        "gateway" (LiteLLM's proxy router, or `docker model gateway`: each says so at its
        root), "openai-compatible"
        (a server that lists models under the OpenAI root, or asks for a key there in
        OpenAI's error shape: llama.cpp's, vLLM's, another gateway ...) or None (nothing,
        or something else); never raises.  Each probe waits at most *timeout* seconds and
        is sent once."""
        return self._run(self._kind_plan(timeout))

    def ping(self, timeout: float = 5.0) -> bool:
        """True if DMR, a gateway or another OpenAI-compatible server answers (server_kind());
        never raises."""
        return self._run(self._ping_plan(timeout))

    @classmethod
    def _ping_plan(cls, timeout: float) -> Any:
        kind = yield from cls._kind_plan(timeout)
        return kind is not None

    @classmethod
    def _kind_plan(cls, timeout: float = 5.0) -> Any:
        """What server_kind() asks, and what the answers mean (see _identify_plan)."""
        kind, _ = yield from cls._identify_plan(timeout)
        return kind

    @staticmethod
    def _identify_plan(timeout: float = 5.0) -> Any:
        """(server_kind(), what answers in words, or None): DMR says so at its root, and so
        do LiteLLM's proxy and `docker model gateway` (its health report, the same at /health;
        its chat answers carry x-model-cli-version, its root's do not); an OpenAI-compatible
        server lists its models, or refuses to without a key in OpenAI's error shape.
        Whatever fails, the answer is None."""
        probe: Dict[str, Any] = dict(accept="*/*", answer=_ANY_STATUS, timeout=timeout, retries=0, probe=True)
        try:
            status, body = yield _Call("GET", "/", where=_DMR_ROOT, **probe)
            if status == 200 and "docker model runner" in body.lower():
                return "dmr", "Docker Model Runner"
            if status == 200 and "litellm" in body[:200].lower():   # its root answers "LiteLLM: RUNNING"
                return "gateway", "LiteLLM's proxy (a gateway, not Docker Model Runner)"
            if status == 200 and _json_object_with(body, "status"):
                health = loads(body)   # `docker model gateway`: {"status": "healthy", "version", "models"}
                if health.get("status") == "healthy" and isinstance(health.get("models"), list) \
                        and isinstance(health.get("version"), str):
                    return "gateway", ("Docker's model gateway (`docker model gateway` %s, not Docker Model Runner)"
                                       % health["version"])
            status, body = yield _Call("GET", "/models", **probe)
        except DMRError:   # nothing answers there, or it broke off
            return None, None
        try:
            answer = loads(body)
        except ValueError:
            return None, None
        if status == 200 and _model_list_shape(answer) is None:
            return "openai-compatible", "an OpenAI-compatible server (not Docker Model Runner)"
        if status in (401, 403) and isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            return "openai-compatible", "an OpenAI-compatible server (not Docker Model Runner)"   # wants a key
        return None, None


# ---------------------------------------------------------------------------
# Clients: the calls, written once
# ---------------------------------------------------------------------------


class _OpenAICalls(_ClientCore):
    """The OpenAI-compatible calls: chat, completions, embeddings, models, rerank."""

    def chat(self, model: str, messages: Sequence[Message], *, stream: bool = False,
             think: Optional[bool] = None, schema: Any = None, strict: Optional[bool] = None,
             **params: Any) -> Any:
        """Create a chat completion.

        *model* is sent as given, except that LiteLLM's ``docker_model_runner/``
        prefix is dropped and a leading engine (``llama.cpp/ai/smollm2``) picks
        that engine for this call.  Every keyword in *params* (temperature,
        max_tokens, tools, response_format, stream_options ...) goes into the
        JSON body as given; None values are left out.  openai-python's request
        options are not body fields: *timeout* (this call's, on a connection of
        its own), *extra_headers*, *extra_query* and *extra_body* (merged into
        the body last); a client setting (max_retries=, api_key= ...) given
        here is a TypeError.

        *think* turns a reasoning model's thinking on or off (llama.cpp's
        ``chat_template_kwargs.enable_thinking``, which vLLM reads too); the
        thinking comes apart from the answer, as ``reasoning_content``.

        *schema* asks for a typed answer: a type (dataclass, TypedDict, Enum,
        list[...] ...: see json_schema()), a JSON Schema dict or a pydantic
        model.  It is sent as ``response_format`` (the json_schema form;
        *strict* adds ``strict``), and ``reply.parsed`` (each
        ``choice.message.parsed``) is the answer as that type, checked;
        InvalidResponseError if it does not fit.  *tools* may hold Python
        functions (see function_tool()) beside tool dicts; each tool call's
        ``function.parsed_arguments`` is its arguments, checked against the
        tool's schema.  run_tools() also calls them.

        Returns the response as a Completion (an AttrDict with ``stats``), or
        with ``stream=True`` a ChatStream of chunks (its final() folds them
        into the same response).
        """
        return self._call(self._chat_call(model, messages, stream, think, schema, strict, params))

    def _chat_call(self, model: str, messages: Sequence[Message], stream: bool, think: Optional[bool],
                   schema: Any, strict: Optional[bool], params: Dict[str, Any]) -> _Call:
        engine, name = split_model(model)
        _check_messages(messages)
        parse = None
        if not _CHAT_NAMES.issuperset(params):   # speed: one set operation for the usual call
            _check_slips(params, "chat()")
        if not _OLLAMA_KEYWORDS.isdisjoint(params):   # speed: one set operation for the usual call
            format_schema, messages = _from_ollama(params, list(messages))   # type: ignore[assignment]
            if format_schema is not None:
                if schema is not None:
                    raise TypeError("pass schema= or format=, not both")
                schema = format_schema
        if isinstance(params.get("response_format"), type):
            raise TypeError("response_format takes a dict; to ask for a %s, pass schema=%s (openai-python's "
                            "chat.completions.parse(response_format=...) does the same)"
                            % ((params["response_format"].__name__,) * 2))
        if schema is not None or strict is not None or params.get("tools"):
            if schema is not None and params.get("response_format") is not None:
                raise TypeError("pass schema= or response_format=, not both (schema= writes the response_format)")
            capped = params.get("max_tokens") is not None or params.get("max_completion_tokens") is not None
            response_format, tools, parse = _parse_plan(schema, strict, params.get("tools"), capped)
            if response_format is not None:
                params["response_format"] = response_format
            if tools:
                params["tools"] = tools
        if think is not None:
            if not isinstance(think, bool):
                raise TypeError("think must be True or False (or None to leave it to the model), not %s" % _shown(think))
            kwargs = params.get("chat_template_kwargs") or {}
            if not isinstance(kwargs, dict):
                raise TypeError("chat_template_kwargs must be a dict, not %s" % _shown(kwargs))
            params["chat_template_kwargs"] = dict(kwargs, enable_thinking=think)
        return self._generate("/chat/completions", engine, name, {"messages": messages}, stream, params, "chat", parse)

    _awaits_tools = False   # AsyncClient: async def tools are awaited, one turn's calls run together

    def run_tools(self, model: str, messages: Sequence[Message], *, tools: Sequence[Any], max_rounds: int = 8,
                  on_step: Optional[Callable[[Any], Any]] = None, **params: Any) -> Any:
        """Chat with *tools* (Python functions) until the model answers without calling one.

        Each round: the model is asked (chat(), with *params*), every tool call
        of its turn is run (the arguments parsed and checked against the tool's
        schema first, never evaluated), and the assistant turn plus one
        ``role: "tool"`` message per call are added to the conversation.  A
        tool's exception, an unknown tool and invalid arguments are sent back to
        the model as that message's content (``error: ...``), not raised.
        *on_step* (if given) sees each call as a ToolStep when it is done
        (on AsyncClient it may be an ``async def``).
        A ``tool_choice`` that forces a call ("required", or a named function)
        holds for the first turn; later turns are sent "auto", or the model
        could never answer.
        Returns the final reply; ``reply.messages`` is the whole conversation
        (*messages* itself is not changed).  More than *max_rounds* model
        calls raise ToolLoopError, whose ``messages`` hold the conversation.
        AsyncClient runs one turn's calls together: an ``async def`` tool is
        awaited, a plain one runs in a worker thread (the event loop never waits
        on it).
        """
        _check_messages(messages)
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise ValueError("max_rounds must be a whole number >= 1, not %s" % _shown(max_rounds))
        if on_step is not None and not callable(on_step):
            raise TypeError("on_step must be a function taking a ToolStep, not %s" % _shown(on_step))
        if params.get("stream"):
            raise TypeError("run_tools() does not stream: leave stream= out (on_step sees each tool call)")
        specs, known = _tool_specs(tools)
        if not known:
            raise ValueError("tools is empty: pass the Python functions the model may call")
        for name, tool in known.items():
            if not isinstance(tool, _FunctionTool):
                raise TypeError("run_tools() calls Python functions, and the tool %r is a dict: pass the "
                                "function itself (its schema is written from its signature)" % name)
            if tool.is_async and not self._awaits_tools:
                raise TypeError("the tool %r is an async def: use AsyncClient.run_tools() (or make it a "
                                "plain def)" % name)
        return self._run(self._tool_loop(model, list(messages), specs, known, max_rounds, on_step, params))

    def _tool_loop(self, model: str, conversation: List[Any], specs: List[Any], known: Dict[str, Any],
                   max_rounds: int, on_step: Optional[Callable[[Any], Any]], params: Dict[str, Any]) -> Any:
        schema, strict = params.pop("schema", None), params.pop("strict", None)
        think = params.pop("think", None)
        for round in range(1, max_rounds + 1):
            call = self._chat_call(model, conversation, False, think, schema, strict, dict(params, tools=list(specs)))
            reply = yield call
            choices = reply.get("choices") or []
            message = choices[0].get("message") if choices else None
            if not isinstance(message, dict):
                raise InvalidResponseError("the reply has no message to go on from: %s" % _got(dict(reply)))
            turn = _assistant_turn(message, round)
            conversation.append(turn)
            if not turn.get("tool_calls"):
                reply.messages = conversation
                return reply
            steps = yield _ToolTurn(turn["tool_calls"], known, round, on_step)
            conversation.extend(_ToolTurn.message(step) for step in steps)
            if params.get("tool_choice") not in (None, "auto", "none"):
                # "required" (or one named function) was for the first turn: kept, it would make
                # every turn a tool call and the loop could never end (as the OpenAI Agents SDK does)
                params["tool_choice"] = "auto"
        raise ToolLoopError("the model still called tools after %d round%s (max_rounds=%d): raise max_rounds, "
                            "or go on from error.messages" % (max_rounds, "" if max_rounds == 1 else "s", max_rounds),
                            messages=conversation)

    def completions(self, model: str, prompt: Any, *, stream: bool = False, **params: Any) -> Any:
        """Create a legacy text completion (``/completions``) of *prompt*.

        Like chat(): the response as an AttrDict, or with ``stream=True`` a
        CompletionStream.
        """
        engine, name = split_model(model)
        if not isinstance(prompt, (str, list)) or not prompt:
            raise TypeError("prompt must be a non-empty str (or a list of them), not %s" % _shown(prompt))
        if not _OLLAMA_KEYWORDS.isdisjoint(params):   # speed: one set operation for the usual call
            format_schema = _from_ollama(params, None)[0]
            if format_schema is not None:   # llama.cpp's own field for a completion's grammar
                params["json_schema"] = json_schema(format_schema)
        return self._call(self._generate("/completions", engine, name, {"prompt": prompt}, stream, params,
                                         "completion"))

    def _generate(self, route: str, engine: Optional[str], name: str, body: Dict[str, Any], stream: bool,
                  params: Dict[str, Any], kind: str, parse: Optional[_Parse] = None) -> _Call:
        options = self._options(params)
        route += options.query
        if stream is not True and stream is not False:
            raise TypeError("stream must be True or False, not %s" % _shown(stream))
        if stream:
            data = _request_body(dict(model=name, **body), dict(params, stream=True), options)
            return _Call("POST", route, data, engine=engine, model=name, accept="text/event-stream",
                         stream=kind, extra=options.headers, timeout=options.timeout, finish=parse)
        return _Call("POST", route, _request_body(dict(model=name, **body), params, options),
                     engine=engine, model=name, shape=_choices_shape, then=parse or _RESULT_TYPES[kind],
                     timed=True, extra=options.headers, timeout=options.timeout)

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
            raise TypeError("input must be a str or a non-empty list of str, not %s" % _shown(input))
        options = self._options(params)
        body = _request_body({"model": name, "input": input}, params, options)
        return self._call(_Call("POST", "/embeddings" + options.query, body, engine=engine, model=name,
                                shape=_embeddings_shape, then=_sorted_embeddings, extra=options.headers,
                                timeout=options.timeout))

    def models(self) -> List[AttrDict]:
        """The models the OpenAI-compatible API lists (``GET /models``)."""
        return self._call(_Call("GET", "/models", shape=_model_list_shape, then=_model_list))

    def model(self, name: str) -> AttrDict:
        """One model from the OpenAI-compatible API; NotFoundError when it is absent.

        A server without the ``/models/{id}`` route (llama.cpp's) is asked for
        its list instead, and the model found there.
        """
        engine, plain_name = split_model(name)
        return self._run(self._model_plan(engine, plain_name))

    def _model_plan(self, engine: Optional[str], name: str) -> Any:
        try:
            # `docker model ls` is advice for DMR's own layout only; a gateway's list is models().
            also = " or `docker model ls`" if "/engines" in urllib.parse.urlsplit(self.base_url).path else ""
            return (yield _Call("GET", "/models/" + quote_model_path(name), engine=engine, shape=_object_shape,
                                hints={404: "no model %r here: see models()%s" % (name, also)}))
        except NotFoundError as exc:
            if exc.message.lower() not in _ROUTER_404:
                raise
            listed = yield _Call("GET", "/models", engine=engine, shape=_model_list_shape, then=_model_list)
            for model in listed:
                if isinstance(model, dict) and model.get("id") in (name, "docker.io/%s:latest" % name):
                    return model
            raise NotFoundError("no model %r at %s: its list has %s" % (
                name, exc.url, ", ".join(str(m.get("id")) for m in listed if isinstance(m, dict)) or "none"),
                status_code=404, url=exc.url, hint="see models()") from None

    def responses(self, model: str, input: Any, *, stream: bool = False, **params: Any) -> Any:
        """Create a Responses API answer (``POST /v1/responses``) to *input* (a str, or a list
        of input items); *params* as for chat() (``instructions``, ``previous_response_id``,
        ``tools``, ``max_output_tokens``, ``text`` ...).

        Returns a Response (``output_text`` is its text), or with ``stream=True`` a
        ResponseStream of typed events.  On DMR it goes to the root's ``/v1/responses``, the
        one route every release serves (the ``/engines/...`` ones are unreleased); on a plain
        ``/v1`` base URL (llama.cpp, a gateway), under that root.
        """
        name = split_model(model)[1]
        if not isinstance(input, (str, list)) or not input:
            raise TypeError("input must be a non-empty str or a list of input items, not %s" % _shown(input))
        options = self._options(params)
        if stream:
            params = dict(params, stream=True)
        body = _request_body({"model": name, "input": input}, params, options)
        where, route = self._responses_route("")
        return self._call(_Call("POST", route + options.query, body, where=where, model=name,
                                accept="text/event-stream" if stream else "application/json",
                                stream="responses" if stream else None, shape=_object_shape, then=_as_response,
                                extra=options.headers, timeout=options.timeout))

    def response(self, response_id: str) -> AttrDict:
        """A stored Responses API answer (DMR keeps them in memory for an hour)."""
        where, route = self._responses_route("/" + quote_model_path(response_id))
        return self._call(_Call("GET", route, where=where, shape=_object_shape, then=_as_response))

    def delete_response(self, response_id: str) -> AttrDict:
        """Delete a stored Responses API answer."""
        where, route = self._responses_route("/" + quote_model_path(response_id))
        return self._call(_Call("DELETE", route, where=where, shape=_object_shape, replayable=False))

    def response_input_items(self, response_id: str) -> AttrDict:
        """The input items a stored answer was made from (``data``)."""
        where, route = self._responses_route("/%s/input_items" % quote_model_path(response_id))
        return self._call(_Call("GET", route, where=where, shape=_object_shape))

    def _responses_route(self, rest: str) -> Tuple[str, str]:
        # DMR's releases serve the Responses API at the root's /v1/responses only; a plain /v1
        # base URL (DMR's /v1 alias, llama.cpp, a gateway) has it under that root.
        if self._root.plain:
            return _API_ROOT, "/responses" + rest
        return _DMR_ROOT, "/v1/responses" + rest

    def images(self, model: str, prompt: str, *, n: Optional[int] = None, size: Optional[str] = None,
               **params: Any) -> AttrDict:
        """Generate images of *prompt* with *model* (DMR's diffusers engine, unless the model
        names another): an ImagesResponse whose ``data[i].image`` is the picture's bytes and
        ``data[i].save(path)`` writes it.  Asked for as ``b64_json``."""
        engine, name = split_model(model)
        if not isinstance(prompt, str) or not prompt:
            raise TypeError("prompt must be a non-empty str, not %s" % _shown(prompt))
        options = self._options(params)
        params.setdefault("response_format", "b64_json")
        body = _request_body({"model": name, "prompt": prompt}, dict(params, n=n, size=size), options)
        return self._call(_Call("POST", "/images/generations" + options.query, body, engine=engine or "diffusers",
                                model=name, shape=_images_shape, then=_as_images, extra=options.headers,
                                timeout=options.timeout, hints={412: _NO_DIFFUSERS}))

    def rerank(self, model: str, query: str, documents: Sequence[str], top_n: Optional[int] = None,
               **params: Any) -> AttrDict:
        """Rank *documents* by relevance to *query* (DMR's ``/rerank``, outside ``/v1``).

        Returns the engine's answer: ``results`` with ``index`` and ``relevance_score``.
        """
        engine, name = split_model(model)
        if not isinstance(query, str) or not query:
            raise TypeError("query must be a non-empty str, not %s" % _shown(query))
        if not isinstance(documents, (list, tuple)) or not documents \
                or not all(isinstance(d, str) for d in documents):
            raise TypeError("documents must be a non-empty list of str, not %s" % _shown(documents))
        options = self._options(params)
        body = _request_body({"model": name, "query": query, "documents": list(documents)}, dict(params, top_n=top_n),
                             options)
        return self._call(_Call("POST", "/rerank" + options.query, body, where=_ENGINE_ROOT, engine=engine, model=name,
                                shape=_results_shape, extra=options.headers, timeout=options.timeout))


class _DMRCalls(_ClientCore):
    """DMR's own API: pulling, listing, inspecting and removing models; engines; version."""

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
        return self._call(_Call("POST", "/models/create", _encode_json(body), where=_DMR_ROOT, model=name,
                                replayable=False, stream="pull", wait=not stream,
                                hints={404: "no model %r in the registry: check the name and tag" % name}))

    def local_models(self) -> List[AttrDict]:
        """The models in DMR's store, with ``id``, ``tags``, ``created`` and ``config``."""
        return self._call(_Call("GET", "/models", where=_DMR_ROOT, shape=_objects_shape))

    def inspect_model(self, name: str, *, remote: bool = False) -> AttrDict:
        """One model of DMR's store (or of the registry with ``remote=True``)."""
        name = split_model(name)[1]
        route = "/models/" + quote_model_path(name) + ("?remote=true" if remote else "")
        missing = ("no model %r in its registry: check the name and tag" % name if remote else
                   "no model %r in DMR's store: see local_models() or `docker model pull %s`" % (name, name))
        return self._call(_Call("GET", route, where=_DMR_ROOT, shape=_object_shape, hints={404: missing}))

    def delete_model(self, name: str, *, force: bool = False) -> List[AttrDict]:
        """Remove *name* from DMR's store; returns what was untagged and deleted.

        An ID that several tags point to needs ``force=True`` (ConflictError otherwise).
        """
        name = split_model(name)[1]
        route = "/models/" + quote_model_path(name) + ("?force=true" if force else "")
        # DMR's 409 here is a fact about the store, not a passing state: asking again cannot help.
        return self._call(_Call("DELETE", route, where=_DMR_ROOT, retry_statuses=RETRY_STATUSES - {409},
                                replayable=False, shape=_objects_shape, hints={
            404: "no model %r in DMR's store: see local_models()" % name,
            409: "several tags point to this model: pass force=True to delete it anyway"}))

    def export_model(self, name: str, path: Any, *,
                     progress: Optional[Callable[[int, Optional[int]], Any]] = None) -> AttrDict:
        """Write model *name* from DMR's store to the tar file *path* (what import_model() loads,
        on another machine); returns ``path`` and ``bytes``.

        The tar streams to a temporary file beside *path*, renamed to it once the whole
        archive came: a cut, an error or Ctrl-C leaves no file under that name.  DMR sends
        no length, so *progress* is called as progress(bytes so far, None).
        """
        name = split_model(name)[1]
        into = _Download(os.fspath(path), progress)
        into.check()
        return self._call(_Call("GET", "/models/" + quote_model_path(name) + "/export", where=_DMR_ROOT, model=name,
                                accept="application/x-tar", stream="export", wait=True, into=into, hints={
            404: "no model %r in DMR's store: see local_models()" % name}))

    def import_model(self, path: Any, *, tag: Optional[str] = None,
                     progress: Optional[Callable[[int, Optional[int]], Any]] = None) -> AttrDict:
        """Load an exported model's tar file (export_model(), `docker model package`) into
        DMR's store: the air-gapped way in.  Returns DMR's success event plus ``id``, the
        model's ID, and with *tag* also ``tagged`` (DMR loads a model without a name: *tag*
        names it, as tag_model(id, tag) would).

        The file is checked first (ValueError if it is not such a tar) and sent in pieces,
        never read whole; *progress* is called as progress(bytes sent, size).  An error DMR
        answers in the middle is raised with its status (the rest is not sent).
        """
        path = os.fspath(path)
        if tag is not None:
            _split_tag(tag)
        size, model_id = _model_tar(path)
        load = _Call("POST", "/models/load", where=_DMR_ROOT, replayable=False, answer=_TEXT_BODY, then=_loaded,
                     upload=_Upload(path, size, progress, "application/x-tar"))
        return self._run(self._import_plan(load, model_id, tag))

    def _import_plan(self, load: _Call, model_id: str, tag: Optional[str]) -> Any:
        loaded = yield load
        loaded["id"] = model_id
        if tag is not None:
            loaded["tagged"] = (yield self._tag_call(model_id, tag)).get("target")
        return loaded

    def tag_model(self, source: str, target: str) -> AttrDict:
        """Give model *source* another name, *target* (``REPOSITORY[:TAG]``, ``latest`` when
        it names no tag), as `docker model tag`; returns DMR's ``message`` and ``target``."""
        return self._call(self._tag_call(split_model(source)[1], target))

    @staticmethod
    def _tag_call(name: str, target: str) -> _Call:
        repository, tag = _split_tag(target)
        route = "/models/%s/tag?repo=%s&tag=%s" % (quote_model_path(name), urllib.parse.quote(repository, safe="/:@"),
                                                   urllib.parse.quote(tag, safe=""))
        return _Call("POST", route, where=_DMR_ROOT, model=name, replayable=False, shape=_object_shape, hints={
            404: "no model %r in DMR's store: see local_models()" % name})

    def push_model(self, name: str, *, stream: bool = False, bearer_token: Optional[str] = None) -> Any:
        """Push model *name* to its registry (`docker model push`): the progress events of
        pull(), ``mode`` "push"; blocks until DMR reports success (``stream=True``: a
        PullStream).  *bearer_token* is sent to the registry (a Hugging Face token)."""
        name = split_model(name)[1]
        body = _encode_json({"bearer-token": bearer_token}) if bearer_token else None
        return self._call(_Call("POST", "/models/%s/push" % quote_model_path(name), body, where=_DMR_ROOT,
                                model=name, replayable=False, stream="push", wait=not stream, hints={
            401: "the registry refused: log in (`docker login`) or pass bearer_token=",
            404: "no model %r in DMR's store: see local_models()" % name}))

    def repackage(self, name: str, target: str, *, context_size: Optional[int] = None) -> AttrDict:
        """Store model *name* again as *target* with a new default context size (`docker
        model package --from NAME --context-size N TARGET`); returns ``message``, ``source``
        and ``target``."""
        name = split_model(name)[1]
        _split_tag(target)
        body: Dict[str, Any] = {"target": target}
        size = _whole_number(context_size, "context_size", 1)
        if size is not None:
            body["context_size"] = size
        return self._call(_Call("POST", "/models/%s/repackage" % quote_model_path(name), _encode_json(body),
                                where=_DMR_ROOT, model=name, replayable=False, shape=_object_shape, hints={
            404: "no model %r in DMR's store: see local_models()" % name}))

    def purge_models(self) -> None:
        """Remove every model from DMR's store (`docker model purge`)."""
        return self._call(_Call("DELETE", "/models/purge", where=_DMR_ROOT, replayable=False, answer=_NO_BODY))

    def install_backend(self, backend: str, *, version: Optional[str] = None) -> None:
        """Install one of DMR's engines that it installs on demand (``diffusers``, ``vllm``,
        ``llama.cpp`` on macOS and Windows), as `docker model install-runner --backend`;
        *version* another than DMR's pinned one ("latest", a tag).  Blocks until it is
        installed: a download of minutes."""
        body = {"backend": self._backend(backend)}
        if version:
            body["version"] = version
        return self._call(_Call("POST", "/engines/install-backend", _encode_json(body), where=_DMR_ROOT,
                                replayable=False, answer=_NO_BODY))

    def uninstall_backend(self, backend: str) -> None:
        """Remove an engine's installation from DMR (install_backend() brings it back)."""
        return self._call(_Call("POST", "/engines/uninstall-backend", _encode_json({"backend": self._backend(backend)}),
                                where=_DMR_ROOT, replayable=False, answer=_NO_BODY))

    @staticmethod
    def _backend(backend: str) -> str:
        if backend not in KNOWN_ENGINES:
            raise ValueError("backend must be one of %s, not %s" % (", ".join(KNOWN_ENGINES), _shown(backend)))
        return backend

    def engine_status(self) -> AttrDict:
        """Each engine's state: ``{"llama.cpp": "Running: ...", "vllm": "Not Installed: ..."}``."""
        return self._call(_Call("GET", "/engines/status", where=_DMR_ROOT, shape=_object_shape))

    def running_models(self) -> List[AttrDict]:
        """The models loaded in an engine now (``docker model ps``)."""
        return self._call(_Call("GET", "/engines/ps", where=_DMR_ROOT, shape=_objects_shape))

    def unload(self, models: Optional[Sequence[str]] = None, *, all: bool = False,
               backend: Optional[str] = None) -> AttrDict:
        """Unload *models* (or ``all=True`` models) from memory; returns ``unloaded_runners``."""
        if not all and not models:
            raise ValueError("name the models to unload, or pass all=True")
        if isinstance(models, str):
            models = [models]
        return self._call(self._unload_call([split_model(m)[1] for m in models or ()], all, backend))

    @staticmethod
    def _unload_call(names: List[str], all: bool, backend: Optional[str]) -> _Call:
        body: Dict[str, Any] = {"all": bool(all)}
        if names:
            body["models"] = names
        if backend:
            body["backend"] = backend
        return _Call("POST", "/engines/unload", _encode_json(body), where=_DMR_ROOT, replayable=False,
                     shape=_object_shape)

    @staticmethod
    def _engine_route(route: str, engine: Optional[str]) -> str:
        """DMR's engine-management *route*, for one engine or for the default."""
        return "/engines" + ("/" + engine if engine else "") + route

    def version(self) -> str:
        """DMR's version string."""
        return self._call(_Call("GET", "/version", where=_DMR_ROOT, then=_version_string))


class _RunningModelCalls(_DMRCalls):
    """Running models (on DMR's API): configuration, loading, logs, metrics, tokens."""

    def configure(self, model: str, *, context_size: Optional[int] = None, keep_alive: Any = None,
                  runtime_flags: Optional[Sequence[str]] = None, reasoning_budget: Optional[int] = None,
                  engine: Optional[str] = None, mode: Optional[str] = None, reload: bool = False) -> Any:
        """Set how DMR runs *model* (``docker model configure``); DMR then loads it in the background.

        *context_size* in tokens; *keep_alive* how long an idle model stays
        loaded ("5m", "1h", "-1" never unload, "0" unload at once, or seconds);
        *runtime_flags* extra engine flags (``["--threads", "4"]``);
        *reasoning_budget* llama.cpp's thinking budget in tokens (-1 without
        limit, 0 no thinking); *mode* completion, embedding, reranking or
        image-generation.  A model already loaded keeps its settings: DMR
        answers 409 (ConflictError) unless *reload* unloads it first, then
        configures and loads it again, returning when it is loaded.
        """
        model_engine, name = split_model(model)
        engine = _check_engine(engine) or model_engine
        body = _configure_body(name, context_size, keep_alive, runtime_flags, reasoning_budget, mode)
        call = _Call("POST", self._engine_route("/_configure", engine), _encode_json(body), where=_DMR_ROOT, model=name,
                     retry_statuses=RETRY_STATUSES - {409}, answer=_NO_BODY, hints={
                         409: "the model is loaded, and a loaded model keeps its settings: unload it first "
                              "or pass reload=True"})
        if not reload:
            return self._call(call)
        return self._run(self._reload_plan(name, call, engine))

    def _reload_plan(self, name: str, configure: _Call, engine: Optional[str]) -> Any:
        yield self._unload_call([name], False, engine)
        yield configure
        yield self._preload_call(name, engine)

    def configuration(self, model: Optional[str] = None) -> List[AttrDict]:
        """What ``configure()`` set, per model (``docker model configure --show``): DMR's entries,
        with its Go field names (``Backend``, ``Model``, ``Mode``, ``Config``)."""
        query = _model_query(split_model(model)[1]) if model else ""
        return self._call(_Call("GET", "/engines/_configure" + query, where=_DMR_ROOT, shape=_objects_shape))

    def preload(self, model: str) -> None:
        """Load *model* without generating anything (``docker model run -d``), so the first real
        request does not wait for the load.  Returns when DMR has loaded it."""
        engine, name = split_model(model)
        return self._call(self._preload_call(name, engine))

    def _preload_call(self, name: str, engine: Optional[str]) -> _Call:
        # DMR answers X-Preload-Only with 200 and no body once the model is loaded; a server that
        # does not know the header answers one token, which loads the model all the same.
        body = _encode_json({"model": name, "messages": [{"role": "user", "content": ""}], "max_tokens": 1})
        return _Call("POST", "/chat/completions", body, engine=engine, model=name, answer=_NO_BODY,
                     extra=b"X-Preload-Only: true\r\n")

    def wait_until_loaded(self, model: str, timeout: float = 300.0, poll: float = 0.5) -> AttrDict:
        """Poll running_models() until *model* is loaded; its entry.  APITimeoutError after *timeout*."""
        name = split_model(model)[1]
        return self._run(self._wait_plan(name, _check_timeout(timeout, "timeout") or 300.0, poll))

    def load(self, model: str, timeout: float = 300.0) -> AttrDict:
        """preload() then wait_until_loaded(): *model* is loaded and ready when this returns."""
        engine, name = split_model(model)
        return self._run(self._load_plan(name, engine, _check_timeout(timeout, "timeout") or 300.0))

    def _load_plan(self, name: str, engine: Optional[str], timeout: float) -> Any:
        yield self._preload_call(name, engine)
        return (yield from self._wait_plan(name, timeout, 0.5))

    def _wait_plan(self, name: str, timeout: float, poll: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            running = yield _Call("GET", "/engines/ps", where=_DMR_ROOT, shape=_objects_shape)
            entry = next((item for item in running if _same_model(item.get("model_name"), name)), None)
            if entry is not None and not entry.get("loading"):
                return entry
            left = deadline - time.monotonic()
            if left <= 0:
                state = "is still loading" if entry is not None else "is not loaded (running_models() does not list it)"
                raise APITimeoutError("%s %s after %g s" % (name, state, timeout))
            yield min(poll, left)   # a pause, in seconds

    def logs(self, follow: bool = False, *, engines: bool = True) -> Any:
        """DMR's log (``docker model logs``): the text so far, or with ``follow=True`` a
        FollowStream of its lines as they are written (``engines=False`` leaves the engines'
        own lines out).  A followed log is silent between lines: *timeout* still bounds each
        wait, so follow with a client whose timeout is long enough (or None)."""
        route = "/logs?follow=%s&no-engines=%s" % ("true" if follow else "false", "false" if engines else "true")
        if follow:
            return self._call(_Call("GET", route, where=_DMR_ROOT, accept="text/plain", stream="logs"))
        return self._call(_Call("GET", route, where=_DMR_ROOT, accept="text/plain", answer=_TEXT_BODY))

    def requests(self, model: Optional[str] = None, *, follow: bool = False) -> Any:
        """DMR's record of the requests it served (as Docker Desktop shows them), for *model* or
        all; with ``follow=True`` a FollowStream of events (``event``: "connected",
        "new_request"; ``data``: the record) as requests come in."""
        route = "/engines/requests" + (_model_query(split_model(model)[1]) if model else "")
        if follow:
            return self._call(_Call("GET", route, where=_DMR_ROOT, accept="text/event-stream", stream="events"))
        return self._call(_Call("GET", route, where=_DMR_ROOT))

    def disk_usage(self) -> AttrDict:
        """Bytes DMR's models and its default engine take on disk (``docker model df``)."""
        return self._call(_Call("GET", "/engines/df", where=_DMR_ROOT, shape=_object_shape))

    def metrics(self) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
        """DMR's Prometheus metrics (``/metrics``) as ``{name: [(labels, value)]}``."""
        return self._call(_Call("GET", "/metrics", where=_DMR_ROOT, accept="text/plain", answer=_TEXT_BODY,
                                then=parse_metrics))

    def count_tokens(self, model: str, messages: Sequence[Message]) -> int:
        """How many tokens *messages* are for *model* (DMR's ``/v1/messages/count_tokens``, which
        it forwards to llama.cpp); system messages count as the system prompt."""
        engine, name = split_model(model)
        _check_messages(messages)
        body = _encode_json(dict(_anthropic_messages(messages), model=name))
        return self._call(_Call("POST", "/messages/count_tokens", body, engine=engine, model=name,
                                shape=_keyed_int_shape("input_tokens"), then=_input_tokens))

    def fits(self, model: str, messages: Sequence[Message], max_tokens: int = 0) -> AttrDict:
        """Whether *messages* plus *max_tokens* of answer fit *model*'s configured context.

        Returns ``fits`` (True, False, or None when the server cannot tell),
        ``prompt_tokens``, ``max_tokens``, ``context_size`` and ``reason``.
        """
        engine, name = split_model(model)
        _check_messages(messages)
        _whole_number(max_tokens, "max_tokens", 0)
        return self._run(self._fits_plan(name, engine, messages, max_tokens))

    def _fits_plan(self, name: str, engine: Optional[str], messages: Sequence[Message], max_tokens: int) -> Any:
        body = _encode_json(dict(_anthropic_messages(messages), model=name))
        tokens = yield _Call("POST", "/messages/count_tokens", body, engine=engine, model=name,
                             shape=_keyed_int_shape("input_tokens"), then=_input_tokens)
        answer = AttrDict(fits=None, prompt_tokens=tokens, max_tokens=max_tokens, context_size=None, reason="")
        try:
            entries = yield _Call("GET", "/engines/_configure" + _model_query(name),
                                  where=_DMR_ROOT, shape=_objects_shape)
        except (NotFoundError, InvalidResponseError):
            entries = []
        sizes = [entry["Config"].get("context-size") for entry in entries
                 if isinstance(entry.get("Config"), dict) and isinstance(entry["Config"].get("context-size"), int)]
        where = "the configured"
        if not sizes:   # llama.cpp's server tells its context in its model list (meta.n_ctx)
            try:
                listed = yield _Call("GET", "/models", engine=engine, shape=_model_list_shape, then=_model_list)
            except (NotFoundError, InvalidResponseError):
                listed = []
            sizes = [size for size in map(_served_context, listed, [name] * len(listed)) if size is not None]
            where = "the server's context of"
        if not sizes:
            answer["reason"] = ("no context size is configured for %s, so the server's default applies and it "
                                "does not say which: configure(%r, context_size=N) to know" % (name, name))
            return answer
        answer["context_size"] = sizes[-1]
        answer["fits"] = tokens + max_tokens <= answer.context_size
        answer["reason"] = "%d prompt + %d answer tokens %s %s %d" % (
            tokens, max_tokens, "fit in" if answer.fits else "do not fit in", where, answer.context_size)
        return answer


class _BaseClient(_OpenAICalls, _RunningModelCalls):
    """Every call, written once, for Client and AsyncClient to run on their transport."""


# ---------------------------------------------------------------------------
# Clients: Client and AsyncClient
# ---------------------------------------------------------------------------


class _Attempts:
    """The decisions of one call's attempts, for both clients (no I/O, no sleeping):
    where the request goes, and after each failure or answer whether to send again."""

    __slots__ = ("client", "call", "number", "pool", "url", "message", "debug")

    def __init__(self, client: _BaseClient, call: _Call):
        self.client = client
        self.call = call
        self.number = 0
        self.debug = _log.debugging()
        self.aim()

    def retries(self) -> int:
        return self.client.max_retries if self.call.retries is None else self.call.retries

    def aim(self) -> None:
        """Build the request for where the client points now."""
        self.pool = self.client._pool_for(self.call)
        self.url, self.message = self.client._request(self.call)

    def after_failure(self, wrapped: _RetryableConnectionError) -> float:
        """Seconds to wait before sending again after a failure without an answer; raises
        the documented error when retry_wait() says to give up."""
        client, failure = self.client, wrapped.error
        failure.url = self.url
        if wrapped.refused and self.number == 0 and client._socket_fallback and client._use_docker_socket():
            self.aim()   # localhost:12434 refused: Docker Desktop's socket, at once and not counted
            return 0.0
        origin = client._origin
        local = origin.unix_socket is not None or _is_local_host(origin.host or "")
        kind = _FAILED_REFUSED_LOCAL if wrapped.refused and local and origin.proxy is None else wrapped.kind
        wait, note = retry_wait(self.number, self.retries(), failure=kind, replayable=self.call.replayable)
        if wait is None:
            raise client._connection_failure(failure, note, wrapped.refused) from None
        if self.debug:
            _log.debug("%s %s failed (%s); retry %d in %.2f s",
                       self.call.method, self.url, failure.message, self.number + 1, wait)
        self.number += 1
        return wait

    def accepts(self, status: int) -> bool:
        """Whether an answer with *status* is the call's result (a 2xx, or any status for a
        call that takes them all); the rest are errors for after_error()."""
        if self.debug:
            _log.debug("%s %s -> %d", self.call.method, self.url, status)
        return 200 <= status < 300 or self.call.answer == _ANY_STATUS

    def after_error(self, exchange: _ExchangeBase, raw: bytes) -> Tuple[Optional[float], APIStatusError]:
        """(seconds to wait before sending again, or None to give up; the error) after an error
        answer whose body (its first MAX_ERROR_BODY bytes) is *raw*."""
        status = exchange.status
        wait, note = retry_wait(self.number, self.retries(), status=status, headers=exchange.headers,
                                retry_statuses=self.call.retry_statuses, early=exchange.early,
                                message=parse_error_body(raw.decode("utf-8", "replace"))[0])
        if wait is not None:
            if self.debug:
                _log.debug("%s %s got %d; retry %d in %.2f s", self.call.method, self.url, status,
                           self.number + 1, wait)
            self.number += 1
        return wait, self.client._status_error(exchange, raw, self.call, note)


class Client(_BaseClient):
    """A client for Docker Model Runner's OpenAI-compatible API.

    *base_url* is normalised by normalize_base_url().  None means the
    environment (DOCKER_MODEL_RUNNER_API_BASE, MODEL_RUNNER_HOST), else DMR
    is looked for: model-runner.docker.internal inside a Docker Desktop
    container, else DEFAULT_BASE_URL with Docker Desktop's socket as the
    fallback when it refuses.  *unix_socket* talks HTTP over that socket
    instead of TCP.  *context* names a `docker model context` (its host and
    TLS settings; with no base URL from the arguments or the environment, the
    active one is used).  *verify* is True (the system's CAs), False (no
    check) or a CA file or directory; by default MODEL_RUNNER_TLS_SKIP_VERIFY
    and MODEL_RUNNER_TLS_CA_CERT, then the context, decide, and with TLS on
    DMR's own CA is trusted as well.  *cert* is a client certificate (a file
    with its key, or a (cert, key) pair) for gateways that ask for one;
    *ssl_context* an ssl.SSLContext used as it is.  *api_key* defaults to DOCKER_MODEL_RUNNER_API_KEY,
    then DEFAULT_API_KEY, which stands for no key: like "", it sends no
    Authorization header.  *engine* picks
    the DMR engine unless a model name names one.  *timeout* bounds each wait
    for data (a model load can take minutes), *connect_timeout* the TCP
    connect; None waits forever.  *max_retries* extra attempts are made on
    connection failures and on 408/409/429/5xx answers, never after any byte
    of an answer arrived, and a call that changes DMR's state is never sent
    twice (the README's retry table has every case); 0 sends each request
    once.  *headers* are added to every request (they replace ours of the
    same name, Host included; Content-Length, Transfer-Encoding and
    Connection are the library's).  *max_response_bytes* caps a
    non-streaming answer (InvalidResponseError past it).

    Connections are kept alive and reused; one Client can be shared between
    threads.  Use it as a context manager, or call close().
    """

    _streams: Dict[str, Callable[..., Any]] = {"chat": ChatStream, "completion": CompletionStream, "pull": PullStream,
                "responses": ResponseStream, "export": _ExportStream,
                "push": lambda exchange, model, started: PullStream(exchange, model, started, "push"),
                "logs": lambda exchange, model, started: FollowStream(exchange, LogLines()),
                "events": lambda exchange, model, started: FollowStream(exchange, ServerEvents())}
    _sleep = staticmethod(time.sleep)   # tests replace it to keep retry waits short

    def _new_pools(self) -> None:
        _http_client()
        self._pool = _Pool(self._origin, self.connect_timeout, self.timeout)

    def _pool_here(self) -> _Pool:
        return self._pool

    def _own_pool(self, timeout: float) -> _Pool:
        pool = _Pool(self._origin, min(self.connect_timeout or timeout, timeout), timeout)
        pool.keeps = False
        return pool

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; streams still open close theirs when they end."""
        self._pool.close()

    # -- the blocking transport under the calls ------------------------------------

    def _call(self, call: _Call) -> Any:
        started = time.monotonic()
        exchange = self._send(call)
        if call.stream is not None:
            stream = self._stream(call, exchange, started)
            return stream.wait() if call.wait else stream
        return self._result(call, exchange, exchange.read_body(*self._limit(call)), started)

    def _run(self, plan: Generator[Any, Any, Any]) -> Any:
        """Run a call made of several: *plan* yields _Calls (and pauses, in seconds) and gets
        their results (or their errors, thrown in) until it returns the call's result."""
        try:
            step = next(plan)
            while True:
                try:
                    if isinstance(step, _Call):
                        outcome = self._call(step)
                    elif isinstance(step, _ToolTurn):
                        outcome = self._tools(step)
                    else:
                        outcome = self._sleep(step)
                except DMRError as exc:
                    step = plan.throw(exc)
                else:
                    step = plan.send(outcome)
        except StopIteration as done:
            return done.value

    @staticmethod
    def _tools(turn: _ToolTurn) -> List[Any]:
        """Run one turn's tool calls, one after another: their ToolSteps, in order."""
        steps = []
        for call in turn.calls:
            step, tool, kwargs = turn.prepare(call)
            if tool is not None:
                try:
                    result = tool.func(**kwargs)
                except Exception as exc:   # the model reads it; the loop goes on
                    step = turn.finish(step, error=exc)
                else:
                    step = turn.finish(step, result)
            else:
                step = turn.finish(step)
            if turn.on_step is not None:
                turn.on_step(step)
            steps.append(step)
        return steps

    def _send(self, call: _Call) -> _Exchange:
        """Send a request, retrying as retry_wait() decides; return a 2xx exchange."""
        attempts = _Attempts(self, call)
        wait: Optional[float]
        while True:
            try:
                exchange = self._exchange(attempts.pool, call.method, attempts.message, attempts.url,
                                          call.timeout, call.upload)
            except _RetryableConnectionError as failure:
                wait = attempts.after_failure(failure)
            else:
                if attempts.accepts(exchange.status):
                    return exchange
                wait, error = attempts.after_error(exchange, self._error_body(exchange))
                if wait is None:
                    raise error
            if wait:
                self._sleep(wait)

    def _exchange(self, pool: _Pool, method: str, message: bytes, url: str,
                  timeout: Optional[float] = None, upload: Optional[_Upload] = None) -> _Exchange:
        """Write the request in one go and read the response head.

        http.client opened the connection (TLS and proxy tunnel included);
        the request is written here, pre-encoded, in a single write instead
        of putheader() per header and two writes, and the answer is framed
        by _Exchange.  An *upload*'s pieces follow the head, one write each,
        until the server answers.
        """
        conn, reused = pool.take()
        exchange = _Exchange(pool, conn, url, timeout)
        try:
            try:
                conn.sock.sendall(message)
                for piece in upload.pieces() if upload is not None else ():
                    if exchange.answered_before_end(_has_input(conn.sock)):
                        break
                    conn.sock.sendall(piece)
            except OSError as exc:   # reset or timed out: the server may have answered without reading
                exchange.answered_early(exc, _has_input(conn.sock), upload)
            exchange.begin(method)
            return exchange
        except (OSError, _NoAnswer, ProtocolError) as exc:
            asked = _certificate_asked(conn)
            exchange.discard()
            raise _begin_failure(exc, method, url, exchange.timeout, reused, pool.origin, asked) from exc
        except BaseException:
            exchange.discard()
            raise

    @staticmethod
    def _error_body(exchange: _Exchange) -> bytes:
        try:
            return exchange.read_body(MAX_ERROR_BODY, truncate=True)
        except APIConnectionError:
            return b""


class AsyncClient(_BaseClient):
    """Client on asyncio: the same arguments, defaults, rules and errors.

    Every method of Client is here with the same name and arguments and
    returns an awaitable of the same result (argument errors are raised at
    the call, before anything is awaited).  ``stream=True`` gives an
    AsyncStream (``async for``, ``await final()``); ``pull(stream=True)``
    an AsyncPullStream.  Retries wait with asyncio.sleep; *timeout* is the
    silence allowed per read, *connect_timeout* the time to connect.
    Cancelling a call or a stream's iteration closes its connection at once.

    Connections are kept alive per event loop; one AsyncClient may be used
    from several loops in turn (asyncio.run() twice): each gets its own
    pool, closed when its loop shuts down.  ``async with AsyncClient() as
    client:`` or ``await client.aclose()``.
    """

    _streams: Dict[str, Callable[..., Any]] = {
                "chat": AsyncChatStream, "completion": AsyncCompletionStream, "pull": AsyncPullStream,
                "responses": AsyncResponseStream, "export": _AsyncExportStream,
                "push": lambda exchange, model, started: AsyncPullStream(exchange, model, started, "push"),
                "logs": lambda exchange, model, started: AsyncFollowStream(exchange, LogLines()),
                "events": lambda exchange, model, started: AsyncFollowStream(exchange, ServerEvents())}
    _closed = False

    def _new_pools(self) -> None:
        _asyncio()
        self._pools: Dict[Any, _AsyncPool] = {}

    async def _sleep(self, seconds: float) -> None:   # tests replace it to keep retry waits short
        await asyncio.sleep(seconds)

    def _pool_here(self) -> _AsyncPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            if self._closed:
                raise DMRError("this AsyncClient is closed; create a new one")
            for old in [old for old in self._pools if old.is_closed()]:
                self._pools.pop(old).close()
            pool = self._pools[loop] = _AsyncPool(self._origin, self.connect_timeout, self.timeout, loop)
        return pool

    def _own_pool(self, timeout: float) -> _AsyncPool:
        pool = _AsyncPool(self._origin, min(self.connect_timeout or timeout, timeout), timeout,
                          asyncio.get_running_loop(), guarded=False)
        pool.keeps = False
        return pool

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections (of every loop); streams still open close theirs when they end."""
        self._closed = True
        pools, self._pools = self._pools, {}
        here = asyncio.get_running_loop()
        for loop, pool in pools.items():
            if loop is here or loop.is_closed():
                pool.close()
            else:
                loop.call_soon_threadsafe(pool.close)
        await asyncio.sleep(0)   # the transports' connection_lost callbacks close the sockets now

    # -- the asyncio transport under the calls ----------------------------------------

    async def _call(self, call: _Call) -> Any:   # type: ignore[override]
        started = time.monotonic()
        exchange = await self._send(call)
        if call.stream is not None:
            stream = self._stream(call, exchange, started)
            return await stream.wait() if call.wait else stream
        return self._result(call, exchange, await exchange.read_body(*self._limit(call)), started)

    async def _run(self, plan: Generator[Any, Any, Any]) -> Any:   # type: ignore[override]
        """As Client._run, awaiting each call and pause."""
        try:
            step = next(plan)
            while True:
                try:
                    if isinstance(step, _Call):
                        outcome = await self._call(step)
                    elif isinstance(step, _ToolTurn):
                        outcome = await self._tools(step)
                    else:
                        outcome = await self._sleep(step)   # type: ignore[func-returns-value]
                except DMRError as exc:
                    step = plan.throw(exc)
                else:
                    step = plan.send(outcome)
        except StopIteration as done:
            return done.value

    _awaits_tools = True

    @staticmethod
    async def _tools(turn: _ToolTurn) -> List[Any]:   # type: ignore[override]
        """Run one turn's tool calls together (an async def tool awaited, a plain one in a worker
        thread): their ToolSteps, in the calls' order."""
        import functools
        import inspect

        async def run(call: Any) -> Any:
            step, tool, kwargs = turn.prepare(call)
            if tool is not None:
                try:
                    if tool.is_async:
                        result = await tool.func(**kwargs)
                    else:   # a plain def may block: a worker thread runs it, and the loop goes on
                        result = await asyncio.get_running_loop().run_in_executor(
                            None, functools.partial(tool.func, **kwargs))
                        if inspect.isawaitable(result):
                            result = await result
                except Exception as exc:   # the model reads it; the loop goes on
                    step = turn.finish(step, error=exc)
                else:
                    step = turn.finish(step, result)
            else:
                step = turn.finish(step)
            if turn.on_step is not None:
                seen = turn.on_step(step)
                if inspect.isawaitable(seen):
                    await seen
            return step

        # Every call runs to its end before anything is raised (an on_step that failed): none is
        # left running unawaited.
        steps = await asyncio.gather(*(run(call) for call in turn.calls), return_exceptions=True)
        for step in steps:
            if isinstance(step, BaseException):
                raise step
        return list(steps)

    async def _send(self, call: _Call) -> _AsyncExchange:
        """Send a request, retrying as retry_wait() decides (as Client._send)."""
        attempts = _Attempts(self, call)
        wait: Optional[float]
        while True:
            try:
                exchange = await self._exchange(attempts.pool, call.method, attempts.message, attempts.url,
                                                call.timeout, call.upload)
            except _RetryableConnectionError as failure:
                wait = attempts.after_failure(failure)
            else:
                if attempts.accepts(exchange.status):
                    return exchange
                wait, error = attempts.after_error(exchange, await self._error_body(exchange))
                if wait is None:
                    raise error
            if wait:
                await self._sleep(wait)

    async def _exchange(self, pool: _AsyncPool, method: str, message: bytes, url: str,
                        timeout: Optional[float] = None, upload: Optional[_Upload] = None) -> _AsyncExchange:
        """Write the request in one go and read the response head (as Client._exchange).

        An upload gives the loop a turn before each piece: what the server sent is read before
        more is written.  An answer in the middle (an error) ends the upload; unread, it would be
        lost with the socket when a write meets the server's close.
        """
        conn = pool.idle()
        reused = conn is not None
        if conn is None:
            conn = await pool.connect()
        exchange = _AsyncExchange(pool, conn, url, timeout)
        try:
            try:
                if conn.write(message):   # speed: no await unless the transport is full
                    await conn.drained(exchange.timeout)
                for piece in upload.pieces() if upload is not None else ():
                    await asyncio.sleep(0)
                    if exchange.answered_before_end(conn.has_input()):
                        break
                    if conn.write(piece):
                        await conn.drained(exchange.timeout)
            except OSError as exc:   # reset or timed out: the server may have answered without reading
                exchange.answered_early(exc, conn.has_input(), upload)
            await exchange.begin(method)
            return exchange
        except (OSError, _NoAnswer, ProtocolError) as exc:
            asked = _certificate_asked(conn)
            exchange.discard()
            raise _begin_failure(exc, method, url, exchange.timeout, reused, pool.origin, asked) from exc
        except BaseException:
            exchange.discard()   # cancelled: the connection is closed, never pooled half-read
            raise

    @staticmethod
    async def _error_body(exchange: _AsyncExchange) -> bytes:
        try:
            return await exchange.read_body(MAX_ERROR_BODY, truncate=True)
        except APIConnectionError:
            return b""


def _own_names(cls: Any) -> None:
    """Give *cls* its own copy of each public method written once in the groups above, named
    ``Client.pull`` (or ``AsyncClient.pull``): Python's errors about a call's arguments name
    the function by its ``__qualname__``, and a user never wrote ``_DMRCalls.pull()``."""
    import types

    for name in dir(cls):
        member = getattr(cls, name)
        if (name.startswith("_") and name != "__init__") or not isinstance(member, types.FunctionType) \
                or name in cls.__dict__:
            continue
        if member.__qualname__.startswith("_"):
            own = types.FunctionType(member.__code__, member.__globals__, name, member.__defaults__,
                                     member.__closure__)
            own.__kwdefaults__, own.__doc__, own.__annotations__ = member.__kwdefaults__, member.__doc__, \
                member.__annotations__
            own.__qualname__, own.__module__, own.__wrapped__ = "%s.%s" % (cls.__name__, name), __name__, member   # type: ignore[attr-defined]
            setattr(cls, name, own)


_own_names(Client)
_own_names(AsyncClient)


# ---------------------------------------------------------------------------
# Compatibility: the openai-python shape
# ---------------------------------------------------------------------------
#
# Names and forwarding only: what is checked, sent, retried and returned is the clients'
# (above).  OpenAI holds a Client, AsyncOpenAI an AsyncClient; each resource forwards create()
# to the client's call and returns what it returns: a result, a stream, or for AsyncOpenAI an
# awaitable of one.  Where openai-python's answer has another shape, _after() reshapes it.

#: openai-python's variables, read after DMR's own (ENV_BASE_URL, ENV_HOST, ENV_API_KEY).  The
#: key is read only with the base URL: an OpenAI key is never sent to a server it was not set for.
ENV_OPENAI_BASE_URL = "OPENAI_BASE_URL"
ENV_OPENAI_API_KEY = "OPENAI_API_KEY"

_NOT_GIVEN: Any = object()


def _after(result: Any, then: Callable[[Any], Any]) -> Any:
    """then(result); for an awaitable (AsyncOpenAI's calls), an awaitable of it."""
    if hasattr(result, "__await__"):
        async def finish() -> Any:
            return then(await result)
        return finish()
    return then(result)


class RawResponse:
    """What ``with_raw_response.create(...)`` returns: the HTTP answer's ``status_code``,
    ``headers`` and ``url``, and parse() for the result itself (a stream, for a stream)."""

    def __init__(self, status_code: int, headers: Any, url: str, parsed: Any):
        self.status_code, self.headers, self.url = status_code, headers, url
        self.http_response = self
        self._parsed = parsed

    def parse(self) -> Any:
        return self._parsed

    def __repr__(self) -> str:
        return "<RawResponse %d %s>" % (self.status_code, self.url)


def _raw_stream(result: Any) -> Any:
    """A stream asked for with_raw_response: its answer's status and headers, the stream itself."""
    if isinstance(result, (_Streamed, _AsyncStreamed)):
        return RawResponse(result.status_code, result.headers, result.url, result)
    return result


class _Page(AttrDict):
    """A list of models as openai-python pages it: ``.data``, and iterable over the models."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:   # type: ignore[override]
        return iter(self["data"])


def _decoded_embeddings(reply: Any) -> Any:
    """Embeddings the server sent as base64 (little-endian float32s), as lists of floats."""
    import array
    import base64

    for item in reply["data"]:
        vector = item.get("embedding")
        if isinstance(vector, str):
            floats = array.array("f", base64.b64decode(vector))
            if sys.byteorder == "big":
                floats.byteswap()
            item["embedding"] = floats.tolist()
    return reply


class _Resource:
    """A resource of OpenAI / AsyncOpenAI: its owner's client, and with_raw_response."""

    def __init__(self, owner: Any, raw: bool = False):
        self._owner = owner
        self._raw = raw

    @property
    def with_raw_response(self) -> Any:
        """The same resource, answering RawResponse (status_code, headers, parse())."""
        return type(self)(self._owner, raw=True)

    def _client(self) -> Any:
        return self._owner._raw_client if self._raw else self._owner._client

    def _params(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return self._owner._params(params)

    def _shaped(self, result: Any) -> Any:
        return _after(result, _raw_stream) if self._raw else result


class _ChatCompletions(_Resource):
    def create(self, *, model: str, messages: Sequence[Message], stream: bool = False, **params: Any) -> Any:
        """client.chat(): a ChatCompletion, or a ChatStream of ChatCompletionChunks."""
        return self._shaped(self._client().chat(model, messages, stream=stream, **self._params(params)))

    def parse(self, *, model: str, messages: Sequence[Message], response_format: Any = None, **params: Any) -> Any:
        """client.chat(schema=response_format): a ParsedChatCompletion (``message.parsed``;
        ``function.parsed_arguments`` for the tools)."""
        return self._shaped(self._client().chat(model, messages, schema=response_format, **self._params(params)))


class _Chat:
    def __init__(self, owner: Any):
        self.completions = _ChatCompletions(owner)


class _Beta:
    """openai-python 1.x had parse() under ``beta``: programs written then call it there."""

    def __init__(self, owner: Any):
        self.chat = owner.chat


class _Completions(_Resource):
    def create(self, *, model: str, prompt: Any, stream: bool = False, **params: Any) -> Any:
        """client.completions(): a TextCompletion, or a CompletionStream."""
        return self._shaped(self._client().completions(model, prompt, stream=stream, **self._params(params)))


class _Embeddings(_Resource):
    def create(self, *, model: str, input: Any, encoding_format: Any = _NOT_GIVEN, **params: Any) -> Any:
        """client.embeddings().  As openai-python does, the vectors are asked for as base64
        (a quarter of the bytes) and decoded to floats, unless *encoding_format* is given."""
        asked = "base64" if encoding_format is _NOT_GIVEN else encoding_format
        result = self._client().embeddings(model, input, encoding_format=asked, **self._params(params))
        if encoding_format is _NOT_GIVEN:
            result = _after(result, lambda reply: _decoded_embeddings(reply) if isinstance(reply, dict) else
                            RawResponse(reply.status_code, reply.headers, reply.url,
                                        _decoded_embeddings(reply.parse())))
        return result


class _InputItems(_Resource):
    def list(self, response_id: str) -> Any:
        """client.response_input_items()."""
        return self._client().response_input_items(response_id)


class _Responses(_Resource):
    def __init__(self, owner: Any, raw: bool = False):
        super().__init__(owner, raw)
        self.input_items = _InputItems(owner)

    def create(self, *, model: str, input: Any, stream: bool = False, **params: Any) -> Any:
        """client.responses(): a Response (``output_text``), or a ResponseStream of events."""
        return self._shaped(self._client().responses(model, input, stream=stream, **self._params(params)))

    def retrieve(self, response_id: str) -> Any:
        return self._client().response(response_id)

    def delete(self, response_id: str) -> Any:
        return self._client().delete_response(response_id)


class _Images(_Resource):
    def generate(self, *, model: str, prompt: str, **params: Any) -> Any:
        """client.images(): an ImagesResponse (``data[i].b64_json``; ``.image``, ``.save(path)``)."""
        return self._shaped(self._client().images(model, prompt, **self._params(params)))


class _Models(_Resource):
    def list(self) -> Any:
        """client.models(), as a page: ``.data``, iterable."""
        return _after(self._client().models(), lambda models: _Page(object="list", data=models))

    def retrieve(self, model: str) -> Any:
        """client.model()."""
        return self._client().model(model)

    def delete(self, model: str) -> Any:
        """client.delete_model(), answered as openai-python's ModelDeleted."""
        return _after(self._client().delete_model(model),
                      lambda _: AttrDict(id=model, deleted=True, object="model"))


class OpenAI:
    """openai-python's client over a Client: ``from dmr_client import OpenAI`` (or ``import
    dmr_client as openai``) and a program written for openai-python runs on DMR.

    It takes openai-python's arguments (*api_key*, *organization*, *project*,
    *base_url*, *timeout*, *max_retries*, *default_headers*, *default_query*)
    and ours (*engine*, *unix_socket*, *connect_timeout*, *max_response_bytes*, and the TLS
    and context ones: *verify*, *cert*, *ssl_context*, *context*);
    *http_client* and *websocket_base_url* are refused (there is no httpx here,
    and DMR serves no Realtime API).  With nothing set it finds DMR as Client()
    does, never api.openai.com: the base URL is *base_url*, else DMR's
    variables, else OPENAI_BASE_URL, else DMR found; the key is *api_key*,
    else DOCKER_MODEL_RUNNER_API_KEY, else OPENAI_API_KEY when the base URL
    came from OPENAI_BASE_URL, else none.  Resources: ``chat.completions``,
    ``completions``, ``embeddings``, ``models``; with_options() and
    with_raw_response as openai-python has them.  Results and errors are the
    module's (typed AttrDicts, the APIError family under openai-python's names).
    """

    _Client: Any = Client

    def __init__(self, *, api_key: Optional[str] = None, organization: Optional[str] = None,
                 project: Optional[str] = None, base_url: Optional[str] = None, websocket_base_url: Any = None,
                 timeout: Any = _NOT_GIVEN, max_retries: int = DEFAULT_MAX_RETRIES,
                 default_headers: Optional[Headers] = None, default_query: Optional[Mapping[str, Any]] = None,
                 http_client: Any = None, engine: Optional[str] = None, unix_socket: Optional[str] = None,
                 connect_timeout: Optional[float] = DEFAULT_CONNECT_TIMEOUT,
                 max_response_bytes: int = MAX_RESPONSE_BYTES, verify: Any = None, cert: Any = None,
                 ssl_context: Any = None, context: Optional[str] = None, **unknown: Any):
        name = type(self).__name__
        if unknown:
            raise _unexpected_keywords(name + "()", unknown, _keywords_of(OpenAI.__init__))
        if http_client is not None:
            raise TypeError("%s(http_client=) is not supported: dmr_client has its own transport (no httpx); "
                            "set timeout=, max_retries=, default_headers= instead" % name)
        if websocket_base_url is not None:
            raise TypeError("%s(websocket_base_url=) is not supported: Docker Model Runner serves no "
                            "Realtime (WebSocket) API" % name)
        if timeout is not _NOT_GIVEN and timeout is not None and not isinstance(timeout, (int, float)):
            raise TypeError("%s(timeout=) takes seconds (a number) or None, not %s: there is no "
                            "httpx.Timeout here (connect_timeout= bounds connecting)" % (name, _shown(timeout)))
        from_openai = base_url is None and unix_socket is None and context is None and _configured_base_url() is None \
            and bool(os.environ.get(ENV_OPENAI_BASE_URL))
        if from_openai:
            base_url = os.environ[ENV_OPENAI_BASE_URL]
        if api_key is None and not os.environ.get(ENV_API_KEY) and from_openai:
            api_key = os.environ.get(ENV_OPENAI_API_KEY) or None
        headers = dict(default_headers or {})
        if organization is not None:
            headers["OpenAI-Organization"] = organization
        if project is not None:
            headers["OpenAI-Project"] = project
        self._client = self._Client(base_url, api_key, engine=engine,
                                    timeout=DEFAULT_TIMEOUT if timeout is _NOT_GIVEN else timeout,
                                    connect_timeout=connect_timeout, max_retries=max_retries, headers=headers,
                                    unix_socket=unix_socket, max_response_bytes=max_response_bytes,
                                    verify=verify, cert=cert, ssl_context=ssl_context, context=context)
        self._query = dict(default_query or {})
        self._timeout: Any = _NOT_GIVEN   # with_options(timeout=): each call's own
        self._resources()

    def _resources(self) -> None:
        self._raw_client = self._client._copy(raw=True)
        self.chat = _Chat(self)
        self.completions = _Completions(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)
        self.responses = _Responses(self)
        self.images = _Images(self)
        self.beta = _Beta(self)

    def _params(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """A call's keywords with this client's per-call options added (with_options, default_query)."""
        if self._timeout is not _NOT_GIVEN and "timeout" not in params:
            params["timeout"] = self._timeout
        if self._query:
            params["extra_query"] = dict(self._query, **(params.get("extra_query") or {}))
        return params

    def with_options(self, *, timeout: Any = _NOT_GIVEN, max_retries: Optional[int] = None,
                     default_headers: Optional[Headers] = None,
                     default_query: Optional[Mapping[str, Any]] = None) -> Any:
        """A copy with these options that shares this client's connections."""
        copy = object.__new__(type(self))
        copy._client = self._client._copy(max_retries=max_retries, headers=default_headers)
        copy._query = dict(self._query, **(default_query or {}))
        copy._timeout = self._timeout if timeout is _NOT_GIVEN else timeout
        copy._resources()
        return copy

    @property
    def base_url(self) -> str:
        return self._client.base_url

    @property
    def api_key(self) -> str:
        return self._client.api_key

    @property
    def max_retries(self) -> int:
        return self._client.max_retries

    @property
    def timeout(self) -> Optional[float]:
        return self._client.timeout if self._timeout is _NOT_GIVEN else self._timeout

    def __repr__(self) -> str:
        return "<%s over %r>" % (type(self).__name__, self._client)

    def close(self) -> None:
        """Close the idle connections (those of its with_options copies too: they share them)."""
        self._client.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _named_as_used(resources: Mapping[str, Any]) -> None:
    """Errors Python raises about a call's arguments name the function by its ``__qualname__``:
    the resources' methods are named as a program calls them (``chat.completions.create()``)."""
    for path, resource in resources.items():
        for name, member in vars(resource).items():
            if callable(member) and not name.startswith("_"):
                member.__qualname__ = "%s.%s" % (path, name)


_named_as_used({"chat.completions": _ChatCompletions, "completions": _Completions, "embeddings": _Embeddings,
                "responses.input_items": _InputItems, "responses": _Responses, "images": _Images,
                "models": _Models})


class AsyncOpenAI(OpenAI):
    """openai-python's AsyncOpenAI over an AsyncClient: OpenAI's arguments and resources, each
    create() awaited; ``async with`` or ``await client.close()``."""

    _Client = AsyncClient

    async def close(self) -> None:   # type: ignore[override]
        await self._client.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The reader of stdout went away (`| head`): the status of a tool SIGPIPE ended, 128 + 13.
EXIT_BROKEN_PIPE = 141
#: stdout cannot be written: closed (`>&-`), a full disk (`> /dev/full`), an I/O error (EX_IOERR).
EXIT_OUTPUT = 74
#: The exit codes, as --help's epilog and the README list them.
_EXIT_CODES = ("Exit codes: 0 success, 1 API or connection error, 2 usage error (also stdin or PROMPT that is "
               "not UTF-8), 74 stdout cannot be written (closed, disk full), 130 Ctrl-C, 141 the reader of "
               "stdout went away (| head).")


class _OutputFailed(Exception):
    """stdout could not be written (not a closed pipe: that is BrokenPipeError, exit 141)."""


class _Output:
    """sys.stdout while the command line runs: a failed write becomes _OutputFailed (one line
    on stderr, EXIT_OUTPUT), text the terminal's encoding cannot show is replaced, not raised."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            try:
                return self.stream.write(text)
            except UnicodeEncodeError:   # a lone surrogate, or a character a Latin-1 terminal lacks
                encoding = getattr(self.stream, "encoding", None) or "utf-8"
                return self.stream.write(text.encode(encoding, "replace").decode(encoding))
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:   # ValueError: written after it was closed
            raise _OutputFailed(exc) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            raise _OutputFailed(exc) from None

    def __getattr__(self, name: str) -> Any:   # isatty, fileno, encoding, buffer ...
        return getattr(self.stream, name)


def _quiet_stdout(stream: Any) -> None:
    """Point stdout's descriptor at /dev/null, so that Python's flush at exit writes what is left
    there and cannot fail a second time (with a traceback, or exit status 120)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return   # not a real file (a test's StringIO): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    real = sys.stdout
    if real is None:   # started with stdout closed (`>&-`): all it could print would be lost
        if sys.stderr is not None:
            sys.stderr.write("dmr-client: stdout is closed, so nothing could be printed: run it with stdout "
                             "open (> FILE, or > /dev/null to discard the output)\n")
        return EXIT_OUTPUT
    sys.stdout = _Output(real)
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()   # what is still buffered fails here, inside, not at exit
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do (and keep Python's
        # flush at exit from failing on the same pipe).
        _quiet_stdout(real)
        return EXIT_BROKEN_PIPE
    except _OutputFailed as exc:
        _quiet_stdout(real)
        reason = exc.args[0]
        sys.stderr.write("dmr-client: cannot write to stdout: %s\n"
                         % (getattr(reason, "strerror", None) or reason))
        return EXIT_OUTPUT
    finally:
        sys.stdout = real


def _main(argv: Optional[Sequence[str]]) -> int:
    import argparse
    parser = _cli_parser(argparse)
    args = parser.parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        # A followed log or request record may be silent for hours: no read timeout then.
        timeout = None if getattr(args, "follow", False) else args.timeout
        if args.insecure:
            sys.stderr.write("dmr-client: warning: --insecure: the server's TLS certificate is not checked\n")
        if getattr(args, "offline", False):   # needs no server: no client either
            return args.run(None, args)
        client = Client(timeout=timeout, **_cli_connection(args))
        with client:
            return args.run(client, args)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as exc:
        if args.debug:
            raise
        sys.stderr.write("dmr-client: %s\n" % _cli_words(str(exc)))
        return EXIT_USAGE
    except DMRError as exc:
        if args.debug:
            raise
        sys.stderr.write("dmr-client: %s\n" % _cli_words(str(exc)))
        return EXIT_ERROR


def _cli_connection(args: Any) -> Dict[str, Any]:
    """Where a command's client connects, and how, from the global options (every client the
    command line makes: Client, and bench's AsyncClient)."""
    return dict(base_url=args.base_url, api_key=args.api_key, engine=args.engine, context=args.context,
                verify=False if args.insecure else args.cacert)


#: The library's words in messages, and what they are on the command line.
_CLI_WORDS = (("pass api_key= or set", "pass --api-key or set"), ("pass base_url=", "pass --base-url"),
              ("as base_url", "as --base-url"), ("raise timeout=", "raise --timeout"),
              ("pass force=True", "use --force"), ("pass reload=True", "use --reload"),
              ("see models() or `docker model ls`", "see `dmr-client models`"), ("see models()", "see `dmr-client models`"),
              ("see local_models() or `docker model pull", "see `dmr-client models` or `dmr-client pull"),
              ("see local_models()", "see `dmr-client models`"), ("`docker model pull", "`dmr-client pull"),
              ("raise max_retries", "try again"), ("image() sends", "--image takes"),
              ("raise max_response_bytes= if such answers are expected", "such answers need the library"),
              (" (or None to wait forever)", ""), ("pass base_url= or context=, not both", "pass --base-url or --context, not both"),
              ("import_model() loads what export_model()", "import loads what export"),
              ("(base_url=)", "(--base-url)"), ("(verify=)", "(--insecure or --cacert)"))


def _cli_words(message: str) -> str:
    """A library message in the command line's terms (`--base-url`, not `base_url=`)."""
    for library, command_line in _CLI_WORDS:
        message = message.replace(library, command_line)
    return message


def _cli_parser(argparse: Any) -> Any:
    parser = argparse.ArgumentParser(
        prog="dmr-client", description="Chat with, list, pull and remove Docker Model Runner models.",
        epilog="Environment: %s, %s, %s. %s" % (ENV_BASE_URL, ENV_HOST, ENV_API_KEY, _EXIT_CODES))
    # The global options go before or after the command (`dmr-client chat --base-url URL ...`), as
    # `docker model` and `git -C` users expect: each subcommand takes them too, with defaults that
    # leave the value given before the command (or the default) alone.
    def global_options(target: Any, defaults: bool) -> None:
        def default(value: Any) -> Any:
            return value if defaults else argparse.SUPPRESS
        target.add_argument("--base-url", default=default(None),
                            help="DMR or server address (default: environment, then %s)" % DEFAULT_BASE_URL)
        target.add_argument("--engine", choices=KNOWN_ENGINES, default=default(None),
                            help="DMR engine (default: from the URL or model)")
        target.add_argument("--api-key", default=default(None),
                            help="API key (default: $%s, then a dummy key)" % ENV_API_KEY)
        target.add_argument("--timeout", type=float, default=default(DEFAULT_TIMEOUT),
                            help="seconds of silence allowed (default: %s; model loads are slow)" % DEFAULT_TIMEOUT)
        target.add_argument("--debug", action="store_true", default=default(False),
                            help="log requests to stderr, show tracebacks")
        target.add_argument("--context", default=default(None), metavar="NAME",
                            help="a `docker model context` (default: $%s, else the active one)" % ENV_HOST)
        target.add_argument("--cacert", default=default(None), metavar="FILE",
                            help="trust this CA for https:// (default: $%s, the context's, DMR's)" % ENV_TLS_CA_CERT)
        target.add_argument("--insecure", action="store_true", default=default(False),
                            help="do not check the server's TLS certificate")
    global_options(parser, True)
    parser.add_argument("--version", action="version", version="dmr-client " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    global_options(common, False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    class Commands:   # add_parser() with the global options on every command
        @staticmethod
        def add_parser(name: str, **kwargs: Any) -> Any:
            return subparsers.add_parser(name, parents=[common], **kwargs)
    commands = Commands()

    chat = commands.add_parser("chat", help="chat with a model (interactive without a prompt at a terminal)",
                               description="Stream a model's answer to PROMPT. PROMPT '-', or no PROMPT with "
                               "piped stdin, reads stdin; PROMPT with piped stdin sends both (the prompt, a "
                               "blank line, then stdin). No PROMPT at a terminal starts a conversation: a pasted "
                               "block of lines is one message, only answers go to stdout (/help lists its "
                               "commands; Ctrl-C stops an answer).")
    chat.add_argument("-m", "--model", required=True, help="model, e.g. ai/smollm2")
    chat.add_argument("prompt", nargs="?", help="the message to send ('-' reads stdin)")
    chat.add_argument("--system", help="system message")
    chat.add_argument("--temperature", type=float,
                      help="sampling temperature: 0 picks the likeliest tokens, higher varies more (default: the "
                           "server's)")
    chat.add_argument("--max-tokens", type=int, metavar="N",
                      help="stop the answer after N tokens (default: the server's limit)")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("--json", action="store_true",
                      help="print the raw response, thinking (reasoning_content) included (one JSON chunk per "
                           "line when streaming)")
    chat.add_argument("--schema", metavar="FILE.json",
                      help="ask for an answer in this JSON Schema and print it as checked JSON (waits for "
                           "the whole answer; --json prints the raw response)")
    chat.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                      help="any other body parameter; VALUE is JSON if it parses (repeatable)")
    chat.add_argument("--image", action="append", default=[], metavar="FILE",
                      help="a picture (PNG, JPEG, GIF or WebP) to send with the message, for a vision model "
                           "(repeatable); in a conversation it goes with the first message (again with the "
                           "next one if that turn fails or is stopped)")
    chat.add_argument("--stats", action="store_true",
                      help="after the answer, print its speed on stderr (time to first token, tokens/s)")
    thinking = chat.add_mutually_exclusive_group()
    thinking.add_argument("--think", dest="think", action="store_true", default=None,
                          help="let a reasoning model think (its thinking is shown dimmed, apart)")
    thinking.add_argument("--no-think", dest="think", action="store_false", help="ask it not to think")
    chat.set_defaults(run=_cli_chat)

    models = commands.add_parser("models", help="list the models DMR has", description="List the models DMR has.")
    models.add_argument("--json", action="store_true", help="print the raw list")
    models.set_defaults(run=_cli_models)

    pull = commands.add_parser("pull", help="pull a model into DMR", description="Pull a model into DMR.")
    pull.add_argument("model")
    pull.set_defaults(run=_cli_pull)

    export = commands.add_parser("export", help="write a model to a tar file (for import elsewhere)",
                                 description="Write MODEL from DMR's store to the tar file PATH, which `import` "
                                             "loads into another DMR (an air-gapped one). A cut or Ctrl-C "
                                             "leaves no file at PATH.")
    export.add_argument("model")
    export.add_argument("path")
    export.set_defaults(run=_cli_export)

    load_tar = commands.add_parser("import", help="load a model from a tar file",
                                   description="Load the model in PATH (written by `export` or `docker model "
                                               "package`) into DMR's store; --tag names it.")
    load_tar.add_argument("path")
    load_tar.add_argument("--tag", metavar="NAME", help="the name to give it, e.g. myorg/smollm2:v2")
    load_tar.set_defaults(run=_cli_import)

    tag = commands.add_parser("tag", help="give a model another name",
                              description="Give model SOURCE the name TARGET (REPOSITORY[:TAG]).")
    tag.add_argument("source")
    tag.add_argument("target")
    tag.set_defaults(run=_cli_tag)

    push = commands.add_parser("push", help="push a model to its registry",
                               description="Push MODEL to its registry (Docker Hub, Hugging Face ...).")
    push.add_argument("model")
    push.set_defaults(run=_cli_push)

    image = commands.add_parser("image", help="generate an image",
                                description="Generate an image of PROMPT with MODEL (DMR's diffusers engine) "
                                            "and write it to OUT (with -n 2 or more: OUT-1.png, OUT-2.png ...).")
    image.add_argument("-m", "--model", required=True, help="an image model")
    image.add_argument("prompt")
    image.add_argument("-o", "--output", required=True, metavar="OUT", help="the file to write (PNG)")
    image.add_argument("-n", type=int, default=None, help="how many images")
    image.add_argument("--size", help="e.g. 512x512")
    image.set_defaults(run=_cli_image)

    remove = commands.add_parser("rm", help="remove a model", description="Remove a model from DMR.")
    remove.add_argument("model")
    remove.add_argument("--force", action="store_true", help="also when several tags point to it")
    remove.set_defaults(run=_cli_rm)

    status = commands.add_parser("status", help="engines and running models",
                                 description="Show DMR's engines and the models loaded now.")
    status.add_argument("--json", action="store_true", help="print running, endpoint, backends and models as JSON")
    status.set_defaults(run=_cli_status)

    ping = commands.add_parser("ping", help="is DMR there?", description="Exit 0 if DMR answers, 1 if not.")
    ping.set_defaults(run=_cli_ping)

    configure = commands.add_parser(
        "configure", help="set a model's context size and runtime options",
        description="Set how DMR runs MODEL (as `docker model configure`), or --show what is set. A loaded "
                    "model keeps its settings: --reload unloads it, configures it and loads it again.")
    configure.add_argument("model", nargs="?")
    configure.add_argument("--context-size", type=int, metavar="TOKENS",
                           help="the context window: prompt and answer together")
    configure.add_argument("--keep-alive", metavar="DURATION", help="idle time before unloading: 5m, 1h, -1 "
                           "(never), 0 (at once)")
    configure.add_argument("--runtime-flag", action="append", dest="runtime_flags", metavar="FLAG",
                           help="an extra engine flag (repeatable): --runtime-flag=--threads --runtime-flag=4")
    configure.add_argument("--reasoning-budget", type=int, metavar="TOKENS", help="-1 unlimited, 0 no thinking")
    configure.add_argument("--mode", choices=RUNNER_MODES, help="what the model is run for")
    configure.add_argument("--reload", action="store_true", help="unload, configure, load again")
    configure.add_argument("--show", action="store_true", help="print what is configured (for MODEL, or all)")
    configure.add_argument("--json", action="store_true", help="with --show: the raw entries")
    configure.set_defaults(run=_cli_configure)

    load = commands.add_parser("load", help="load a model now, so its first answer is fast",
                               description="Load MODEL without generating (as `docker model run -d`) and wait "
                                           "until it is loaded.")
    load.add_argument("model")
    load.set_defaults(run=_cli_load)

    ps = commands.add_parser("ps", help="the models loaded now", description="List the models DMR has loaded, "
                             "with whether each is loading or busy.")
    ps.add_argument("--json", action="store_true", help="print the raw list")
    ps.set_defaults(run=_cli_ps)

    df = commands.add_parser("df", help="disk used by models and engines", description="Show DMR's disk usage.")
    df.add_argument("--json", action="store_true", help="print the raw answer")
    df.set_defaults(run=_cli_df)

    metrics = commands.add_parser("metrics", help="DMR's Prometheus metrics", description="Print DMR's metrics, "
                                  "one sample a line (--json: {name: [[labels, value]]}).")
    metrics.add_argument("--json", action="store_true", help="print {name: [[labels, value]]} as JSON")
    metrics.set_defaults(run=_cli_metrics)

    logs = commands.add_parser("logs", help="DMR's log", description="Print DMR's log; -f follows it.")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("--no-engines", action="store_true", help="leave the engines' own lines out")
    logs.set_defaults(run=_cli_logs)

    requests = commands.add_parser("requests", help="the requests DMR served",
                                   description="Print DMR's record of the requests it served, one JSON object a "
                                               "line; -f follows new ones.")
    requests.add_argument("model", nargs="?")
    requests.add_argument("-f", "--follow", action="store_true", help="keep printing new requests (Ctrl-C stops)")
    requests.add_argument("--json", action="store_true", help="the raw answer as one JSON document (with -f: "
                          "one record a line, as without it)")
    requests.set_defaults(run=_cli_requests)

    context = commands.add_parser("context", help="the `docker model` contexts",
                                  description="List the contexts `docker model context` keeps (%s)." % _contexts_path())
    context_commands = context.add_subparsers(dest="context_command", metavar="SUBCOMMAND")
    context_commands.required = True
    listing = context_commands.add_parser("ls", aliases=["list"], help="list the contexts", parents=[common])
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    listing.set_defaults(run=_cli_context_ls, offline=True)

    bench = commands.add_parser(
        "bench", help="tokens/s and time to first token at several concurrency levels",
        description="Measure MODEL as `docker model bench` does: streamed chat requests at concurrency 1, 2, 4 "
                    "and 8 (--concurrency), %g s a level (--duration; --requests N ends a level after N "
                    "requests), after one answer not measured that loads the model. Prints a table (--json: "
                    "one JSON document); Ctrl-C stops and prints what was measured so far." % BENCH_DURATION)
    bench.add_argument("model_arg", nargs="?", metavar="MODEL", help="the model (or -m MODEL)")
    bench.add_argument("-m", "--model", help="the model, e.g. ai/smollm2")
    bench.add_argument("--concurrency", metavar="N,N,...", help="requests at once, a level each (default: 1,2,4,8)")
    bench.add_argument("--duration", type=float, metavar="SECONDS",
                       help="seconds a level sends requests (default: %g, or none with --requests)" % BENCH_DURATION)
    bench.add_argument("--requests", type=int, metavar="N", help="requests a level, in all (with --duration: "
                       "whichever ends first)")
    bench.add_argument("--prompt", default=BENCH_PROMPT, help="the message sent (default: docker model bench's)")
    bench.add_argument("--max-tokens", type=int, metavar="N", help="cap each answer (default: none)")
    bench.add_argument("--json", action="store_true", help="print the results as one JSON document")
    bench.set_defaults(run=_cli_bench)
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


def _print_json(value: Any, pretty: bool = False, out: Any = None) -> None:
    """*value* as one line of JSON (or indented, *pretty*), text as it is (not \\u escapes)."""
    (out or sys.stdout).write(json.dumps(value, ensure_ascii=False, indent=2 if pretty else None) + "\n")


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
    """'loading model... 12s' on stderr while the first token is late (a model load), terminals only
    (the README quotes WORDS)."""

    WORDS = "loading model..."

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
            self.terminal.status("%s %s %ds" % (frames[tick % 4], self.WORDS, time.monotonic() - started))
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


# ---------------------------------------------------------------------------
# Command line: chat
# ---------------------------------------------------------------------------


#: Body fields the command line sets itself, and the option that does.
_CLI_OWN_FIELDS = {"model": "the model is -m MODEL", "messages": "the messages are PROMPT (and --system)",
                   "stream": "the answer streams unless --no-stream"}


def _cli_params(args: Any) -> Dict[str, Any]:
    params: Dict[str, Any] = {"temperature": args.temperature, "max_tokens": args.max_tokens, "think": args.think}
    for item in args.param:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError("-p takes KEY=VALUE, e.g. -p top_k=40 or -p 'stop=[\"\\n\"]' (got %r)" % item)
        if key in _CLI_OWN_FIELDS:
            raise ValueError("-p %s: %s" % (key, _CLI_OWN_FIELDS[key]))
        try:
            params[key] = json.loads(value)
        except RecursionError:
            raise ValueError("-p %s: the JSON value is nested too deeply to send" % key) from None
        except ValueError:
            params[key] = value
    return params


def _cli_chat(client: Client, args: Any) -> int:
    terminal = _Terminal(sys.stdout, sys.stderr)
    messages: List[Dict[str, Any]] = [{"role": "system", "content": args.system}] if args.system else []
    params = _cli_params(args)
    pictures = _cli_images(args.image)
    if args.system:
        _cli_text(args.system, "--system")
    if args.prompt == "-" or (args.prompt is None and not _isatty(sys.stdin)):
        prompt = _read_stdin().rstrip("\n")
        if not prompt.strip():
            raise ValueError("stdin is empty: pipe a prompt in, or pass PROMPT")
    elif args.prompt is None:
        if args.schema:
            raise ValueError("--schema answers one PROMPT: pass PROMPT (or pipe it in)")
        return _cli_conversation(client, args, messages, params, terminal, pictures)
    else:
        prompt = _cli_text(args.prompt, "PROMPT")
        if not _isatty(sys.stdin):   # `git diff | dmr-client chat -m M "Review:"`: the prompt, then what was piped
            piped = _read_stdin().rstrip("\n")
            if piped.strip():
                prompt += "\n\n" + piped
        if not prompt.strip():
            raise ValueError("PROMPT is empty: say something, or pipe a prompt in")
    messages.append(user(prompt, *pictures) if pictures else {"role": "user", "content": prompt})
    if args.schema:
        return _cli_typed_answer(client, args, messages, params, terminal)
    _cli_answer(client, args, messages, params, terminal)
    return EXIT_OK


def _read_stdin() -> str:
    """All of stdin as text, read as UTF-8 whatever the locale says: bytes that are not UTF-8 (a
    Latin-1 file) are a usage error, never lone surrogates sent to a server that cannot read them."""
    if sys.stdin is None:   # closed (`<&-`)
        return ""
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(data, str):
        return _cli_text(data, "stdin")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("stdin is not UTF-8 (byte 0x%02x at offset %d): convert it first, e.g. "
                         "`iconv -f latin1 -t utf-8 FILE | dmr-client chat ...`" % (data[exc.start], exc.start)) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")   # newlines as text mode reads them


def _cli_text(text: str, where: str) -> str:
    """*text* from the command line (argv, a terminal's line), refused if it holds bytes that were not
    UTF-8 (Python keeps them as lone surrogates, which no server can read)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = text[exc.start].encode("utf-8", "surrogateescape") if "\udc80" <= text[exc.start] <= "\udcff" else b""
        byte = " (byte 0x%02x at character %d)" % (raw[0], exc.start) if raw else ""
        raise ValueError("%s is not UTF-8%s: set the terminal to UTF-8 (e.g. LANG=C.UTF-8), or pipe the text "
                         "in through `iconv -f latin1 -t utf-8`" % (where, byte)) from None
    return text


def _cli_schema(path: str) -> Dict[str, Any]:
    """The JSON Schema in the file *path* (ValueError, a usage error, when it is not one)."""
    try:
        with open(path, "rb") as f:
            schema = loads(f.read(MAX_RESPONSE_BYTES))
    except FileNotFoundError:
        raise ValueError("--schema %s: no such file" % path) from None
    except OSError as exc:
        raise ValueError("--schema %s: %s" % (path, exc.strerror or exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("--schema %s is not JSON (%s): write the schema as a JSON object" % (path, exc)) from None
    if not isinstance(schema, dict):
        raise ValueError("--schema %s holds %s, not a JSON Schema object" % (path, _json_kind(schema)))
    wrong = _schema_type_problem(schema)
    if wrong is not None:
        raise ValueError("--schema %s: %s" % (path, wrong))
    return schema


def _cli_typed_answer(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
                      terminal: _Terminal) -> int:
    """Ask for an answer in --schema's schema; print it as JSON once it was checked."""
    schema = _cli_schema(args.schema)
    if args.json:   # the raw response, whatever it holds; then whether it fits
        response_format = _response_format(schema, None)
        with _Spinner(terminal):
            raw = client.chat(args.model, messages, response_format=response_format, **params)
        _print_json(raw, out=terminal.stdout)
        terminal.stdout.flush()
        capped = params.get("max_tokens") is not None
        reply = _Parse(response_format, None, {}, capped)(raw)
    else:
        with _Spinner(terminal):
            reply = client.chat(args.model, messages, schema=schema, **params)
        terminal.stdout.write(json.dumps(reply.parsed, indent=2, ensure_ascii=False) + "\n")
    terminal.stdout.flush()
    _cli_stats(terminal, args, reply.stats, reply)
    return EXIT_OK


def _cli_images(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """The image parts of `chat --image`; a file that is missing or not a picture is a usage error."""
    parts = []
    for path in paths:
        try:
            parts.append(image(path))
        except FileNotFoundError:
            raise ValueError("--image %s: no such file" % path) from None
        except OSError as exc:   # a directory, unreadable: one line, exit 2
            raise ValueError("--image %s: %s" % (path, exc.strerror or exc)) from None
        except ValueError as exc:   # not a picture
            raise ValueError(_cli_words(str(exc))) from None
    return parts


def _cli_answer(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
                terminal: _Terminal) -> str:
    """Send *messages*, print the answer as it comes, return its text."""
    out = terminal.stdout
    thinking = _Thinking(terminal, shown=not args.json)
    with _Spinner(terminal) as spinner:
        if args.no_stream:
            reply = client.chat(args.model, messages, **params)
            spinner.stop()
            if args.json:
                _print_json(reply, out=out)
            message = reply.choices[0].message if reply.get("choices") else AttrDict()
            text = message.get("content") or ""
            if not args.json:
                thinking.write(message.get("reasoning_content") or "")
                thinking.end()
                out.write(text + "\n")
            out.flush()
            _cli_stats(terminal, args, reply.stats, reply)
            return text
        with client.chat(args.model, messages, stream=True, **params) as stream, _EndsTheLine(out) as line:
            parts = []
            for chunk in stream:
                spinner.stop()
                if args.json:
                    _print_json(chunk, out=out)
                    out.flush()
                    continue
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        thinking.write(reasoning)
                    piece = delta.get("content")
                    if piece:
                        thinking.end()
                        parts.append(piece)
                        out.write(piece)
                        out.flush()
                        line.open = not piece.endswith("\n")
            thinking.end()
            if not args.json:
                out.write("\n")
                out.flush()
            if args.stats:
                _cli_stats(terminal, args, stream.stats, stream.final())
            return "".join(parts)


class _EndsTheLine:
    """Ends a half-written answer's line if the stream breaks, so the error that follows on
    stderr starts a line of its own instead of trailing the partial answer."""

    def __init__(self, out: Any):
        self.out, self.open = out, False

    def __enter__(self) -> _EndsTheLine:
        return self

    def __exit__(self, kind: Any, *exc_info: Any) -> None:
        if kind is not None and self.open:
            self.out.write("\n")
            self.out.flush()


class _Thinking:
    """A reasoning model's thinking, on stderr before the answer: dimmed at a colour terminal,
    plain in a pipe, never in --json output or mixed into the answer on stdout."""

    def __init__(self, terminal: _Terminal, shown: bool):
        self.terminal, self.shown, self.open = terminal, shown, False

    def write(self, text: str) -> None:
        if not self.shown or not text:
            return
        err = self.terminal.stderr
        if not self.open:
            self.open = True
            err.write("\x1b[2m" if self.terminal.color else "[thinking] ")
        err.write(text)
        err.flush()

    def end(self) -> None:
        if self.open:
            self.open = False
            self.terminal.stderr.write("\x1b[0m\n" if self.terminal.color else "\n[/thinking]\n")
            self.terminal.stderr.flush()


def _cli_stats(terminal: _Terminal, args: Any, stats: Optional[AttrDict], reply: Mapping[str, Any]) -> None:
    """--stats: the answer's speed, one line on stderr."""
    if not args.stats or stats is None:
        return
    def figure(value: Any, unit: str, digits: int = 1) -> str:
        return "?" if value is None else "%.*f %s" % (digits, value, unit)
    def count(value: Any) -> str:
        return "? tokens" if value is None else "%s token%s" % (value, "" if value == 1 else "s")
    # The context's size is not in the answer: the tokens it holds are said, not "of how many".
    context = "" if stats.context_tokens is None else ", %s context tokens used" % stats.context_tokens
    terminal.stderr.write("[stats] first token %s, prompt %s, generation %s; %s generated%s, in %s (%s)\n" % (
        figure(stats.time_to_first_token_s, "s", 2), figure(stats.prompt_tokens_per_s, "tokens/s"),
        figure(stats.generated_tokens_per_s, "tokens/s"), count(stats.completion_tokens), context,
        figure(stats.total_s, "s", 2),
        "measured by the server" if stats.source == "server"
        else "measured here" if stats.source else "not measured"))
    terminal.stderr.flush()


_REPL_HELP = """commands (a line of its own; anything else is sent to the model):
  /help     this list
  /reset    forget the conversation (the system message stays)
  /exit     leave (also /quit, /bye, Ctrl-D)
  //text    send a message that starts with "/"
A pasted block of lines is one message. Ctrl-C stops an answer; the stopped turn is dropped from the
conversation, the session goes on.
"""


class _Turns:
    """What the person at the terminal says, a turn at a time (the conversation's input side).

    A pasted block of lines is one turn: after a line, the lines already waiting on stdin (pasted
    with it, or typed ahead) are read into the same turn; with GNU readline, bracketed paste also
    puts a whole paste into the line being edited (sent at Enter) where escape codes are allowed.
    A terminal hands over one line per read, so what select() sees waiting is exactly what was not
    read yet.  The prompt goes to the terminal, never into a redirected stdout (`| tee log` gets
    the answers only): input() edits with readline only when stdout is the terminal, so with stdout
    redirected, fd 1 points at the terminal (stderr's, or /dev/tty) while a line is read; with no
    terminal to show it on, the prompt goes to stderr.
    """

    PROMPT, MORE = ">>> ", "... "

    def __init__(self, stdin: Any, stdout: Any, stderr: Any, escape_codes: bool = True):
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.ended = False   # Ctrl-D came in the middle of a pasted block: leave after its answer
        self.screen: Optional[int] = None   # the terminal's fd that stands in for stdout while reading
        self.opened = False
        self.fd = self._fileno(stdin)
        self.editing = False
        if self.fd is not None and os.isatty(self.fd) and stdin is sys.stdin and stdout is sys.stdout:
            out = self._fileno(stdout)
            if out is not None and os.isatty(out):
                self.editing = True
            elif out == 1:
                err = self._fileno(stderr)
                if err is not None and os.isatty(err):
                    self.screen = err
                else:
                    try:
                        self.screen, self.opened = os.open("/dev/tty", os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)), True
                    except OSError:
                        pass
                self.editing = self.screen is not None
        if self.editing:
            try:
                import readline   # line editing and history for input(), where the platform has it
            except ImportError:
                pass
            else:
                if escape_codes and "libedit" not in (readline.__doc__ or ""):
                    readline.parse_and_bind("set enable-bracketed-paste on")   # Python turns it off

    @staticmethod
    def _fileno(stream: Any) -> Optional[int]:
        try:
            return stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None

    def close(self) -> None:
        if self.opened and self.screen is not None:
            os.close(self.screen)
            self.screen = None

    def turn(self) -> str:
        """The next turn: a line, with the lines pasted with it (EOFError at Ctrl-D, KeyboardInterrupt
        at Ctrl-C)."""
        if self.ended:
            raise EOFError
        lines = [self._line(self.PROMPT)]
        while self._waiting():
            try:
                lines.append(self._line(self.MORE))
            except EOFError:
                self.ended = True
                break
        return "\n".join(lines)

    def _waiting(self) -> bool:
        """Whether more input is already there (pasted with the line just read, or typed ahead)."""
        if self.fd is None:
            return False
        try:
            return bool(select.select([self.fd], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def _line(self, prompt: str) -> str:
        if not self.editing:   # no terminal to edit on: the prompt on stderr, the line from stdin
            self.stderr.write(prompt)
            self.stderr.flush()
            line = self.stdin.readline()
            if not line:
                raise EOFError
            return line[:-1] if line.endswith("\n") else line
        if self.screen is None:
            return input(prompt)
        self.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(self.screen, 1)
            return input(prompt)
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _cli_first_check(client: Client, model: str) -> Tuple[Optional[str], bool]:
    """What is wrong before the conversation's first message: (one line or None, whether to go on).

    Nothing answering at the URL, or a key refused, ends it; a model DMR does not have ends it (DMR
    answers chats only with the models it has); a model another server does not list is only said
    (llama.cpp's server answers with its one model whatever the name)."""
    kind = client.server_kind()
    if kind is None:
        return ("neither DMR nor an OpenAI-compatible server answers at %s: start DMR, or pass --base-url or set "
                "%s (`dmr-client --debug ping` shows what was tried)" % (client.base_url, ENV_BASE_URL)), False
    try:
        client.model(model)
    except NotFoundError:
        if kind == "dmr":
            return ("Docker Model Runner at %s has no model %s: `dmr-client pull %s` fetches it, `dmr-client "
                    "models` lists what it has" % (client.base_url, model, model)), False
        return ("(the server at %s does not list %s; sending to it anyway: `dmr-client models` lists what it "
                "has)" % (client.base_url, model)), True
    except APIStatusError as exc:
        if exc.status_code in (401, 403) or exc.message.lower() == _UNCHECKED_KEY:
            return _cli_words(str(exc)), False
    except DMRError:
        pass   # it answered server_kind(); the first message will say what else is wrong
    return None, True


def _cli_conversation(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
                      terminal: _Terminal, pictures: Sequence[Dict[str, Any]] = ()) -> int:
    """An interactive, multi-turn chat at a terminal; *pictures* go with the first message that is
    answered.  Answers go to stdout; the prompt, hints and errors to the terminal (see _Turns)."""
    problem, go_on = _cli_first_check(client, args.model)
    if problem:
        sys.stderr.write(problem + "\n" if go_on else "dmr-client: %s\n" % problem)
    if not go_on:
        return EXIT_ERROR
    turns = _Turns(sys.stdin, sys.stdout, sys.stderr, escape_codes=terminal.color)
    try:
        return _cli_turns(client, args, messages, params, terminal, pictures, turns)
    finally:
        turns.close()


def _cli_turns(client: Client, args: Any, messages: List[Dict[str, Any]], params: Dict[str, Any],
               terminal: _Terminal, pictures: Sequence[Dict[str, Any]], turns: _Turns) -> int:
    start = list(messages)
    sys.stderr.write("Chatting with %s at %s. /help lists the commands, /exit or Ctrl-D leaves, Ctrl-C "
                     "stops an answer.\n" % (args.model, client.base_url))
    if pictures:
        sys.stderr.write("(%d picture%s will go with your first message)\n" % (len(pictures), "s" * (len(pictures) > 1)))
    while True:
        try:
            line = turns.turn()
        except EOFError:
            sys.stderr.write("\n")
            return EXIT_OK
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            continue
        except UnicodeDecodeError:   # a terminal set to Latin-1 while the locale says UTF-8
            sys.stderr.write("dmr-client: that line is not UTF-8: set the terminal to UTF-8 (not sent)\n")
            continue
        command = line.strip()
        if not command:
            continue
        try:
            _cli_text(line, "that line")
        except ValueError as exc:
            sys.stderr.write("dmr-client: %s (not sent)\n" % exc)
            continue
        if command.startswith("//"):   # a message that starts with "/"
            line = line.replace("//", "/", 1)
        elif command.startswith("/") and len(command.split()) == 1:
            if command in ("/exit", "/quit", "/bye"):
                return EXIT_OK
            if command == "/reset":
                messages[:] = start
                sys.stderr.write("(conversation forgotten)\n")
            elif command in ("/help", "/?"):
                sys.stderr.write(_REPL_HELP)
            else:
                sys.stderr.write("unknown command %s (not sent; /help lists the commands, // starts a message "
                                 "with /)\n" % command)
            continue
        messages.append(user(line, *pictures) if pictures else {"role": "user", "content": line})
        try:
            answer = _cli_answer(client, args, messages, params, terminal)
        except KeyboardInterrupt:
            sys.stderr.write("\n(answer stopped)\n")
            messages.pop()
            continue
        except DMRError as exc:
            sys.stderr.write("dmr-client: %s\n" % _cli_words(str(exc)))
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": answer})
        pictures = ()


# ---------------------------------------------------------------------------
# Command line: models and the runner
# ---------------------------------------------------------------------------


def _cli_models(client: Client, args: Any) -> int:
    try:
        models = client.local_models()
    except (NotFoundError, InvalidResponseError):
        # Not DMR's store (a plain llama.cpp server, a gateway): the OpenAI list is what there is.
        listed = client.models()
        if args.json:
            _print_json(listed, pretty=True)
            return EXIT_OK
        served = [_served_row(m) for m in listed if isinstance(m, dict)]
        if any(any(row[1:]) for row in served):   # llama.cpp's server tells more than names
            _cli_table([("MODEL", "PARAMETERS", "QUANTIZATION", "SIZE", "CONTEXT")] + served)
        else:   # a gateway, another server: names only, no empty columns
            _cli_table([("MODEL",)] + [row[:1] for row in served])
        return EXIT_OK
    if args.json:
        _print_json(models, pretty=True)
        return EXIT_OK
    rows = [("MODEL", "PARAMETERS", "QUANTIZATION", "SIZE")]
    for model in models:
        config = model.get("config") or {}
        tags = model.get("tags") or [model.get("id", "")]
        for tag in tags:
            name = tag[len("docker.io/"):] if isinstance(tag, str) and tag.startswith("docker.io/") else tag
            rows.append((str(name), str(config.get("parameters") or ""), str(config.get("quantization") or ""),
                         str(config.get("size") or "")))
    _cli_table(rows)
    return EXIT_OK


def _cli_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")


def _served_row(model: Mapping[str, Any]) -> Tuple[str, str, str, str, str]:
    """A row of `models` for a model of an OpenAI list: what llama.cpp's server tells in ``meta``
    (parameters, file type, size, context), blank where a server tells nothing."""
    meta: Mapping[str, Any] = model["meta"] if isinstance(model.get("meta"), dict) else {}

    def number(key: str) -> Optional[float]:
        value = meta.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    params, size, context = number("n_params"), number("size"), number("n_ctx")
    return (str(model.get("id")), _count(params) if params is not None else "", str(meta.get("ftype") or ""),
            _mib(int(size)) if size is not None else "", "{:,}".format(int(context)) if context is not None else "")


def _count(number: float) -> str:
    """A parameter count as DMR shows it: 361.82 M, 1.24 B."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if number >= scale:
            return "%.2f %s" % (number / scale, unit)
    return "%d" % number


def _cli_pull(client: Client, args: Any) -> int:
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


class _Transfer:
    """A transfer's progress on stderr, called as progress(bytes, total or None): a bar
    rewritten in place at a terminal; in a pipe a plain line at each tenth (each 100 MB
    when the total is not known)."""

    def __init__(self, terminal: _Terminal, label: str):
        self.terminal, self.label = terminal, label
        self.started = time.monotonic()
        self.shown = -1
        self.line = self.printed = ""

    def __call__(self, done: int, total: Optional[int]) -> None:
        rate = _size(done / max(time.monotonic() - self.started, 1e-3))
        if total:
            percent = min(100, int(100 * done / total))
            line, step = "%s  %3d%%  %s / %s  %s/s" % (self.label, percent, _size(done), _size(total), rate), percent // 10
        else:
            percent, line, step = -1, "%s  %s  %s/s" % (self.label, _size(done), rate), done // 100000000
        if self.terminal.interactive_err:
            bar = "#" * (percent // 5) + "." * (20 - percent // 5) if percent >= 0 else "~" * 20
            self.terminal.status("[%s] %s" % (bar, line))
        elif step != self.shown:
            self._print(line)
        self.shown, self.line = step, line

    def _print(self, line: str) -> None:
        self.terminal.stderr.write(line + "\n")
        self.terminal.stderr.flush()
        self.printed = line

    def end(self) -> None:
        """Clear the bar; in a pipe, the last figures when they were not the last line printed."""
        self.terminal.clear_status()
        if not self.terminal.interactive_err and self.line != self.printed:
            self._print(self.line)


def _cli_export(client: Client, args: Any) -> int:
    progress = _Transfer(_Terminal(sys.stdout, sys.stderr), args.model)
    try:
        written = client.export_model(args.model, args.path, progress=progress)
    except OSError as exc:   # the disk filled, the directory went: nothing is left at PATH
        sys.stderr.write("dmr-client: cannot write %s: %s\n" % (args.path, exc.strerror or exc))
        return EXIT_ERROR
    finally:
        progress.end()
    sys.stdout.write("%s: %s written to %s\n" % (args.model, _size(written.bytes), written.path))
    return EXIT_OK


def _cli_import(client: Client, args: Any) -> int:
    progress = _Transfer(_Terminal(sys.stdout, sys.stderr), os.path.basename(args.path))
    try:
        loaded = client.import_model(args.path, tag=args.tag, progress=progress)
    finally:
        progress.end()
    sys.stdout.write("%s: loaded %s%s\n" % (args.path, loaded.id, " as " + loaded.tagged if args.tag else ""))
    return EXIT_OK


def _cli_tag(client: Client, args: Any) -> int:
    client.tag_model(args.source, args.target)
    sys.stdout.write("Model %s tagged %s\n" % (args.source, args.target))
    return EXIT_OK


def _cli_push(client: Client, args: Any) -> int:
    progress = _Transfer(_Terminal(sys.stdout, sys.stderr), args.model)
    layers: Dict[str, int] = {}
    try:
        with client.push_model(args.model, stream=True) as events:
            for event in events:
                if event.get("type") == "progress":
                    layer = event.get("layer") or {}
                    layers[str(layer.get("id"))] = int(layer.get("current") or 0)
                    progress(sum(layers.values()), int(event.get("total") or 0) or None)
                elif event.get("type") == "warning":
                    progress.end()
                    sys.stderr.write("warning: %s\n" % event.get("message"))
    finally:
        progress.end()
    sys.stdout.write("%s\n" % (events.result.get("message") or "pushed"))
    return EXIT_OK


def _cli_image(client: Client, args: Any) -> int:
    reply = client.images(args.model, args.prompt, n=args.n, size=args.size)
    stem, dot, suffix = args.output.rpartition(".")
    for number, image in enumerate(reply.data, 1):
        path = args.output if len(reply.data) == 1 else (
            "%s-%d.%s" % (stem, number, suffix) if dot else "%s-%d" % (args.output, number))
        image.save(path)
        sys.stdout.write("%s\n" % path)
    return EXIT_OK


def _cli_rm(client: Client, args: Any) -> int:
    for action in client.delete_model(args.model, force=args.force):
        for verb, what in action.items():
            sys.stdout.write("%s: %s\n" % (verb, what))
    return EXIT_OK


def _cli_status(client: Client, args: Any) -> int:
    engines = client.engine_status()   # asked before anything is printed: it may not be DMR at all
    running = client.running_models()
    if args.json:   # `docker model status --json`'s running and backends, and the models loaded
        _print_json({"running": True, "endpoint": client.base_url, "backends": engines, "models": running},
                    pretty=True)
        return EXIT_OK
    sys.stdout.write("DMR at %s\n" % client.base_url)
    sys.stdout.write("  %s\n" % _cli_words(client._where()))
    for engine, state in engines.items():
        sys.stdout.write("  %-10s %s\n" % (engine, state))
    sys.stdout.write("running models: %s\n" % ("none" if not running else ""))
    for model in running:
        sys.stdout.write("  %s (%s, %s)\n" % (model.get("model_name"), model.get("backend_name"),
                                              model.get("mode") or "completion"))
    return EXIT_OK


def _cli_configure(client: Client, args: Any) -> int:
    settings = dict(context_size=args.context_size, keep_alive=args.keep_alive, runtime_flags=args.runtime_flags,
                    reasoning_budget=args.reasoning_budget, mode=args.mode)
    if args.show:
        entries = client.configuration(args.model)
        if args.json:
            _print_json(entries, pretty=True)
            return EXIT_OK
        if not entries:
            sys.stdout.write("nothing configured%s\n" % (" for " + args.model if args.model else ""))
        for entry in entries:
            config: Dict[str, Any] = entry["Config"] if isinstance(entry.get("Config"), dict) else {}
            shown = ", ".join("%s %s" % (key, json.dumps(value)) for key, value in config.items() if value is not None)
            sys.stdout.write("%s (%s): %s\n" % (entry.get("Model"), entry.get("Backend"), shown or "defaults"))
        return EXIT_OK
    if not args.model:
        raise ValueError("configure needs MODEL (or --show)")
    client.configure(args.model, reload=args.reload, **settings)
    sys.stdout.write("configured %s%s\n" % (args.model, "; loaded again with it" if args.reload else
                                             "; DMR loads it in the background (a loaded model keeps its "
                                             "settings until --reload)"))
    return EXIT_OK


def _cli_load(client: Client, args: Any) -> int:
    terminal = _Terminal(sys.stdout, sys.stderr)
    started = time.monotonic()
    with _Spinner(terminal, delay=0.3):
        entry = client.load(args.model, timeout=args.timeout)
    sys.stdout.write("%s is loaded (%s, %.1f s)\n" % (args.model, entry.get("backend_name") or "engine",
                                                       time.monotonic() - started))
    return EXIT_OK


def _cli_ps(client: Client, args: Any) -> int:
    running = client.running_models()
    if args.json:
        _print_json(running, pretty=True)
        return EXIT_OK
    if not running:
        sys.stdout.write("no model is loaded\n")
        return EXIT_OK
    sys.stdout.write("%-40s %-10s %-11s %-9s %s\n" % ("MODEL", "ENGINE", "MODE", "STATE", "KEEP ALIVE"))
    for entry in running:
        state = "loading" if entry.get("loading") else "busy" if entry.get("in_use") else "idle"
        sys.stdout.write("%-40s %-10s %-11s %-9s %s\n" % (
            entry.get("model_name"), entry.get("backend_name"), entry.get("mode") or "completion", state,
            entry.get("keep_alive") if entry.get("keep_alive") is not None else "default"))
    return EXIT_OK


def _cli_df(client: Client, args: Any) -> int:
    usage = client.disk_usage()
    if args.json:
        _print_json(usage)
        return EXIT_OK
    for key, label in (("models_disk_usage", "models"), ("default_backend_disk_usage", "default engine")):
        value = usage.get(key)
        sys.stdout.write("%-15s %s\n" % (label, _size(value) if isinstance(value, (int, float)) else "?"))
    return EXIT_OK


def _cli_metrics(client: Client, args: Any) -> int:
    metrics = client.metrics()
    if args.json:
        _print_json(metrics)
        return EXIT_OK
    for name, samples in metrics.items():
        for labels, value in samples:
            shown = ",".join('%s="%s"' % item for item in labels.items())
            sys.stdout.write("%s%s %s\n" % (name, "{%s}" % shown if shown else "", "%g" % value))
    return EXIT_OK


def _cli_logs(client: Client, args: Any) -> int:
    if not args.follow:
        sys.stdout.write(client.logs(engines=not args.no_engines))
        return EXIT_OK
    with client.logs(follow=True, engines=not args.no_engines) as lines:
        for line in lines:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return EXIT_OK


def _cli_requests(client: Client, args: Any) -> int:
    if not args.follow:
        records = client.requests(args.model)
        if args.json:
            _print_json(records, pretty=True)
            return EXIT_OK
        for record in records if isinstance(records, list) else [records]:
            _print_json(record)
        return EXIT_OK
    with client.requests(args.model, follow=True) as events:
        for event in events:
            if event.event != "connected":
                _print_json(event.data)
                sys.stdout.flush()
    return EXIT_OK


def _cli_ping(client: Client, args: Any) -> int:
    kind, what = client._run(client._identify_plan(5.0))
    if kind == "dmr":
        sys.stdout.write("Docker Model Runner is answering at %s (%s)\n" % (client.base_url, _cli_words(client._where())))
        return EXIT_OK
    if kind is None:
        sys.stderr.write("dmr-client: neither DMR nor an OpenAI-compatible server answers at %s (--debug shows "
                         "what was tried; set %s or --base-url)\n" % (client.base_url, ENV_BASE_URL))
        return EXIT_ERROR
    try:
        client.models()   # the key: a gateway that refuses it answers nothing else either
    except APIStatusError as exc:
        if exc.status_code in (401, 403) or exc.message.lower() == _UNCHECKED_KEY:
            sys.stderr.write("dmr-client: %s is answering at %s, but refuses this client's API key: %s\n"
                             % (what, client.base_url, _cli_words(str(exc))))
            return EXIT_ERROR
        if exc.status_code == 404:   # answering at the origin, not at this root: the hint names the one
            sys.stderr.write("dmr-client: %s is answering, but not at %s: %s\n"
                             % (what, client.base_url, _cli_words(exc.hint or exc.message)))
            return EXIT_ERROR
    except DMRError:
        pass   # it answered server_kind(); what else the model list says is not ping's question
    sys.stdout.write("%s is answering at %s (%s): chat and models work; pull, rm, status and configure need DMR\n"
                     % (what, client.base_url, _cli_words(client._where())))
    return EXIT_OK


def _cli_context_ls(client: None, args: Any) -> int:
    rows = _context_list()
    if os.environ.get(ENV_HOST):
        sys.stderr.write("dmr-client: warning: %s=%r overrides the active context\n" % (ENV_HOST, os.environ[ENV_HOST]))
    if args.json:
        _print_json(rows, pretty=True)
        return EXIT_OK
    table = [("NAME", "HOST", "TLS", "DESCRIPTION", "CURRENT")]
    for row in rows:
        tls = row.tls
        shown = ("off" if not tls.get("enabled") else "skip-verify" if tls.get("skipVerify")
                 else "CA " + tls["caCert"] if tls.get("caCert") else "on")
        table.append((row.name, row.host, shown, row.description, "*" if row.current else ""))
    widths = [max(len(line[column]) for line in table) for column in range(4)]
    for line in table:
        sys.stdout.write(("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[4]).rstrip()
                         + "\n")
    return EXIT_OK



# ---------------------------------------------------------------------------
# Command line: bench
# ---------------------------------------------------------------------------

#: What `docker model bench` asks by default, so the two measure the same work.
BENCH_PROMPT = "Write a comprehensive 100 word summary on whales and their impact on society."
#: Seconds a concurrency level runs unless --duration or --requests says otherwise (as `docker model bench`).
BENCH_DURATION = 30.0
BENCH_CONCURRENCY = (1, 2, 4, 8)


def _concurrency_levels(text: str) -> List[int]:
    """--concurrency 1,2,4: whole numbers >= 1, in the order given."""
    levels = []
    for word in text.split(","):
        try:
            level = int(word.strip())
        except ValueError:
            level = 0
        if level < 1:
            raise ValueError("--concurrency takes whole numbers >= 1 separated by commas, e.g. 1,2,4 (got %r)" % text)
        levels.append(level)
    return levels


def _bench_plan(args: Any) -> AttrDict:
    """What to run, from bench's arguments, checked before anything is sent."""
    if args.model and args.model_arg and args.model != args.model_arg:
        raise ValueError("bench takes one model: -m %s or %s, not both" % (args.model, args.model_arg))
    model = args.model or args.model_arg
    if not model:
        raise ValueError("bench needs a model: dmr-client bench -m MODEL")
    levels = _concurrency_levels(args.concurrency) if args.concurrency is not None else list(BENCH_CONCURRENCY)
    duration, requests = args.duration, args.requests
    if duration is not None and not duration > 0:   # also NaN
        raise ValueError("--duration takes seconds > 0 (got %s)" % duration)
    if requests is not None and requests < 1:
        raise ValueError("--requests takes a whole number >= 1 (got %d)" % requests)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError("--max-tokens takes a whole number >= 1 (got %d)" % args.max_tokens)
    if duration is None and requests is None:
        duration = BENCH_DURATION
    return AttrDict(model=model, prompt=args.prompt, max_tokens=args.max_tokens, levels=levels,
                    duration_s=duration, requests=requests)


class _BenchLevel:
    """A concurrency level while it runs: the figures of the requests done so far."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.started = time.monotonic()
        self.ended: Optional[float] = None
        self.sent = self.failed = 0
        self.records: List[AttrDict] = []
        self.stop = False

    def result(self, stopped: bool = False) -> AttrDict:
        ended = self.ended if self.ended is not None else time.monotonic()
        return _bench_level(self.concurrency, self.records, ended - self.started, self.failed, stopped)


def _has_text(chunk: Mapping[str, Any]) -> bool:
    """Whether a chat chunk carries the first of the answer (text, thinking or a tool call)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(delta.get(key) for key in ("content", "reasoning_content", "tool_calls")):
            return True
    return False


class _Bench:
    """`bench`: each level's requests on one AsyncClient; what was measured stays readable after Ctrl-C."""

    def __init__(self, plan: AttrDict, terminal: _Terminal):
        self.plan, self.terminal = plan, terminal
        self.results: List[AttrDict] = []
        self.level: Optional[_BenchLevel] = None
        self.errors: Dict[str, int] = {}

    async def run(self, client: AsyncClient) -> None:
        plan = self.plan
        self.terminal.stderr.write("warming up %s (the first answer loads the model)\n" % plan.model)
        # One answer not measured: it loads the model, and an unknown model fails here, before any level.
        await client.chat(plan.model, [{"role": "user", "content": plan.prompt}], max_tokens=1)
        for concurrency in plan.levels:
            level = self.level = _BenchLevel(concurrency)
            ticker = asyncio.ensure_future(self._show(level))
            try:
                await asyncio.gather(*[self._worker(client, level) for _ in range(concurrency)])
            finally:
                ticker.cancel()
            level.ended = time.monotonic()
            self.terminal.clear_status()
            self.level = None
            result = level.result()
            self.results.append(result)
            self.terminal.stderr.write(_bench_line(result) + "\n")
            self.terminal.stderr.flush()
            if not result.requests:
                return   # nothing got through: the next level would not either

    async def _worker(self, client: AsyncClient, level: _BenchLevel) -> None:
        plan = self.plan
        deadline = level.started + plan.duration_s if plan.duration_s is not None else None
        while not level.stop and (plan.requests is None or level.sent < plan.requests) \
                and (deadline is None or time.monotonic() < deadline):
            level.sent += 1
            try:
                level.records.append(await self._one(client))
            except DMRError as exc:
                level.failed += 1
                message = _cli_words(str(exc))
                if message not in self.errors:   # each kind of failure once, not once a request
                    self.terminal.clear_status()
                    self.terminal.stderr.write("dmr-client: a request failed: %s\n" % message)
                self.errors[message] = self.errors.get(message, 0) + 1
                if not level.records:
                    level.stop = True   # failing from the start: no figure will come of this level

    async def _one(self, client: AsyncClient) -> AttrDict:
        """One streamed request, timed: its speed_stats(), the first token being the first text."""
        plan = self.plan
        started = time.monotonic()
        first: Optional[float] = None
        stream = await client.chat(plan.model, [{"role": "user", "content": plan.prompt}], stream=True,
                                   max_tokens=plan.max_tokens, stream_options={"include_usage": True})
        async with stream:
            async for chunk in stream:
                if first is None and _has_text(chunk):
                    first = time.monotonic()
            reply = await stream.final()
        return speed_stats(reply, elapsed=time.monotonic() - started,
                           first_token=None if first is None else first - started, chunks=stream.chunks_received)

    async def _show(self, level: _BenchLevel) -> None:
        """The running level on a terminal's status line, twice a second."""
        if not self.terminal.interactive_err:
            return
        limit = " of %d s" % self.plan.duration_s if self.plan.duration_s is not None else ""
        while True:
            result = level.result()
            self.terminal.status("concurrency %d: %.0f s%s, %d requests, %s tokens/s" % (
                level.concurrency, result.elapsed_s, limit, result.requests, _figure(result.tokens_per_s, 1)))
            await asyncio.sleep(0.5)

    def measured(self, stopped: bool) -> List[AttrDict]:
        """The levels measured, with the one running when Ctrl-C came if it had finished a request."""
        results = list(self.results)
        if stopped and self.level is not None and self.level.records:
            results.append(self.level.result(stopped=True))
        return results


def _figure(value: Optional[float], digits: int) -> str:
    return "-" if value is None else "%.*f" % (digits, value)


def _bench_line(result: Mapping[str, Any]) -> str:
    """A finished level, one line on stderr as the benchmark goes."""
    return "concurrency %d: %d requests (%d failed) in %.1f s, %s tokens/s, first token p50 %s s" % (
        result["concurrency"], result["requests"], result["failed"], result["elapsed_s"],
        _figure(result["tokens_per_s"], 1), _figure(result["ttft_p50_s"], 3))


def _bench_rows(results: Sequence[Mapping[str, Any]]) -> List[Tuple[str, ...]]:
    """bench's table: a row a level, throughput relative to concurrency 1 (or the first level)."""
    base = next((r["tokens_per_s"] for r in results if r["concurrency"] == 1 and r["tokens_per_s"]),
                results[0]["tokens_per_s"] if results else None)
    rows: List[Tuple[str, ...]] = [("CONCURRENCY", "REQUESTS", "FAILED", "TOKENS", "TOKENS/S", "REL", "REQUESTS/S",
                                    "TTFT P50", "TTFT P95", "STREAM TOKENS/S")]
    for r in results:
        relative = r["tokens_per_s"] / base if base and r["tokens_per_s"] is not None else None
        rows.append(("%d%s" % (r["concurrency"], "*" if r["stopped"] else ""), str(r["requests"]), str(r["failed"]),
                     str(r["completion_tokens"]), _figure(r["tokens_per_s"], 1),
                     "-" if relative is None else "%.2fx" % relative, _figure(r["requests_per_s"], 2),
                     _figure(r["ttft_p50_s"], 3) + " s" * (r["ttft_p50_s"] is not None),
                     _figure(r["ttft_p95_s"], 3) + " s" * (r["ttft_p95_s"] is not None),
                     _figure(r["stream_tokens_per_s"], 1)))
    return rows


def _bench_notes(results: Sequence[Mapping[str, Any]]) -> List[str]:
    """The lines under bench's table: the best level, and what the columns mean."""
    notes = []
    rated = [r for r in results if r["tokens_per_s"]]
    if rated:
        best = max(rated, key=lambda r: r["tokens_per_s"])
        notes.append("best: concurrency %d, %.1f tokens/s" % (best["concurrency"], best["tokens_per_s"]))
    if any(r["stopped"] for r in results):
        notes.append("*: stopped by Ctrl-C; the requests that finished before it")
    sources = {r["source"] for r in results if r["source"]}
    measured = ("llama.cpp's own timings" if sources == {"server"} else "this client's clock" if sources == {"client"}
                else "llama.cpp's timings where it sent them, else this client's clock")
    notes.append("TOKENS/S: all tokens generated / the level's time; TTFT: time to the first text, p50 and p95 of "
                 "the requests; STREAM TOKENS/S: one request's generation speed (mean), from %s" % measured)
    return notes


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _cli_bench(client: Client, args: Any) -> int:
    plan = _bench_plan(args)
    terminal = _Terminal(sys.stdout, sys.stderr)
    bench = _Bench(plan, terminal)
    # The options main() gives Client, for an AsyncClient: the requests of a level go at once.
    async_client = AsyncClient(timeout=args.timeout, **_cli_connection(args))

    async def run() -> None:
        async with async_client:
            await bench.run(async_client)
    stopped = False
    try:
        terminal.stderr.write("%s at %s: concurrency %s; %s a level\n" % (
            plan.model, async_client.base_url, ", ".join(map(str, plan.levels)),
            " or ".join(([("%g s" % plan.duration_s)] if plan.duration_s is not None else []) +
                        ([("%d requests" % plan.requests)] if plan.requests is not None else []))))
        asyncio.run(run())
    except KeyboardInterrupt:
        stopped = True
        terminal.clear_status()
        terminal.stderr.write("\n")
    results = bench.measured(stopped)
    if args.json:
        _print_json({"model": plan.model, "base_url": async_client.base_url, "prompt": plan.prompt,
                     "max_tokens": plan.max_tokens, "duration_s": plan.duration_s, "requests_per_level": plan.requests,
                     "stopped": stopped, "results": [{key: _rounded(value) for key, value in result.items()}
                                                     for result in results]}, pretty=True)
    elif results:
        _cli_table(_bench_rows(results))
        sys.stdout.write("".join(note + "\n" for note in _bench_notes(results)))
    elif stopped:
        sys.stderr.write("stopped before any request finished: nothing measured\n")
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_OK if results and all(result.requests for result in results) else EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
