#!/usr/bin/env python3
"""Run llama.cpp's own HTTP server on loopback with a generated tiny model.

Docker Model Runner's default engine is llama.cpp's llama-server: DMR proxies
/engines/llama.cpp/v1/... to it byte for byte.  This script gives the tests
that same server code without Docker and without downloading a model:

    python3 tools/llama_server.py start            # DMR layout: /engines/llama.cpp/v1/...
    python3 tools/llama_server.py start --plain    # plain layout: /v1/...
    python3 tools/llama_server.py stop [--plain]   # or: stop --all
    python3 tools/llama_server.py start --name b   # a second DMR-layout server (the gateway tier)

`start` prints the base URL to give dmr_client (and DMR_TEST_BASE_URL) and
returns once /health answers; the server keeps running in the background.
Everything lives under .cache/llama/ in the repository: a venv with the two
pinned PyPI packages (xllamacpp ships llama.cpp prebuilt, gguf writes the
model), the model, the logs and one state file per running server: a server is known by
its --name, which is its layout unless given (`--name b --port P` starts
server b again on the port it had).  Running
`start` again reuses all of it.  Development only: dmr_client needs none of it.

The model answers every chat with PHRASE and then its end-of-sequence token,
whatever the sampling settings: with the attention and FFN outputs zero, the
residual stream is just the token embedding, and the LM head maps each token
of the phrase strongly to the next one.  Each embedding also carries a small
fixed random part that the LM head ignores, so embeddings differ per input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.dirname(HERE), ".cache", "llama")
VENV = os.path.join(CACHE, "venv")
MODEL = os.path.join(CACHE, "tiny-chatml.gguf")
PACKAGES = ["xllamacpp==2026.10.11549", "gguf==0.19.0"]

ALIAS = "ai/tiny"
PHRASE = "Hello from a tiny GGUF test model!"
DMR_PREFIX = "/engines/llama.cpp"
N_CTX = 1024

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
          "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")


# -- the model (runs inside the venv: needs numpy and gguf) ---------------------


def byte_symbols():
    """GPT-2's byte-level BPE alphabet: one printable symbol for each byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    symbols, extra = {}, 0
    for value in range(256):
        if value in printable:
            symbols[value] = chr(value)
        else:
            symbols[value] = chr(256 + extra)
            extra += 1
    return symbols


#: What the default model says, one token per piece.
PIECES = ["Hello", " from", " a", " tiny", " GGUF", " test", " model", "!"]

# Two more models for captures of what llama.cpp streams for tool calls and reasoning: the same
# construction, another chain of tokens, and a template llama.cpp recognises for that format
# (<tool_call> in the template: Hermes 2 Pro tool calls; <think>: reasoning_content).
TOOL_PIECES = ["<tool_call>", "\n{\"name\": \"", "get_weather", "\", \"arguments\": {\"city\": \"", "Paris",
               "\"}}\n", "</tool_call>"]
TOOL_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\nYou may call these tools:\\n<tools>' }}"
    "{%- for tool in tools %}{{ tool | tojson }}{%- endfor %}"
    "{{ '</tools>\\nAnswer with <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{ message['content'] }}{%- endif %}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] %}{%- for call in message['tool_calls'] %}"
    "{{ '<tool_call>\\n' + (call['function'] | tojson) + '\\n</tool_call>' }}{%- endfor %}{%- endif %}"
    "{{ '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
THINK_PIECES = ["<think>", "\nThe user", " says hi", ".\n", "</think>", "\n\n", "Hello", "!"]
THINK_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['reasoning_content'] is defined and message['reasoning_content'] %}"
    "{{ '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' }}{%- endif %}"
    "{{ message['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def phrase_tokens(symbols, pieces=PIECES):
    """The tokens the model emits, spelt in the byte-level BPE alphabet."""
    return ["".join(symbols[b] for b in piece.encode()) for piece in pieces]


