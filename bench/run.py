#!/usr/bin/env python3
"""Measure dmr_client against the Python floor and its peers, side by side, in one run.

    python3 bench/run.py            # about 20 minutes on 2 cores; writes bench/RESULTS.md
    python3 bench/run.py --quick    # fewer repetitions, for a first look

Creates .cache/bench/venv with the pinned baselines (requests, openai, httpx,
aiohttp) and uvloop for the server, and .cache/bench/litellm for LiteLLM (which
pins an older openai than the current one measured here), starts bench/server.py on loopback, then runs every
client in a fresh process per measurement (so imports, caches and RSS do not
leak between them) and reports medians and ratios to the raw http.client loop.
Development only: dmr_client itself needs none of this.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENVS = {"venv": ["requests==2.34.2", "openai==3.57.0", "httpx==0.29.0", "aiohttp==3.14.5", "uvloop==0.23.0"],
         "litellm": ["litellm==1.106.2"]}
CLIENTS = ["raw", "raw_read1", "urllib", "requests", "openai", "litellm", "dmr_client", "dmr_openai"]
#: The async rows: the bare asyncio streams loop is their floor.
ASYNC_CLIENTS = ["aio_raw", "dmr_async", "AsyncOpenAI", "httpx_async", "aiohttp"]
PY = os.path.join(ROOT, ".cache", "bench", "venv", "bin", "python")


def python_for(client):
    name = "litellm" if client == "litellm" else "venv"
    return os.path.join(ROOT, ".cache", "bench", name, "bin", "python")


def ensure_venv():
    for name, packages in VENVS.items():
        venv = os.path.join(ROOT, ".cache", "bench", name)
        marker = os.path.join(venv, ".installed")
        wanted = "\n".join(packages)
        if os.path.exists(marker) and open(marker).read() == wanted:
            continue
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check"] + packages, check=True)
        with open(marker, "w") as f:
            f.write(wanted)


def env():
    environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    environment.update(PYTHONPATH=ROOT, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONDONTWRITEBYTECODE="")
    return environment


def start_server(write="burst"):
    """bench/server.py writing each stream in one write ("burst") or one write per event ("token")."""
    process = subprocess.Popen([PY, os.path.join(HERE, "server.py"), "--write", write], stdout=subprocess.PIPE,
                               text=True, env=env())
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit("bench: the server did not start")
    return process, url


def workload(client, *args):
    out = subprocess.run([python_for(client), os.path.join(HERE, "workloads.py"), client] + list(args),
                         capture_output=True,
                         text=True, env=env(), timeout=300)
    if out.returncode:
        raise SystemExit("bench: %s %s failed:\n%s" % (client, args, out.stderr[-3000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_ms(statement, runs):
    """Median cost of *statement* in a fresh interpreter, in ms, from `python -X importtime`:
    the cumulative times of the modules it imports that interpreter start-up did not."""
    def run(code):
        python = python_for("litellm" if "litellm" in statement else "")
        err = subprocess.run([python, "-X", "importtime", "-c", code], capture_output=True, text=True,
                             env=env(), check=True).stderr
        times = {}
        for line in err.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and line.startswith("import time:") and parts[1].strip().isdigit():
                name = parts[2]
                depth = len(name) - len(name.lstrip(" "))
                times.setdefault(name.strip(), (depth, int(parts[1])))
        return times
    startup = set(run("pass"))
    totals = []
    for _ in range(runs):
        times = run(statement)
        top = min(depth for name, (depth, _) in times.items() if name not in startup)
        totals.append(sum(us for name, (depth, us) in times.items() if name not in startup and depth == top))
    return statistics.median(totals) / 1000


def peak_rss_kib(client, url, runs):
    """Median peak RSS of a one-request script, as the script itself reads it (the rusage that
    wait4() returns would be this process's peak whenever it is the higher: ru_maxrss survives exec)."""
    return statistics.median(workload(client, "one", url)["peak_rss_kib"] for _ in range(runs))


def server_capacity(url):
    """Requests/s a C load generator (wrk, if installed) gets from the server: it must be far
    above every client's rate for the clients, not the server, to be what is measured."""
    import shutil
    import tempfile

    if not shutil.which("wrk"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     'wrk.body = \'{"model":"ai/smollm2","messages":[{"role":"user","content":"Hi"}]}\'\n')
    try:
        out = subprocess.run(["wrk", "-t1", "-c8", "-d3s", "-s", script.name,
                              url + "/engines/llama.cpp/v1/chat/completions"], capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def parser_times(runs):
    """dmr_client's SSE parser alone, next to the raw loop's split: seconds, medians."""
    sys.path.insert(0, ROOT)
    import dmr_client

    def raw_split(chunks):
        count, rest = 0, b""
        for chunk in chunks:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            count += sum(1 for line in lines if line.startswith(b"data: "))
        return count

    def pieces(data, size):
        return [data[i:i + size] for i in range(0, len(data), size)]

    def best(function, *args):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            function(*args)
            times.append(time.perf_counter() - started)
        return min(times)   # the parser alone: the least disturbed run

    consume = lambda chunks: sum(1 for _ in dmr_client.iter_sse(chunks))   # noqa: E731
    results = {}
    line = b"data: " + b"x" * (4 * 1024 * 1024) + b"\n\n"
    results["4 MB line, 64 KiB reads"] = (best(consume, pieces(line, 65536)), best(raw_split, pieces(line, 65536)))
    for megabytes in (2, 4, 8, 16):   # from 4 MB on past the CPU's caches: growth shows the algorithm
        big = b"data: " + b"x" * (megabytes * 1024 * 1024) + b"\n\n"
        results["%d MB line, 1 KiB reads" % megabytes] = (best(consume, pieces(big, 1024)), None)
    small = b"".join(b'data: {"i":%d,"choices":[{"delta":{"content":"tok"}}]}\n\n' % i for i in range(100000))
    results["100k small events, 64 KiB reads"] = (best(consume, pieces(small, 65536)),
                                                  best(raw_split, pieces(small, 65536)))
    return results


def versions():
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "['requests', 'openai', 'uvloop', 'httpx', 'aiohttp']}))")
    found = json.loads(subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout)
    code = "import importlib.metadata as m; print(m.version('litellm'), m.version('openai'))"
    litellm, its_openai = subprocess.run([python_for("litellm"), "-c", code], capture_output=True, text=True,
                                         check=True).stdout.split()
    found["litellm"] = "%s (with openai %s)" % (litellm, its_openai)
    sys.path.insert(0, ROOT)
    import dmr_client
    found["dmr_client"] = dmr_client.__version__
    return found


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    reps, seconds = (1, 1.0) if args.quick else (5, 1.5)
    ensure_venv()
    server, url = start_server("burst")
    token_server, token_url = start_server("token")
    rows = {}
    try:
        print("server:", url, "(burst writes);", token_url, "(token writes)", flush=True)
        sys.path.insert(0, HERE)
        import workloads
        imports = {}
        for name in ["raw", "urllib", "requests", "openai", "litellm", "dmr_client", "dmr_client + Client()",
                     "dmr_client + AsyncClient()",
                     "dmr_client's stdlib"]:
            runs = 5 if name in ("openai", "litellm") else 30
            imports[name] = import_ms(workloads.IMPORTS[name], 2 if args.quick else runs)
            print("import", name, round(imports[name], 1), "ms", flush=True)
        # Rounds over all clients rather than all rounds of one client: a machine that drifts
        # (frequency, noisy neighbours) then shifts every client alike and the ratios stay fair.
        runs = {client: {"chat": [], "stream": [], "ttfc": [], "ttfc_token": []} for client in CLIENTS}
        runs.update({client: {"chat": [], "stream": [], "ttfc": [], "ttfc_token": [], "streams64": []}
                     for client in ASYNC_CLIENTS})
        for _ in range(reps):
            for client in CLIENTS + ASYNC_CLIENTS:
                runs[client]["chat"].append(workload(client, "chat", url, str(seconds)))
                runs[client]["stream"].append(workload(client, "stream", url, str(seconds), "1000"))
                runs[client]["ttfc"].append(workload(client, "ttfc", url, "500" if not args.quick else "50"))
                runs[client]["ttfc_token"].append(workload(client, "ttfc", token_url, "500" if not args.quick else "50"))
                if client in ASYNC_CLIENTS:
                    runs[client]["streams64"].append(workload(client, "streams64", url, str(seconds), "200"))
        async_rows = {}
        for client in ASYNC_CLIENTS:
            chats, streams, ttfc, wide = (runs[client][k] for k in ("chat", "stream", "ttfc", "streams64"))
            row = async_rows[client] = {
                "chats_per_s": statistics.median(r["calls"] / r["wall"] for r in chats),
                "cpu_us_per_chat": statistics.median(r["cpu"] / r["calls"] * 1e6 for r in chats),
                "chunks_per_s": statistics.median(r["chunks"] / r["wall"] for r in streams),
                "ttfc_us": statistics.median(r["median"] * 1e6 for r in ttfc),
                "ttfc_token_us": statistics.median(r["median"] * 1e6 for r in runs[client]["ttfc_token"]),
                "wide_chunks_per_s": statistics.median(r["chunks"] / r["wall"] for r in wide)}
            print(client, json.dumps({k: round(v, 1) for k, v in row.items()}), flush=True)
        for client in CLIENTS:
            row = rows[client] = {"import_ms": imports.get("dmr_client" if client == "dmr_openai" else client,
                                                           imports["raw"])}
            row["rss_kib"] = peak_rss_kib(client, url, reps)
            chats, streams, ttfc = runs[client]["chat"], runs[client]["stream"], runs[client]["ttfc"]
            row["chats_per_s"] = statistics.median(r["calls"] / r["wall"] for r in chats)
            row["cpu_us_per_chat"] = statistics.median(r["cpu"] / r["calls"] * 1e6 for r in chats)
            row["chunks_per_s"] = statistics.median(r["chunks"] / r["wall"] for r in streams)
            row["cpu_ms_per_stream"] = statistics.median(r["cpu"] / r["calls"] * 1e3 for r in streams)
            row["ttfc_us"] = statistics.median(r["median"] * 1e6 for r in ttfc)
            row["ttfc_token_us"] = statistics.median(r["median"] * 1e6 for r in runs[client]["ttfc_token"])
            print(client, json.dumps({k: round(v, 1) for k, v in row.items()}), flush=True)
        parsers = parser_times(5 if not args.quick else 1)
        memory = {"stream": workload("dmr_client", "stream_rss", url, "200000"),
                  "body": workload("dmr_client", "body_rss", url, "200")}
        print("memory", json.dumps(memory), flush=True)
        capacity = server_capacity(url)
    finally:
        for process in (server, token_server):
            process.kill()
            process.wait()
    found = versions()
    with open(os.path.join(ROOT, ".cache", "bench", "last-run.json"), "w") as f:   # the figures, whatever happens next
        json.dump({"rows": rows, "async_rows": async_rows, "imports": imports, "parsers": parsers, "memory": memory,
                   "versions": found, "capacity": capacity}, f)
    write_results(args.output, rows, async_rows, imports, parsers, memory, found, capacity, quick=args.quick)
    print("wrote", args.output)


def write_results(path, rows, async_rows, imports, parsers, memory, found, capacity, quick):
    raw, read1, dmr = rows["raw"], rows["raw_read1"], rows["dmr_client"]
    stdlib = imports["dmr_client's stdlib"]
    lines = ["# Benchmark results", "",
             "Written by `python3 bench/run.py`%s on %s." % (" --quick" if quick else "",
                                                          datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
             "Machine: %s, %d cores, %s; Python %s." % (cpu_model(), os.cpu_count() or 0, platform.platform(),
                                                        platform.python_version()),
             "Versions: " + ", ".join("%s %s" % item for item in sorted(found.items())) + ".",
             "Server: bench/server.py (asyncio + uvloop) on loopback, llama.cpp's JSON and SSE framing, heads and "
             "bodies that differ per request as a real server's do (a `Date` that changes each second, ids, "
             "`created`, words and so lengths per answer); every client runs in a fresh process per measurement; "
             "medians.",
             "Write modes: *burst* writes a whole stream at once (a proxy, a buffer or a fast server: the client "
             "gets many events in one read), *token* writes one event at a time with a yield between writes, as "
             "llama.cpp does. First chunk: request sent to first chunk in hand, streams of 20 chunks; every other "
             "figure is from the burst server.",
             "Server capacity: %s." % ("wrk (1 thread, 8 connections) gets %.0f chats/s from it" % capacity
                                      if capacity else "not measured (wrk is not installed)"),
             "Import cost: modules' cumulative time from `python -X importtime`, less interpreter start-up; "
             "dmr_client's stdlib baseline imports the standard modules dmr_client uses (http.client "
             "included, which dmr_client imports when the first Client is made).", "",
             "## Medians", "",
             "| client | import ms | peak RSS MiB (one request) | chats/s | CPU µs/chat | chunks/s | "
             "CPU ms/stream of 1000 | first chunk µs, burst | first chunk µs, token |",
             "|---|---|---|---|---|---|---|---|---|"]
    for client, row in rows.items():
        lines.append("| %s | %.1f | %.1f | %.0f | %.0f | %.0f | %.1f | %.0f | %.0f |" % (
            client, row["import_ms"], row["rss_kib"] / 1024, row["chats_per_s"], row["cpu_us_per_chat"],
            row["chunks_per_s"], row["cpu_ms_per_stream"], row["ttfc_us"], row["ttfc_token_us"]))
    lines += ["", "## Ratios to the raw http.client loop (higher is better for rates, lower for costs)", "",
              "| client | chats/s | chunks/s | first chunk, burst | first chunk, token | peak RSS |",
              "|---|---|---|---|---|---|"]
    for client, row in rows.items():
        lines.append("| %s | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |" % (
            client, row["chats_per_s"] / raw["chats_per_s"], row["chunks_per_s"] / raw["chunks_per_s"],
            row["ttfc_us"] / raw["ttfc_us"], row["ttfc_token_us"] / raw["ttfc_token_us"],
            row["rss_kib"] / raw["rss_kib"]))
    floor, mine, openai_async = async_rows["aio_raw"], async_rows["dmr_async"], async_rows["AsyncOpenAI"]
    lines += ["", "## Async clients (ratios to the bare asyncio streams loop; 64 streams: 64 concurrent streams "
                  "of 200 chunks, total chunks/s)", "",
              "| client | chats/s | CPU µs/chat | chunks/s | first chunk µs, burst | first chunk µs, token | "
              "64 streams chunks/s | chats | chunks | first chunk, burst | first chunk, token | 64 streams |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for client, row in async_rows.items():
        lines.append("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f× | %.2f× | %.2f× | %.2f× | %.2f× |" % (
            client, row["chats_per_s"], row["cpu_us_per_chat"], row["chunks_per_s"], row["ttfc_us"],
            row["ttfc_token_us"], row["wide_chunks_per_s"], row["chats_per_s"] / floor["chats_per_s"],
            row["chunks_per_s"] / floor["chunks_per_s"], row["ttfc_us"] / floor["ttfc_us"],
            row["ttfc_token_us"] / floor["ttfc_token_us"], row["wide_chunks_per_s"] / floor["wide_chunks_per_s"]))
    lines += ["", "## Parser alone (dmr_client.iter_sse, fastest of 5; the raw loop's bare split where comparable)", "",
              "| input | dmr_client s | raw split s |", "|---|---|---|"]
    for name, (ours, theirs) in parsers.items():
        lines.append("| %s | %.4f | %s |" % (name, ours, "%.4f" % theirs if theirs else "—"))
    small = parsers["100k small events, 64 KiB reads"][0]

    def check(ok):
        return "met" if ok else "**missed**"
    targets = [
        ("import within 10 % of the stdlib modules it uses",
         "%.1f ms vs %.1f ms (%+.0f %%); with the first Client(), which imports http.client: %.1f ms" % (
             imports["dmr_client"], stdlib, 100 * (imports["dmr_client"] / stdlib - 1),
             imports["dmr_client + Client()"]),
         imports["dmr_client"] <= 1.10 * stdlib),
        ("import dmr_client does not import asyncio (the first AsyncClient() does)",
         "%.1f ms with the first AsyncClient()" % imports["dmr_client + AsyncClient()"],
         imports["dmr_client + AsyncClient()"] > imports["dmr_client"]),
        ("import ≥ 20× cheaper than openai-python", "%.1f× (the bare http.client + json floor: %.1f×)" % (
            imports["openai"] / max(imports["dmr_client"], 1e-3), imports["openai"] / max(imports["raw"], 1e-3)),
         imports["openai"] >= 20 * imports["dmr_client"]),
        ("non-streaming ≥ 1.0× the raw loop", "%.2f× (%.1f× openai-python)" % (
            dmr["chats_per_s"] / raw["chats_per_s"], dmr["chats_per_s"] / rows["openai"]["chats_per_s"]),
         dmr["chats_per_s"] >= raw["chats_per_s"]),
        ("streaming ≥ 1.2× the raw readline loop", "%.2f× (%.1f× openai-python)" % (
            dmr["chunks_per_s"] / raw["chunks_per_s"], dmr["chunks_per_s"] / rows["openai"]["chunks_per_s"]),
         dmr["chunks_per_s"] >= 1.2 * raw["chunks_per_s"]),
        ("streaming within 10 % of the read1() floor", "%.2f×" % (dmr["chunks_per_s"] / read1["chunks_per_s"]),
         dmr["chunks_per_s"] >= 0.9 * read1["chunks_per_s"]),
        ("first chunk ≤ 1.0× raw, whole stream in one write (burst)", "%.2f× (%.0f vs %.0f µs)" % (
            dmr["ttfc_us"] / raw["ttfc_us"], dmr["ttfc_us"], raw["ttfc_us"]), dmr["ttfc_us"] <= raw["ttfc_us"]),
        ("first chunk ≤ 1.0× raw, one write per event (token)", "%.2f× (%.0f vs %.0f µs)" % (
            dmr["ttfc_token_us"] / raw["ttfc_token_us"], dmr["ttfc_token_us"], raw["ttfc_token_us"]),
         dmr["ttfc_token_us"] <= raw["ttfc_token_us"]),
        ("parser linear on a long line (time per MB at 16 MB within 1.25× of at 4 MB)",
         "%.1f ms/MB at 4 MB, %.1f ms/MB at 16 MB (2 MB, cache-resident: %.1f)" % (
             parsers["4 MB line, 1 KiB reads"][0] * 1e3 / 4, parsers["16 MB line, 1 KiB reads"][0] * 1e3 / 16,
             parsers["2 MB line, 1 KiB reads"][0] * 1e3 / 2),
         parsers["16 MB line, 1 KiB reads"][0] / 16 <= 1.25 * parsers["4 MB line, 1 KiB reads"][0] / 4),
        ("parser ≥ 1 M small events per minute", "%.1f M/min" % (100000 / small * 60 / 1e6), 100000 / small * 60 >= 1e6),
        ("OpenAI().chat.completions.create within 5 % of Client.chat, non-streaming",
         "%.2f×" % (rows["dmr_openai"]["chats_per_s"] / dmr["chats_per_s"]),
         rows["dmr_openai"]["chats_per_s"] >= 0.95 * dmr["chats_per_s"]),
        ("OpenAI().chat.completions.create within 5 % of Client.chat, streaming",
         "%.2f×" % (rows["dmr_openai"]["chunks_per_s"] / dmr["chunks_per_s"]),
         rows["dmr_openai"]["chunks_per_s"] >= 0.95 * dmr["chunks_per_s"]),
        ("peak RSS ≤ 1.05× the raw loop", "%.2f×" % (dmr["rss_kib"] / raw["rss_kib"]), dmr["rss_kib"] <= 1.05 * raw["rss_kib"]),
        ("a stream of 200k chunks iterated (no final()) grows RSS by < 5 MB",
         "%.1f MB over %d chunks" % (memory["stream"]["growth_kib"] / 1024, memory["stream"]["chunks"]),
         memory["stream"]["growth_kib"] < 5 * 1024),
        ("a non-streaming body peaks at ≤ ~2× its size",
         "%.2f× for %d MB (the parsed reply included)" % (
             memory["body"]["growth_kib"] * 1024 / memory["body"]["bytes"], memory["body"]["bytes"] / 1e6),
         memory["body"]["growth_kib"] * 1024 <= 2.2 * memory["body"]["bytes"]),
    ]
    targets += [
        ("async non-streaming ≥ 0.9× the bare asyncio loop", "%.2f× (%.1f× AsyncOpenAI)" % (
            mine["chats_per_s"] / floor["chats_per_s"], mine["chats_per_s"] / openai_async["chats_per_s"]),
         mine["chats_per_s"] >= 0.9 * floor["chats_per_s"]),
        ("async first chunk ≤ 1.0× the bare asyncio loop (burst; token)", "%.2f×; %.2f×" % (
            mine["ttfc_us"] / floor["ttfc_us"], mine["ttfc_token_us"] / floor["ttfc_token_us"]),
         mine["ttfc_us"] <= floor["ttfc_us"] and mine["ttfc_token_us"] <= floor["ttfc_token_us"]),
        ("async streaming ≥ 1.0× the bare asyncio loop", "%.2f× (%.1f× AsyncOpenAI)" % (
            mine["chunks_per_s"] / floor["chunks_per_s"], mine["chunks_per_s"] / openai_async["chunks_per_s"]),
         mine["chunks_per_s"] >= floor["chunks_per_s"]),
        ("64 concurrent streams ≥ 5× AsyncOpenAI's total", "%.1f× (%.2f× the bare loop)" % (
            mine["wide_chunks_per_s"] / openai_async["wide_chunks_per_s"],
            mine["wide_chunks_per_s"] / floor["wide_chunks_per_s"]),
         mine["wide_chunks_per_s"] >= 5 * openai_async["wide_chunks_per_s"]),
    ]
    lines += ["", "## Targets (issues 6, 9 and 10; first chunk in both write modes, chats ≥ 1.0× raw: the real-server issue)", "", "| target | measured | |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % (name, measured, check(ok)) for name, measured, ok in targets]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
