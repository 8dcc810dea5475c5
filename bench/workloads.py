"""One client doing one measured workload, run in a fresh process by bench/run.py.

    python bench/workloads.py CLIENT WORKLOAD BASE_URL [ARG]

CLIENT is one of CLIENTS; WORKLOAD is
  chat SECONDS      sequential non-streaming chats for about SECONDS (after a warm-up)
  stream SECONDS N  sequential streams of N chunks for about SECONDS
  ttfc COUNT        time to the first chunk of COUNT streams of 20 chunks (request sent to chunk in hand)
  one               a single chat (for peak RSS, which it reports)
It prints one JSON object: wall and CPU seconds and what was counted.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

MODEL = "ai/smollm2"
MESSAGES = [{"role": "user", "content": "Say hello."}]
PATH = "/engines/llama.cpp/v1/chat/completions"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer dummy-key"}


def body(stream=False, n=16):
    payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": n}
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


def count_events(lines, first=None):
    """The raw loops' minimal SSE handling: json.loads each data line until [DONE]."""
    count = 0
    for line in lines:
        if line.startswith(b"data: "):
            payload = line[6:].rstrip()
            if payload == b"[DONE]":
                break
            json.loads(payload)
            if not count and first:
                first()
            count += 1
    return count


# Each factory returns (chat, stream): chat() does one request and returns the reply's text;
# stream(n) iterates a stream of n chunks, calling first() at the first chunk, and returns the
# number of chunks it decoded.

def raw(base):
    """http.client keep-alive with readline and json.loads: the floor for Python."""
    import http.client

    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    chat_body = body()

    def chat():
        conn.request("POST", PATH, chat_body, HEADERS)
        return json.loads(conn.getresponse().read())["choices"][0]["message"]["content"]

    def stream(n, first=None):
        conn.request("POST", PATH, body(True, n), HEADERS)
        response = conn.getresponse()
        count = count_events(response, first)
        response.read()
        return count

    return chat, stream


def raw_read1(base):
    """The same, reading with read1() and splitting lines itself."""
    import http.client

    chat, _ = raw(base)
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)

    def stream(n, first=None):
        conn.request("POST", PATH, body(True, n), HEADERS)
        response = conn.getresponse()
        count, rest, done = 0, b"", False
        while not done:
            data = response.read1(65536)
            if not data:
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line.startswith(b"data: "):
                    if line[6:] == b"[DONE]":
                        done = True
                        break
                    json.loads(line[6:])
                    if not count and first:
                        first()
                    count += 1
        response.read()
        return count

    return chat, stream


def urllib_request(base):
    """urllib.request.urlopen, a new connection per call."""
    import urllib.request

    url = base + PATH
    chat_body = body()

    def chat():
        request = urllib.request.Request(url, chat_body, HEADERS)
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())["choices"][0]["message"]["content"]

    def stream(n, first=None):
        request = urllib.request.Request(url, body(True, n), HEADERS)
        with urllib.request.urlopen(request) as response:
            return count_events(response, first)

    return chat, stream


def requests_session(base):
    import requests

    session = requests.Session()
    url = base + PATH
    chat_body = body()

    def chat():
        return session.post(url, data=chat_body, headers=HEADERS).json()["choices"][0]["message"]["content"]

    def stream(n, first=None):
        with session.post(url, data=body(True, n), headers=HEADERS, stream=True) as response:
            return count_events(response.iter_lines(), first)

    return chat, stream


def openai_sdk(base):
    from openai import OpenAI

    client = OpenAI(base_url=base + "/engines/llama.cpp/v1", api_key="x", max_retries=0)

    def chat():
        return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16).choices[0].message.content

    def stream(n, first=None):
        count = 0
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=n, stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


