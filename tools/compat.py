"""The compat tier: programs written as openai-python's README and Docker's Model Runner docs
write them, each run twice -- with openai-python itself (the control) and with only the import
changed to dmr_client -- and their outcomes compared (development and CI).

    python tools/compat.py                       # against the fake DMR of test_dmr_client.py
    python tools/compat.py --base-url URL --model ai/tiny [--embed-model M]   # a real server

Run it with a Python that has the pinned openai-python (tools/compat_tests.sh makes that venv);
it prints one line per program and exits 1 when an outcome differs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import dmr_client  # noqa: E402

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}


# -- the programs: each takes the module (openai or dmr_client) as `openai` ---------------------

def chat(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    completion = client.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=32)
    message = completion.choices[0].message
    return [message.role, message.content, message.tool_calls, message.refusal, completion.choices[0].logprobs,
            completion.choices[0].finish_reason, completion.object, completion.usage.total_tokens > 0]


def stream(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    text, roles, empty = "", [], 0
    with client.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=32,
                                        stream=True) as chunks:
        for chunk in chunks:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.role:
                roles.append(delta.role)
            if delta.content is None:
                empty += 1
            text += delta.content or ""
    return [text, roles[:1], chunk.object]


def stream_usage(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    usage = None
    for chunk in client.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=32,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
    return [usage is not None and usage.total_tokens > 0]


def raw_response(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, temperature=0,
                                                           max_tokens=32)
    return [raw.status_code, raw.headers.get("content-type", "").split(";")[0],
            raw.parse().choices[0].message.content]


def options(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker", max_retries=1, timeout=60)
    quick = client.with_options(max_retries=0, timeout=30)
    completion = quick.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=32,
                                               extra_body={"top_k": 1}, extra_headers={"X-Trace": "compat"})
    return [completion.choices[0].message.content, quick.max_retries, client.max_retries]


def errors(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker", max_retries=0)
    try:
        client.chat.completions.create(model="ai/not-pulled", messages=HELLO, max_tokens=4)
    except openai.APIStatusError as error:
        return ["status error", error.status_code, isinstance(error, openai.NotFoundError),
                isinstance(error, openai.APIError), error.response.status_code]
    except openai.APIError as error:
        return ["api error", type(error).__name__]
    return ["no error"]


def tools(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    completion = client.chat.completions.create(model=model, temperature=0, max_tokens=64, tools=[WEATHER],
                                                messages=[{"role": "user", "content": "Weather in Paris?"}])
    message = completion.choices[0].message
    calls = [(call.type, call.function.name) for call in message.tool_calls or []]
    return [calls, completion.choices[0].finish_reason]


def models(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    page = client.models.list()
    return [sorted(entry.id for entry in page) == sorted(entry.id for entry in page.data), len(page.data) > 0]


def embeddings(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker", max_retries=0)
    try:
        reply = client.embeddings.create(model=embed_model or model, input=["first", "second"])
    except openai.APIStatusError as error:
        return ["refused", error.status_code]
    # dmr_client puts data in input order (a server may not); the indices are the same
    return [len(reply.data), sorted(item.index for item in reply.data),
            all(isinstance(x, float) for x in reply.data[0].embedding)]


def dump(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker")
    completion = client.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=32)
    dumped = completion.model_dump()
    return [sorted(k for k in dumped["choices"][0]["message"] if dumped["choices"][0]["message"][k] is not None),
            "refusal" in dumped["choices"][0]["message"], isinstance(completion.to_json(), str)]


def responses(openai, base_url, model, embed_model):
    client = openai.OpenAI(base_url=base_url, api_key="docker", max_retries=0)
    response = client.responses.create(model=model, input="Say hello.", max_output_tokens=32)
    return [response.object, bool(response.output_text)]


#: Where dmr_client answers otherwise on purpose, and why (printed, never a failure).
KNOWN = {
    "responses": "the Responses route: dmr_client posts to DMR's root /v1/responses, the one route every DMR "
                 "release serves; openai-python to BASE/responses, which DMR's releases answer 404 under "
                 "/engines/... (llama.cpp's own server behind DMR-style paths serves it there, not at the root)",
}


def async_chat_and_stream(openai, base_url, model, embed_model):
    async def main():
        async with openai.AsyncOpenAI(base_url=base_url, api_key="docker") as client:
            completion = await client.chat.completions.create(model=model, messages=HELLO, temperature=0,
                                                              max_tokens=32)
            text = ""
            chunks = await client.chat.completions.create(model=model, messages=HELLO, temperature=0,
                                                          max_tokens=32, stream=True)
            async for chunk in chunks:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            return [completion.choices[0].message.content, text]
    return asyncio.run(main())


PROGRAMS = [chat, stream, stream_usage, raw_response, options, errors, tools, models, embeddings, dump,
            responses, async_chat_and_stream]


def outcome(program, module, base_url, model, embed_model):
    try:
        return program(module, base_url, model, embed_model)
    except Exception as error:   # what it raised is its outcome: compared by class name
        return ["raised", type(error).__name__]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible root (default: the fake DMR's /engines/v1)")
    parser.add_argument("--model", default="ai/smollm2")
    parser.add_argument("--embed-model", default=None)
    args = parser.parse_args(argv)
    try:
        import openai
    except ImportError:
        print("compat tier SKIPPED: openai-python is not installed (tools/compat_tests.sh installs it)")
        return 0
    fake = None
    base_url, embed_model = args.base_url, args.embed_model
    if base_url is None:
        import test_dmr_client

        fake = test_dmr_client.FakeDMR()
        base_url, embed_model = fake.url + "/engines/v1", "ai/mxbai-embed-large"
    failed = known_count = 0
    try:
        for program in PROGRAMS:
            control = outcome(program, openai, base_url, args.model, embed_model)
            ours = outcome(program, dmr_client, base_url, args.model, embed_model)
            same = control == ours
            known = not same and program.__name__ in KNOWN
            failed += not same and not known
            known_count += known
            print("%-5s %-22s %s" % ("ok" if same else "known" if known else "DIFF", program.__name__,
                                     repr(ours) if same else "openai %r, dmr_client %r%s" % (
                                         control, ours, " -- " + KNOWN[program.__name__] if known else "")))
    finally:
        if fake is not None:
            fake.close()
    print("compat: %d of %d programs behave the same with openai %s and dmr_client %s at %s (%d known, "
          "deliberate difference%s)" % (len(PROGRAMS) - failed - known_count, len(PROGRAMS), openai.__version__,
                                        dmr_client.__version__, base_url, known_count, "" if known_count == 1 else "s"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