def write_tiny_model(path, pieces=PIECES, template=CHATML):
    import numpy as np
    import gguf

    n_embd, n_head, n_ff, n_layer = 64, 4, 128, 2
    symbols = byte_symbols()
    vocab = [symbols[b] for b in range(256)]
    words = phrase_tokens(symbols, pieces)
    vocab += [w for w in words if w not in vocab]
    vocab += ["<|im_start|>", "<|im_end|>"]
    types = [1] * (len(vocab) - 2) + [3, 3]
    index = {token: i for i, token in enumerate(vocab)}
    eos = index["<|im_end|>"]
    # The chain the model walks: newline (end of the generation prompt) -> each word -> EOS.
    chain = [index[symbols[ord("\n")]]] + [index[w] for w in words]
    nexts = chain[1:] + [eos]

    rng = np.random.default_rng(20261122)
    embed = np.zeros((len(vocab), n_embd), dtype=np.float32)
    embed[:, 16:] = 0.1 * rng.standard_normal((len(vocab), n_embd - 16))   # makes embeddings differ
    default_dim = len(chain)
    embed[:, default_dim] = 1.0                        # any other token: start the phrase
    for dim, token in enumerate(chain):
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0
    head = np.zeros((len(vocab), n_embd), dtype=np.float32)
    for dim, following in enumerate(nexts):
        head[following, dim] = 10.0
    head[chain[1], default_dim] = 10.0

    tmp = path + ".tmp"
    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_name("tiny-chatml")
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)   # all F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab)
    writer.add_token_types(types)
    writer.add_token_merges([symbols[ord(" ")] + " a"])   # llama.cpp insists on a merges list
    writer.add_bos_token_id(index["<|im_start|>"])
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    def tensor(name, shape, zero=False):
        data = np.zeros(shape, dtype=np.float32) if zero else (0.02 * rng.standard_normal(shape)).astype(np.float32)
        writer.add_tensor(name, data)

    writer.add_tensor("token_embd.weight", embed)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", head)
    for layer in range(n_layer):
        block = "blk.%d." % layer
        writer.add_tensor(block + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        tensor(block + "attn_q.weight", (n_embd, n_embd))
        tensor(block + "attn_k.weight", (n_embd, n_embd))
        tensor(block + "attn_v.weight", (n_embd, n_embd))
        tensor(block + "attn_output.weight", (n_embd, n_embd), zero=True)
        writer.add_tensor(block + "ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        tensor(block + "ffn_gate.weight", (n_ff, n_embd))
        tensor(block + "ffn_up.weight", (n_ff, n_embd))
        tensor(block + "ffn_down.weight", (n_embd, n_ff), zero=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)


# -- the server (runs inside the venv: needs xllamacpp) --------------------------


def serve(args):
    """Run llama-server in this process until SIGTERM/SIGINT; report its address in a file."""
    # Block the stop signals before llama.cpp starts its threads, so they all inherit the
    # mask and sigwait() below is the one place a `kill PID` lands.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    if not os.path.exists(MODEL):
        write_tiny_model(MODEL)
    server = start_in_process(MODEL, args.port, "" if args.plain else DMR_PREFIX)
    address = server.listening_address
    with open(args.address_file + ".tmp", "w") as f:
        json.dump({"address": str(address), "pid": os.getpid()}, f)
    os.replace(args.address_file + ".tmp", args.address_file)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    os._exit(0)   # llama.cpp's threads are not joined; nothing is left to flush


def start_in_process(model, port, prefix):
    """llama.cpp's HTTP server for *model* on 127.0.0.1, running in this process."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = N_CTX
    params.n_parallel = 4
    params.kv_unified = True   # every request may use the whole context, as in the captures
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.ui = False
    params.model_alias = {ALIAS}
    params.embedding = True
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    params.use_jinja = True
    if prefix:
        params.api_prefix = prefix
    return xllamacpp.Server(params)


def capture(folder):
    """Record what llama.cpp sends for tool calls and reasoning, streamed and not, as .http files.

    Runs in the venv; the test suite replays these files (folding a stream must give the reply).
    """
    import http.client

    os.makedirs(folder, exist_ok=True)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    jobs = [("tools", TOOL_PIECES, TOOL_TEMPLATE, {"messages": ask, "tools": [WEATHER_TOOL]}),
            ("reasoning", THINK_PIECES, THINK_TEMPLATE, {"messages": [{"role": "user", "content": "Hi"}]})]
    for name, pieces, template, body in jobs:
        model = os.path.join(CACHE, "tiny-%s.gguf" % name)
        write_tiny_model(model, pieces, template)
        server = start_in_process(model, 0, "")
        port = int(str(server.listening_address).rsplit(":", 1)[-1])
        for stream in (False, True):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            request = dict(body, model=ALIAS, stream=stream)
            if stream:
                request["stream_options"] = {"include_usage": True}
            conn.request("POST", "/v1/chat/completions", json.dumps(request), {"Content-Type": "application/json"})
            response = conn.getresponse()
            head = "HTTP/1.1 %d %s\r\n" % (response.status, response.reason)
            head += "".join("%s: %s\r\n" % pair for pair in response.getheaders()
                            if pair[0].lower() != "transfer-encoding")
            data = response.read()
            path = os.path.join(folder, "chat%s-%s.http" % ("-stream" if stream else "", name))
            with open(path, "wb") as f:
                f.write(head.encode("latin-1") + b"\r\n" + data)
            print(path)
            conn.close()


# -- start / stop (standard library only) ----------------------------------------


def server_name(args):
    """What a server's files are called: --name, else its layout."""
    return getattr(args, "name", None) or ("plain" if args.plain else "dmr")


def state_file(name):
    return os.path.join(CACHE, "server-%s.json" % name)


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_venv():
    """Create the venv with the pinned packages once; later calls reuse it."""
    marker = os.path.join(VENV, ".installed")
    wanted = "\n".join(PACKAGES)
    if os.path.exists(marker) and open(marker).read() == wanted:
        return
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    result = subprocess.run([venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                            + PACKAGES, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
        raise SystemExit("llama_server: pip could not install %s (is PyPI reachable?)" % " ".join(PACKAGES))
    with open(marker, "w") as f:
        f.write(wanted)


def running(name):
    """The state of the running server called *name*, or None."""
    try:
        with open(state_file(name)) as f:
            state = json.load(f)
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state if healthy(state["health"]) else None


def healthy(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start(args):
    name = server_name(args)
    state = running(name)
    if state:
        print(state["base_url"])
        return
    ensure_venv()
    if not os.path.exists(MODEL):
        subprocess.run([venv_python(), __file__, "model"], check=True)
    address_file = os.path.join(CACHE, "address-%s.json" % name)
    if os.path.exists(address_file):
        os.remove(address_file)
    log = open(os.path.join(CACHE, "server-%s.log" % name), "wb")
    command = [venv_python(), __file__, "serve", "--address-file", address_file, "--port", str(args.port)]
    if args.plain:
        command.append("--plain")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + args.wait
    while not os.path.exists(address_file):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("llama_server: the server did not start; see %s" % log.name)
        time.sleep(0.05)
    with open(address_file) as f:
        address = json.load(f)["address"]
    port = int(str(address).rsplit(":", 1)[-1])
    root = "http://127.0.0.1:%d" % port
    prefix = "" if args.plain else DMR_PREFIX
    health = root + prefix + "/health"
    while not healthy(health):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("llama_server: /health never answered; see %s" % log.name)
        time.sleep(0.1)
    base_url = root + "/v1" if args.plain else root
    with open(state_file(name), "w") as f:
        json.dump({"pid": process.pid, "base_url": base_url, "health": health}, f)
    print(base_url)


def terminate(pid, group=False):
    """SIGTERM process *pid* (with *group*, the process group it leads), SIGKILL it if it is
    still there after 5 s; quiet if it is gone already."""
    send = os.killpg if group else os.kill
    try:
        send(pid, signal.SIGTERM)
        for _ in range(100):
            send(pid, 0)
            time.sleep(0.05)
        send(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop(args):
    if args.all:
        names = [f[len("server-"):-len(".json")] for f in os.listdir(CACHE) if f.startswith("server-")
                 and f.endswith(".json")] if os.path.isdir(CACHE) else []
    else:
        names = [server_name(args)]
    for name in names:
        path = state_file(name)
        try:
            with open(path) as f:
                pid = json.load(f)["pid"]
        except (OSError, ValueError, KeyError):
            continue
        terminate(pid)
        try:
            os.remove(path)
        except FileNotFoundError:   # another `stop` got there first
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start a server (or find the running one); print its base URL")
    start_cmd.add_argument("--plain", action="store_true", help="serve /v1/... instead of DMR's /engines/llama.cpp/v1/...")
    start_cmd.add_argument("--name", help="what to call this server (default: its layout, dmr or plain)")
    start_cmd.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    start_cmd.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /health")
    stop_cmd = commands.add_parser("stop", help="stop a server started by `start`")
    stop_cmd.add_argument("--plain", action="store_true")
    stop_cmd.add_argument("--name", help="the server's --name")
    stop_cmd.add_argument("--all", action="store_true", help="stop every server started here")
    model_cmd = commands.add_parser("model", help="(venv) write the tiny model")
    model_cmd.add_argument("path", nargs="?", default=MODEL)
    capture_cmd = commands.add_parser("capture", help="record tool-call and reasoning exchanges into testdata/wire")
    capture_cmd.add_argument("--folder", default=os.path.join(os.path.dirname(HERE), "testdata", "wire"))
    capture_cmd.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    serve_cmd = commands.add_parser("serve", help="(venv) run the server in the foreground")
    serve_cmd.add_argument("--address-file", required=True)
    serve_cmd.add_argument("--port", type=int, default=0)
    serve_cmd.add_argument("--plain", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args)
    elif args.command == "stop":
        stop(args)
    elif args.command == "model":
        os.makedirs(os.path.dirname(os.path.abspath(args.path)), exist_ok=True)
        write_tiny_model(args.path)
    elif args.command == "capture":
        if args.in_venv:
            capture(args.folder)
            os._exit(0)   # llama.cpp's server threads are not joined
        ensure_venv()
        subprocess.run([venv_python(), __file__, "capture", "--in-venv", "--folder", args.folder], check=True)
    else:
        serve(args)


if __name__ == "__main__":
    main()
