#!/usr/bin/env python3
"""Baton's local API as the official `openai` Python client sees it.

    BATON_API_BASE=http://127.0.0.1:PORT/v1 BATON_API_TOKEN=… BATON_API_MODEL=tiny \
        python3 openai_client.py

Run by the Rust test `the_official_openai_client_gets_what_it_asks_for` (tests/api.rs), which
starts the API in-process with a tiny random-weight model. Prints one line per check and
exits non-zero at the first failure.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import sys

import openai

BASE = os.environ["BATON_API_BASE"]
TOKEN = os.environ["BATON_API_TOKEN"]
MODEL = os.environ.get("BATON_API_MODEL", "tiny")
PROMPT = [{"role": "user", "content": "Tell me about lighthouses."}]

client = openai.OpenAI(base_url=BASE, api_key=TOKEN, max_retries=0, timeout=300)


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


def ask(**kwargs):
    return client.chat.completions.create(model=MODEL, messages=PROMPT, **kwargs)


# max_tokens
r = ask(max_tokens=5, temperature=0)
check(
    "max_tokens=5 gives 5 tokens and finish_reason length",
    r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length",
    f"{r.usage.completion_tokens} tokens, {r.choices[0].finish_reason}",
)
r = ask(max_completion_tokens=3, temperature=0)
check("max_completion_tokens=3 gives 3 tokens", r.usage.completion_tokens == 3,
      f"{r.usage.completion_tokens} tokens")

# temperature 0 is repeatable
a = ask(max_tokens=24, temperature=0).choices[0].message.content
b = ask(max_tokens=24, temperature=0).choices[0].message.content
check("temperature=0 twice gives the same text", a == b, repr(a))

# stop: a piece from the middle of the greedy answer ends the next answer right before it
middle = len(a) // 2
stop = a[middle:middle + 3]
r = ask(max_tokens=24, temperature=0, stop=stop)
text = r.choices[0].message.content
expected = a[: a.find(stop)]
check(
    "stop ends the text right before the stop string",
    text == expected and r.choices[0].finish_reason == "stop",
    f"stop={stop!r}, got {text!r}, finish_reason {r.choices[0].finish_reason}",
)
r = ask(max_tokens=24, temperature=0, stop=["\x01never", stop])
check("stop as a list works too", r.choices[0].message.content == expected)

# seed
one = ask(max_tokens=16, temperature=1, seed=1234).choices[0].message.content
two = ask(max_tokens=16, temperature=1, seed=1234).choices[0].message.content
check("seed=1234 at temperature=1 twice gives the same text", one == two, repr(one))
others = {ask(max_tokens=16, temperature=1, seed=s).choices[0].message.content for s in (1, 2, 3)}
check("other seeds give other text", len(others | {one}) > 1, f"{len(others | {one})} distinct")

# streaming with usage
plain = ask(max_tokens=20, temperature=0)
chunks = list(ask(max_tokens=20, temperature=0, stream=True,
                  stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
last = chunks[-1]
check(
    "streamed deltas join to the non-streamed text",
    streamed == plain.choices[0].message.content,
    f"{len(chunks)} chunks",
)
check(
    "the last streamed chunk carries usage (include_usage)",
    last.usage is not None and last.choices == []
    and last.usage.completion_tokens == plain.usage.completion_tokens,
    f"{last.usage}",
)
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
check("the stream says finish_reason length", finishes == ["length"], f"{finishes}")
chunks = list(ask(max_tokens=4, temperature=0, stream=True))
check("without include_usage no chunk carries usage",
      all(c.usage is None for c in chunks) and all(c.choices for c in chunks))

# unsupported parameters are refused, not ignored
for name, kwargs, says in [
    ("n=2", {"n": 2}, "`n`"),
    ("logprobs=True", {"logprobs": True}, "log probabilities"),
    ("tools", {"tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]},
     "tool"),
    ("temperature=5", {"temperature": 5}, "between 0 and 2"),
]:
    try:
        ask(max_tokens=4, **kwargs)
        check(f"{name} is refused", False, "it was accepted")
    except openai.BadRequestError as e:
        message = e.body.get("message", "") if isinstance(e.body, dict) else str(e)
        check(f"{name} is refused with BadRequestError", says in message, message)

# response_format: the local worker samples under a grammar made from it
r = ask(max_tokens=48, temperature=0, response_format={"type": "json_object"})
text = r.choices[0].message.content
check("response_format json_object is accepted and the answer opens a JSON object",
      text.lstrip().startswith("{"),
      f"{r.usage.completion_tokens} tokens, finish_reason {r.choices[0].finish_reason}: {text[:50]!r}…")
schema = {"type": "object", "properties": {"ok": {"type": "boolean"}},
          "required": ["ok"], "additionalProperties": False}
r = ask(max_tokens=48, temperature=1, seed=5, response_format={
    "type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}})
text = r.choices[0].message.content
try:
    value = json.loads(text)
except ValueError:
    value = None
check("response_format json_schema gives JSON matching the schema",
      isinstance(value, dict) and set(value) == {"ok"} and isinstance(value["ok"], bool),
      repr(text))

# embeddings from the local model: unit vectors, in order, closer for closer meanings
if os.environ.get("BATON_API_EMBEDDINGS"):
    e = client.embeddings.create(
        model="all-minilm-l6-v2",
        input=["The cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock prices fell sharply."])
    vectors = [d.embedding for d in e.data]
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    check("embeddings: three 384-dimension unit vectors in order",
          [d.index for d in e.data] == [0, 1, 2] and all(len(v) == 384 for v in vectors)
          and all(abs(dot(v, v) - 1) < 1e-3 for v in vectors),
          f"{len(vectors)} vectors of {len(vectors[0])}")
    check("embeddings: paraphrases are closer than unrelated texts",
          dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.3,
          f"{dot(vectors[0], vectors[1]):.2f} vs {dot(vectors[0], vectors[2]):.2f}")
    check("embeddings: usage counts the tokens read", e.usage.prompt_tokens > 10,
          f"{e.usage.prompt_tokens} tokens")
    # Asked for explicitly, base64 comes back as text: little-endian float32.
    b = client.embeddings.create(model="all-minilm-l6-v2", input="The cat sleeps on the sofa.",
                                 encoding_format="base64")
    raw = b.data[0].embedding
    decoded = (list(struct.unpack(f"<{len(base64.b64decode(raw)) // 4}f", base64.b64decode(raw)))
               if isinstance(raw, str) else raw)
    check("embeddings: base64 decodes to the same vector",
          len(decoded) == 384 and abs(dot(decoded, vectors[0]) - 1) < 1e-3,
          f"{type(raw).__name__}, {len(decoded)} values")
    try:
        client.embeddings.create(model="text-embedding-3-small", input="x")
        check("an unknown embedding model is refused", False, "it was accepted")
    except openai.NotFoundError as e:
        check("an unknown embedding model is refused with NotFoundError", "all-minilm-l6-v2" in str(e), str(e))

print("all openai client checks passed", flush=True)