def litellm_provider(base):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    api_base = base + "/engines/llama.cpp/v1"
    model = "docker_model_runner/" + MODEL

    def chat():
        reply = litellm.completion(model=model, messages=MESSAGES, api_base=api_base, max_tokens=16)
        return reply.choices[0].message.content

    def stream(n, first=None):
        count = 0
        for _ in litellm.completion(model=model, messages=MESSAGES, api_base=api_base, max_tokens=n, stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


def dmr(base):
    import dmr_client

    client = dmr_client.Client(base)

    def chat():
        return client.chat(MODEL, MESSAGES, max_tokens=16).choices[0].message.content

    def stream(n, first=None):
        count = 0
        for _ in client.chat(MODEL, MESSAGES, max_tokens=n, stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


def dmr_openai(base):
    """dmr_client's openai-python surface: the same calls through OpenAI().chat.completions."""
    import dmr_client

    client = dmr_client.OpenAI(base_url=base + "/engines/llama.cpp/v1")

    def chat():
        return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16).choices[0].message.content

    def stream(n, first=None):
        count = 0
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=n, stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


# Async factories: the same (chat, stream) pair as coroutine functions, made on the running loop.

async def aio_raw(base):
    """asyncio streams: keep-alive connections (one per concurrent call), a hand-written request,
    readline SSE: the floor."""
    import asyncio

    parts = urllib.parse.urlsplit(base)
    host = "Host: %s:%d\r\n" % (parts.hostname, parts.port)
    idle = []

    async def request(payload):
        connection = idle.pop() if idle else await asyncio.open_connection(parts.hostname, parts.port)
        head = "POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nAuthorization: Bearer dummy-key\r\n" \
               "Content-Length: %d\r\n\r\n" % (PATH, host, len(payload))
        connection[1].write(head.encode() + payload)
        return connection

    async def read_head(reader):
        length, chunked = None, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                return length, chunked
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                chunked = True

    chat_body = body()

    async def chat():
        connection = await request(chat_body)
        reader = connection[0]
        length, _ = await read_head(reader)
        text = json.loads(await reader.readexactly(length))["choices"][0]["message"]["content"]
        idle.append(connection)
        return text

    async def stream(n, first=None):
        connection = await request(body(True, n))
        reader = connection[0]
        await read_head(reader)   # chunked: size lines are skipped as non-data lines, the 0 chunk ends it
        count = 0
        while True:
            line = await reader.readline()
            if line.startswith(b"data: "):
                payload = line[6:].rstrip()
                if payload == b"[DONE]":
                    break
                json.loads(payload)
                if not count and first:
                    first()
                count += 1
        while (await reader.readline()) != b"0\r\n":
            pass
        await reader.readline()
        idle.append(connection)
        return count

    return chat, stream


async def async_openai(base):
    from openai import AsyncOpenAI

    # A long timeout: 64 streams connect at once, and connecting must not be what fails.
    client = AsyncOpenAI(base_url=base + "/engines/llama.cpp/v1", api_key="x", max_retries=0, timeout=600.0)

    async def chat():
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16)
        return reply.choices[0].message.content

    async def stream(n, first=None):
        count = 0
        async for _ in await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=n,
                                                            stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


async def httpx_async(base):
    import httpx

    client = httpx.AsyncClient(base_url=base, headers=HEADERS, limits=httpx.Limits(max_connections=100))
    chat_body = body()

    async def chat():
        reply = await client.post(PATH, content=chat_body)
        return reply.json()["choices"][0]["message"]["content"]

    async def stream(n, first=None):
        count = 0
        async with client.stream("POST", PATH, content=body(True, n)) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    if line[6:] == "[DONE]":
                        break
                    json.loads(line[6:])
                    if not count and first:
                        first()
                    count += 1
        return count

    return chat, stream


async def aiohttp_session(base):
    import aiohttp

    session = aiohttp.ClientSession(base, headers=HEADERS, connector=aiohttp.TCPConnector(limit=100))
    chat_body = body()

    async def chat():
        async with session.post(PATH, data=chat_body) as reply:
            return (await reply.json())["choices"][0]["message"]["content"]

    async def stream(n, first=None):
        count = 0
        async with session.post(PATH, data=body(True, n)) as response:
            async for line in response.content:
                if line.startswith(b"data: "):
                    payload = line[6:].rstrip()
                    if payload == b"[DONE]":
                        break
                    json.loads(payload)
                    if not count and first:
                        first()
                    count += 1
        return count

    return chat, stream


async def dmr_async(base):
    import dmr_client

    client = dmr_client.AsyncClient(base)

    async def chat():
        return (await client.chat(MODEL, MESSAGES, max_tokens=16)).choices[0].message.content

    async def stream(n, first=None):
        count = 0
        async for _ in await client.chat(MODEL, MESSAGES, max_tokens=n, stream=True):
            if not count and first:
                first()
            count += 1
        return count

    return chat, stream


ASYNC_CLIENTS = {"aio_raw": aio_raw, "AsyncOpenAI": async_openai, "httpx_async": httpx_async,
                 "aiohttp": aiohttp_session, "dmr_async": dmr_async}

CLIENTS = {"raw": raw, "raw_read1": raw_read1, "urllib": urllib_request, "requests": requests_session,
           "openai": openai_sdk, "litellm": litellm_provider, "dmr_client": dmr, "dmr_openai": dmr_openai}
