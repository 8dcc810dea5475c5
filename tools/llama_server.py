#!/usr/bin/env python3
"""Run llama.cpp's own HTTP server on loopback with a generated tiny model.

Docker Model Runner's default engine is llama.cpp's llama-server: DMR proxies
/engines/llama.cpp/v1/... to it byte for byte.  This script gives the tests
that same server code without Docker and without downloading a model:

    python3 tools/llama_server.py start            # DMR layout: /engines/llama.cpp/v1/...
    python3 tools/llama_server.py start --plain    # plain layout: /v1/...
    python3 tools/llama_server.py stop [--plain]   # or: stop --all
    python3 tools/llama_server.py start --name b   # a second DMR-layout server (the gateway tier)
    python3 tools/llama_server.py start --plain --model tools   # the tool-calling model (server plain-tools)

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
Two more models are built the same way (--model; MODELS): "tools" answers with a
Hermes-style get_weather(city="Paris") call, or, when the last message is a
tool result, with TOOL_ANSWER's words; "reasoning" thinks before it answers.
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
    "{{ '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if messages[-1]['role'] == 'tool' %}{{ '<|answer|>' }}{%- endif %}{%- endif %}")
# After a tool result the template ends the prompt with <|answer|> instead of the newline, and
# from there the tool model walks a second chain: a plain answer, so a tool loop ends.
TOOL_ANSWER = ("<|answer|>", ["It", " is", " sunny", " in", " Paris", "."])
THINK_PIECES = ["<think>", "\nThe user", " says hi", ".\n", "</think>", "\n\n", "Hello", "!"]
THINK_TEMPLATE = (
    "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['reasoning_content'] is defined and message['reasoning_content'] %}"
    "{{ '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' }}{%- endif %}"
    "{{ message['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
#: The models `start --model` serves: name -> write_tiny_model's (pieces, template, answer).
MODELS = {"chatml": (PIECES, CHATML, None),
          "tools": (TOOL_PIECES, TOOL_TEMPLATE, TOOL_ANSWER),
          "reasoning": (THINK_PIECES, THINK_TEMPLATE, None)}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def phrase_tokens(symbols, pieces=PIECES):
    """The tokens the model emits, spelt in the byte-level BPE alphabet."""
    return ["".join(symbols[b] for b in piece.encode()) for piece in pieces]


def write_tiny_model(path, pieces=PIECES, template=CHATML, answer=None):
    """The model that walks *pieces* after the prompt's last newline (or any other token).

    *answer*, a (control token, pieces) pair, adds a second chain: a prompt ending in that
    token is answered with those pieces instead.
    """
    import numpy as np
    import gguf

    n_embd, n_head, n_ff, n_layer = 64, 4, 128, 2
    symbols = byte_symbols()
    vocab = [symbols[b] for b in range(256)]
    words = phrase_tokens(symbols, pieces)
    answer_words = phrase_tokens(symbols, answer[1]) if answer else []
    vocab += [w for w in words + answer_words if w not in vocab]
    vocab += ["<|im_start|>", "<|im_end|>"] + ([answer[0]] if answer else [])
    types = [1] * len(vocab)
    index = {token: i for i, token in enumerate(vocab)}
    for control in ("<|im_start|>", "<|im_end|>") + ((answer[0],) if answer else ()):
        types[index[control]] = 3
    eos = index["<|im_end|>"]
    # The chain the model walks: newline (end of the generation prompt) -> each word -> EOS.
    chain = [index[symbols[ord("\n")]]] + [index[w] for w in words]
    nexts = chain[1:] + [eos]
    # The answer chain: its control token -> each of its words -> EOS.
    second = [index[answer[0]]] + [index[w] for w in answer_words] if answer else []
    second_nexts = second[1:] + [eos] if answer else []
    assert len(set(chain) | set(second)) == len(chain) + len(second), "the two chains share a token"

    rng = np.random.default_rng(20261122)
    embed = np.zeros((len(vocab), n_embd), dtype=np.float32)
    embed[:, 16:] = 0.1 * rng.standard_normal((len(vocab), n_embd - 16))   # makes embeddings differ
    default_dim = len(chain)
    assert default_dim + len(second) < 16, "the chains need more dimensions than the first 16"
    embed[:, default_dim] = 1.0                        # any other token: start the phrase
    for dim, token in enumerate(chain):
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0
    for dim, token in enumerate(second, default_dim + 1):
        embed[token, default_dim] = 0.0
        embed[token, dim] = 1.0
    head = np.zeros((len(vocab), n_embd), dtype=np.float32)
    for dim, following in enumerate(nexts):
        head[following, dim] = 10.0
    head[chain[1], default_dim] = 10.0
    for dim, following in enumerate(second_nexts, default_dim + 1):
        head[following, dim] = 10.0

    tmp = "%s.%d.tmp" % (path, os.getpid())   # two writers never share a temporary file
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
    model = model_path(args.model)
    if not os.path.exists(model):
        write_tiny_model(model, *MODELS[args.model])
    server = start_in_process(model, args.port, "" if args.plain else DMR_PREFIX)
    address = server.listening_address
    with open(args.address_file + ".tmp", "w") as f:
        json.dump({"address": str(address), "pid": os.getpid()}, f)
    os.replace(args.address_file + ".tmp", args.address_file)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    os._exit(0)   # llama.cpp's threads are not joined; nothing is left to flush


def model_path(name):
    """Where the model called *name* (a key of MODELS) is written: MODEL for the default."""
    return os.path.join(CACHE, "tiny-%s.gguf" % name)


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


#: The schema of the structured-output captures: what json_schema() gives for a dataclass
#: with one bool field (the tiny model, constrained, answers {"ok": true}).
ANSWER_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                 "additionalProperties": False}
#: A 2x2 black PNG, for the refusal of an image by a model without a projector.
TINY_PNG_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAC0lEQVR4nGNgQAYAAA4AAamRc7EAAAAASUVORK5CYII="


def capture(folder):
    """Record what llama.cpp sends into *folder* as .http files (status line, headers, blank
    line, body): tool calls and reasoning, streamed and not; the answer after a tool result;
    a json_schema answer; a schema put at the top of response_format (not applied); an image
    sent to a model without a projector (refused).

    Runs in the venv; the test suite replays these files (folding a stream must give the reply).
    """
    import http.client

    os.makedirs(folder, exist_ok=True)
    servers, ports = [], {}   # the servers stay referenced: a collected Server stops

    def post(filename, model, body, stream=False):
        if model not in ports:
            path = model_path(model)
            write_tiny_model(path, *MODELS[model])
            server = start_in_process(path, 0, "")
            servers.append(server)
            ports[model] = int(str(server.listening_address).rsplit(":", 1)[-1])
        conn = http.client.HTTPConnection("127.0.0.1", ports[model], timeout=60)
        request = dict(body, model=ALIAS, stream=stream)
        if stream:
            request["stream_options"] = {"include_usage": True}
        conn.request("POST", "/v1/chat/completions", json.dumps(request), {"Content-Type": "application/json"})
        response = conn.getresponse()
        head = "HTTP/1.1 %d %s\r\n" % (response.status, response.reason)
        head += "".join("%s: %s\r\n" % pair for pair in response.getheaders()
                        if pair[0].lower() != "transfer-encoding")
        data = response.read()
        conn.close()
        path = os.path.join(folder, filename)
        with open(path, "wb") as f:
            f.write(head.encode("latin-1") + b"\r\n" + data)
        print(path)
        return data

    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    tools_body = {"messages": ask, "tools": [WEATHER_TOOL]}
    reasoning_body = {"messages": [{"role": "user", "content": "Hi"}]}
    first = post("chat-tools.http", "tools", tools_body)
    post("chat-stream-tools.http", "tools", tools_body, stream=True)
    post("chat-reasoning.http", "reasoning", reasoning_body)
    post("chat-stream-reasoning.http", "reasoning", reasoning_body, stream=True)
    # The round trip's second turn: the assistant turn as llama.cpp sent it, then the tool result.
    call_turn = json.loads(first)["choices"][0]["message"]
    [call] = call_turn["tool_calls"]
    result = {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 24 C"}
    post("chat-tools-answer.http", "tools", {"messages": ask + [call_turn, result], "tools": [WEATHER_TOOL]})

    say = [{"role": "user", "content": "Say hello."}]
    sampling = {"temperature": 0, "seed": 42, "max_tokens": 48}
    post("chat-json-schema.http", "chatml", dict(sampling, messages=say, response_format={
        "type": "json_schema", "json_schema": {"name": "Answer", "schema": ANSWER_SCHEMA}}))
    # Not applied: llama.cpp reads only response_format.json_schema.schema for this type, so the
    # grammar is "any JSON object" and the toy model runs on to max_tokens inside a string.
    post("chat-json-schema-top-level.http", "chatml", dict(sampling, messages=say, max_tokens=16, response_format={
        "type": "json_schema", "schema": ANSWER_SCHEMA}))
    post("error-500-image.http", "chatml", dict(sampling, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": TINY_PNG_URL}}]}]))


# -- start / stop (standard library only) ----------------------------------------


def server_name(args):
    """What a server's files are called: --name, else its layout (and its model, if not the default)."""
    model = getattr(args, "model", "chatml")
    layout = "plain" if args.plain else "dmr"
    return getattr(args, "name", None) or (layout if model == "chatml" else layout + "-" + model)


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
        if state.get("model", "chatml") != args.model:
            raise SystemExit("llama_server: server %r is running with the %s model; stop it first"
                             % (name, state.get("model", "chatml")))
        print(state["base_url"])
        return
    ensure_venv()
    model = model_path(args.model)
    if not os.path.exists(model) or os.path.getmtime(model) < os.path.getmtime(__file__):
        # written again whenever this script changes, so a cached model never lags its recipe
        subprocess.run([venv_python(), __file__, "model", "--kind", args.model, model], check=True)
    address_file = os.path.join(CACHE, "address-%s.json" % name)
    if os.path.exists(address_file):
        os.remove(address_file)
    log = open(os.path.join(CACHE, "server-%s.log" % name), "wb")
    command = [venv_python(), __file__, "serve", "--address-file", address_file, "--port", str(args.port),
               "--model", args.model]
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
        json.dump({"pid": process.pid, "base_url": base_url, "health": health, "model": args.model}, f)
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
    start_cmd.add_argument("--name", help="what to call this server (default: its layout, dmr or plain, "
                                                 "then -MODEL for a --model other than chatml)")
    start_cmd.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    start_cmd.add_argument("--model", choices=sorted(MODELS), default="chatml",
                           help="which tiny model: chatml (answers PHRASE; the default), tools (calls "
                                "get_weather, and answers in words after a tool result), reasoning")
    start_cmd.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /health")
    stop_cmd = commands.add_parser("stop", help="stop a server started by `start`")
    stop_cmd.add_argument("--plain", action="store_true")
    stop_cmd.add_argument("--name", help="the server's --name")
    stop_cmd.add_argument("--model", choices=sorted(MODELS), default="chatml", help="the server's --model")
    stop_cmd.add_argument("--all", action="store_true", help="stop every server started here")
    model_cmd = commands.add_parser("model", help="(venv) write the tiny model")
    model_cmd.add_argument("path", nargs="?", default=MODEL)
    model_cmd.add_argument("--kind", choices=sorted(MODELS), default="chatml")
    capture_cmd = commands.add_parser("capture", help="record tool-call and reasoning exchanges into testdata/wire")
    capture_cmd.add_argument("--folder", default=os.path.join(os.path.dirname(HERE), "testdata", "wire"))
    capture_cmd.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    serve_cmd = commands.add_parser("serve", help="(venv) run the server in the foreground")
    serve_cmd.add_argument("--address-file", required=True)
    serve_cmd.add_argument("--port", type=int, default=0)
    serve_cmd.add_argument("--plain", action="store_true")
    serve_cmd.add_argument("--model", choices=sorted(MODELS), default="chatml")
    args = parser.parse_args(argv)
    if args.command == "start":
        start(args)
    elif args.command == "stop":
        stop(args)
    elif args.command == "model":
        os.makedirs(os.path.dirname(os.path.abspath(args.path)), exist_ok=True)
        write_tiny_model(args.path, *MODELS[args.kind])
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
