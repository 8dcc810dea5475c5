#!/usr/bin/env python3
"""Run LiteLLM's proxy router on loopback in front of two llama.cpp servers in DMR's layout.

The gateway tier (tools/gateway_tests.sh) proves dmr_client behind the router
teams put in front of several DMR hosts: one URL, one key, two deployments of
one model, failover and cooldown.

    python3 tools/gateway.py start --venv .cache/gateway/venv   # prints NAME=VALUE lines
    python3 tools/gateway.py backend stop b                     # one deployment goes away
    python3 tools/gateway.py backend start b                    # ... and comes back on its port
    python3 tools/gateway.py measure                            # first chunk: direct vs gateway
    python3 tools/gateway.py stop                               # everything, by PID

`start` starts the two backends with tools/llama_server.py (--name gw-a and
gw-b), a third "backend" that cuts every answer short (`serve-cut`), and the
proxy with a master key, all on 127.0.0.1; it returns once the proxy answers.
The pinned litellm venv is made by the caller (tools/venv.sh).  State lives in
.cache/gateway/.  Standard library only, like dmr_client itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from llama_server import terminate  # noqa: E402  (a sibling script)

ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, ".cache", "gateway")
STATE = os.path.join(CACHE, "state.json")
LLAMA = os.path.join(HERE, "llama_server.py")

MASTER_KEY = "sk-dmr-client-gateway-test"
MODEL_NAME = "tiny"           # what clients of the gateway ask for
BACKENDS = {"a": "gw-a", "b": "gw-b"}   # deployment -> tools/llama_server.py --name
COOLDOWN_S = 5                # router_settings.cooldown_time: the 429's retry-after

#: The proxy configuration, in the format of LiteLLM's docs: one model_name, one deployment per
#: DMR host.  On DMR (and llama.cpp in its layout) the api_base that works ends in /v1: LiteLLM
#: posts to {api_base}/chat/completions.
CONFIG = """\
model_list:
{deployments}
router_settings:
  num_retries: 1          # the router tries another deployment once
  allowed_fails: 1        # one failure cools a deployment down ...
  cooldown_time: {cooldown}         # ... for this many seconds (a 429's retry-after when all are down)
general_settings:
  master_key: {key}
"""

DEPLOYMENT = """\
  - model_name: {name}
    litellm_params:
      model: docker_model_runner/{model}
      api_base: {api_base}
"""


# -- the backend that cuts answers short (standard library, runs on its own) -----


def serve_cut(address_file):
    """An OpenAI-style backend whose every answer is cut: the gateway must not make it whole.

    Model "cut": a chunked stream closed after two chunks, without its last chunk of the
    chunked framing (a dead host).  Model "cut-eof": a stream without a length, closed
    cleanly after two chunks and before [DONE] (what a proxy in between can make of a cut).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    with open(address_file + ".tmp", "w") as f:
        json.dump({"port": listener.getsockname()[1], "pid": os.getpid()}, f)
    os.replace(address_file + ".tmp", address_file)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            answer_cut(conn)
        except OSError:
            pass
        finally:
            conn.close()