#: What each client imports, for the import-cost measurement.
IMPORTS = {"raw": "import http.client, json", "raw_read1": "import http.client, json",
           "urllib": "import urllib.request, json", "requests": "import requests",
           "openai": "import openai", "litellm": "import litellm", "dmr_client": "import dmr_client",
           "dmr_client + Client()": "import dmr_client; dmr_client.Client('http://127.0.0.1:9')",
           "dmr_client + AsyncClient()": "import dmr_client; dmr_client.AsyncClient('http://127.0.0.1:9')",
           "dmr_client's stdlib": "import collections, http.client, json, os, re, select, socket, sys, "
                                  "threading, time, urllib.parse"}


def max_rss_kib():
    """This process's peak RSS in KiB. Linux's VmHWM, not getrusage(): ru_maxrss survives exec(),
    so a child would report its parent's (bench/run.py's) peak whenever that one was higher."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def dmr_memory(base, workload, arg):
    """dmr_client's memory bounds: RSS growth over a long stream iterated without final()
    ("stream_rss", arg = chunks), and peak RSS over a big non-streaming body ("body_rss", arg = MB)."""
    import dmr_client

    client = dmr_client.Client(base)
    for _ in client.chat(MODEL, MESSAGES, max_tokens=1000, stream=True):
        pass
    client.chat(MODEL, MESSAGES, max_tokens=16)
    before = max_rss_kib()
    if workload == "stream_rss":
        count = sum(1 for _ in client.chat(MODEL, MESSAGES, max_tokens=int(arg), stream=True))
        return {"chunks": count, "growth_kib": max_rss_kib() - before}
    reply = client.chat(MODEL, MESSAGES, bench_body_mb=int(arg))
    size = len(reply.choices[0].message.content)
    return {"bytes": size, "growth_kib": max_rss_kib() - before}


def timed(seconds, step):
    """Call step() until *seconds* have passed; (calls, wall, cpu)."""
    calls = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while True:
        step()
        calls += 1
        if calls % 8 == 0 and time.perf_counter() >= deadline:
            break
    return calls, time.perf_counter() - wall0, time.process_time() - cpu0


async def timed_async(seconds, step):
    calls = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while True:
        await step()
        calls += 1
        if calls % 8 == 0 and time.perf_counter() >= deadline:
            break
    return calls, time.perf_counter() - wall0, time.process_time() - cpu0


async def async_main(name, workload, base, arg):
    """The async clients' workloads; "streams64" runs 64 concurrent streams of N chunks, for
    about SECONDS in rounds, and counts every chunk."""
    import asyncio

    chat, stream = await ASYNC_CLIENTS[name](base)
    result = {"client": name, "workload": workload}
    if workload == "chat":
        for _ in range(50):
            await chat()
        result["calls"], result["wall"], result["cpu"] = await timed_async(float(arg[0]), chat)
    elif workload in ("stream", "streams64"):
        n = int(arg[1])
        width = 64 if workload == "streams64" else 1
        chunks = []

        async def round_of_streams():
            counts = await asyncio.gather(*[stream(n) for _ in range(width)])
            chunks.extend(counts)
        await round_of_streams()
        chunks.clear()
        result["calls"], result["wall"], result["cpu"] = await timed_async(float(arg[0]), round_of_streams)
        result["chunks"] = sum(chunks)
    elif workload == "ttfc":
        times = []
        for _ in range(20):
            await stream(20)
        for _ in range(int(arg[0])):
            marks = []
            started = time.perf_counter()
            await stream(20, lambda marks=marks: marks.append(time.perf_counter()))
            times.append(marks[0] - started)
        times.sort()
        result["median"] = times[len(times) // 2]
    return result


def main():
    name, workload, base = sys.argv[1:4]
    arg = sys.argv[4:]
    if workload in ("stream_rss", "body_rss"):
        print(json.dumps(dmr_memory(base, workload, arg[0])))
        return
    if name in ASYNC_CLIENTS:
        import asyncio

        print(json.dumps(asyncio.run(async_main(name, workload, base, arg))))
        return
    chat, stream = CLIENTS[name](base)
    result = {"client": name, "workload": workload}
    if workload == "one":
        result["text"] = chat()
        result["peak_rss_kib"] = max_rss_kib()
    elif workload == "chat":
        for _ in range(50):
            chat()
        result["calls"], result["wall"], result["cpu"] = timed(float(arg[0]), chat)
    elif workload == "stream":
        n = int(arg[1])
        for _ in range(3):
            stream(n)
        chunks = []
        result["calls"], result["wall"], result["cpu"] = timed(float(arg[0]), lambda: chunks.append(stream(n)))
        result["chunks"] = sum(chunks)
    elif workload == "ttfc":
        times = []
        for _ in range(20):
            stream(20)
        for _ in range(int(arg[0])):
            marks = []
            started = time.perf_counter()
            stream(20, lambda marks=marks: marks.append(time.perf_counter()))
            times.append(marks[0] - started)
        times.sort()
        result["median"] = times[len(times) // 2]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