def answer_cut(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return
        body += piece
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        request = {}
    model = str(request.get("model", "cut"))
    chunks = [{"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": " from"}]
    events = [b"data: " + json.dumps({
        "id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}).encode() + b"\n\n" for delta in chunks]
    chunked = not model.endswith("cut-eof")
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n"))
    for event in events:   # one at a time, so the gateway has begun its answer before the cut
        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
        time.sleep(0.2)


# -- processes -------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def llama(*args):
    """tools/llama_server.py with *args*; its stdout (the base URL for start)."""
    result = subprocess.run([sys.executable, LLAMA] + list(args), stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit("gateway: tools/llama_server.py %s failed" % " ".join(args))
    return result.stdout.strip()


def load_state():
    with open(STATE) as f:
        return json.load(f)


def save_state(state):
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(STATE + ".tmp", STATE)


def wait_for_file(path, process, deadline, what):
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("gateway: %s did not start" % what)
        time.sleep(0.05)


def start(args):
    os.makedirs(CACHE, exist_ok=True)
    if os.path.exists(STATE):
        stop(args)
    state = {"backends": {}, "pids": []}
    save_state(state)   # from here on, `stop` finds whatever was started
    for deployment, name in BACKENDS.items():
        base = llama("start", "--name", name)
        state["backends"][deployment] = {"name": name, "port": int(base.rsplit(":", 1)[1])}
        save_state(state)

    cut_file = os.path.join(CACHE, "cut.json")
    if os.path.exists(cut_file):
        os.remove(cut_file)
    # Every process started here writes to a log, never to our stdout: the caller reads that to its end.
    cut = subprocess.Popen([sys.executable, __file__, "serve-cut", "--address-file", cut_file],
                           stdin=subprocess.DEVNULL, stdout=open(os.path.join(CACHE, "cut.log"), "wb"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    state["pids"].append(cut.pid)
    save_state(state)
    wait_for_file(cut_file, cut, time.monotonic() + 30, "the cutting backend")
    with open(cut_file) as f:
        cut_port = json.load(f)["port"]

    deployments = [DEPLOYMENT.format(name=MODEL_NAME, model="ai/tiny",
                                     api_base="http://127.0.0.1:%d/engines/llama.cpp/v1" % backend["port"])
                   for backend in state["backends"].values()]
    deployments += [DEPLOYMENT.format(name=name, model=name, api_base="http://127.0.0.1:%d/v1" % cut_port)
                    for name in ("cut", "cut-eof")]
    config = os.path.join(CACHE, "config.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(deployments="".join(deployments), cooldown=COOLDOWN_S, key=MASTER_KEY))

    port = free_port()
    # As a user on an air-gapped machine runs it: no fetch of the cost map from GitHub, no hub.
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", HF_HUB_OFFLINE="1", NO_DOCS="True",
               LITELLM_TELEMETRY="False", PYTHONUNBUFFERED="1")
    log = open(os.path.join(CACHE, "proxy.log"), "wb")
    proxy = subprocess.Popen([os.path.join(args.venv, "bin", "litellm"), "--config", config,
                              "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
    state["pids"].append(proxy.pid)
    state["proxy"] = {"pid": proxy.pid, "port": port}
    save_state(state)
    deadline = time.monotonic() + args.wait
    while not answers("http://127.0.0.1:%d/health/liveliness" % port):
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("gateway: the proxy did not answer; see %s" % log.name)
        time.sleep(0.25)
    print("DMR_TEST_GATEWAY_URL=http://127.0.0.1:%d/v1" % port)
    print("DMR_TEST_GATEWAY_KEY=%s" % MASTER_KEY)
    print("DMR_TEST_GATEWAY_MODEL=%s" % MODEL_NAME)
    print("DMR_TEST_GATEWAY_COOLDOWN=%d" % COOLDOWN_S)


def stop(args):
    try:
        state = load_state()
    except (OSError, ValueError):
        state = {}
    for pid in state.get("pids", []):
        terminate(pid, group=True)   # each was started as the leader of a session of its own
    for backend in state.get("backends", {}).values():
        llama("stop", "--name", backend["name"])
    if os.path.exists(STATE):
        os.remove(STATE)


def backend(args):
    """Stop one deployment's server, or start it again on the port the proxy knows."""
    entry = load_state()["backends"][args.deployment]
    if args.action == "stop":
        llama("stop", "--name", entry["name"])
    else:
        llama("start", "--name", entry["name"], "--port", str(entry["port"]))


# -- time to first chunk, direct and through the gateway --------------------------


def measure(args):
    """Median and 90th percentile time to the first chunk, direct to a backend and via the proxy."""
    sys.path.insert(0, ROOT)
    import dmr_client

    state = load_state()
    direct = dmr_client.Client("http://127.0.0.1:%d" % state["backends"]["a"]["port"], timeout=60)
    gateway = dmr_client.Client("http://127.0.0.1:%d/v1" % state["proxy"]["port"], api_key=MASTER_KEY,
                                timeout=60)
    ask = [{"role": "user", "content": "Say hello."}]
    times = {"direct": [], "gateway": []}
    for _ in range(args.rounds):   # interleaved, so both see the same machine
        for label, client, model in (("direct", direct, "ai/tiny"), ("gateway", gateway, MODEL_NAME)):
            started = time.perf_counter()
            with client.chat(model, ask, stream=True, max_tokens=16) as stream:
                next(iter(stream))
                first = time.perf_counter() - started
                for _chunk in stream:
                    pass
            times[label].append(first * 1000.0)
    print("time to first chunk over %d streams each (ms): median, p90" % args.rounds)
    for label, values in times.items():
        values.sort()
        print("  %-8s %7.2f %7.2f" % (label, statistics.median(values), values[int(0.9 * (len(values) - 1))]))
    ratio = statistics.median(times["gateway"]) / statistics.median(times["direct"])
    print("  the gateway adds %.2f ms to the median (%.1fx)"
          % (statistics.median(times["gateway"]) - statistics.median(times["direct"]), ratio))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start the backends and the proxy; print NAME=VALUE lines")
    start_cmd.add_argument("--venv", required=True, help="a venv with the pinned litellm[proxy]")
    start_cmd.add_argument("--wait", type=float, default=240.0, help="seconds to wait for the proxy")
    commands.add_parser("stop", help="stop everything `start` started")
    backend_cmd = commands.add_parser("backend", help="stop or start one deployment's server")
    backend_cmd.add_argument("action", choices=("stop", "start"))
    backend_cmd.add_argument("deployment", choices=sorted(BACKENDS))
    measure_cmd = commands.add_parser("measure", help="time to first chunk, direct and through the proxy")
    measure_cmd.add_argument("--rounds", type=int, default=50)
    cut_cmd = commands.add_parser("serve-cut", help="(internal) run the backend that cuts answers")
    cut_cmd.add_argument("--address-file", required=True)
    args = parser.parse_args(argv)
    {"start": start, "stop": stop, "backend": backend, "measure": measure,
     "serve-cut": lambda a: serve_cut(a.address_file)}[args.command](args)


if __name__ == "__main__":
    main()
