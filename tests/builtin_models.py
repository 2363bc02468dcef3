#!/usr/bin/env python3
"""The built-in models end to end: the real `genai` binary, `serve --demo`, OpenAI's Python SDK.

Run: GENAI_BIN=target/release/genai python3 tests/builtin_models.py (scripts/test does, after
`scripts/install-models`). Needs the models installed in GENAI_MODELS_DIR (default
~/.cache/genai/models) and the `openai` package; fails, never skips, without them.

What it proves:
- `serve --demo` provisions a text and an embeddings resource on the built-in models, with keys,
  and the `curl` and `python3 -c` lines it prints work as printed;
- /v1/chat/completions (whole and streamed: same text at temperature 0, usage chunk equal to the
  answer's usage) and /v1/embeddings (float and the SDK's default base64; unit vectors; the
  similarity sentence-transformers gives) through the official SDK;
- the Control Center API answers promptly (< 1 s) while a model generates;
- usage is visible in the resource's consumption exactly as the answers reported it;
- the quota is enforced (429 RateLimitError) on a tiny plan, and never exceeded;
- without the models, the calls answer 503 model_not_installed naming `genai models install`.
"""

import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import json
import urllib.error
import urllib.request

import openai

BIN = os.environ.get("GENAI_BIN", "target/release/genai")
CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"

# The default catalog's regions with the two built-in models and tiny plans (so that the quota
# runs out in a few calls).
CATALOG = """
[[regions]]
id = "eu-central-1"
name = "EU (Frankfurt)"

[[models]]
id = "smollm2-135m-instruct"
name = "SmolLM2 135M Instruct (built-in)"
type = "text_generation"
regions = { "eu-central-1" = "both" }

[[models]]
id = "all-minilm-l6-v2"
name = "all-MiniLM-L6-v2 (built-in)"
type = "embeddings_generation"
regions = { "eu-central-1" = "both" }

[[plans]]
type = "text_generation"
size = "small"
cloud_tokens = 30
input_tokens = 4000
output_tokens = 400

[[plans]]
type = "embeddings_generation"
size = "small"
cloud_tokens = 6
input_tokens = 4000
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


class Server:
    def __init__(self, tmp, env_extra=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        catalog = os.path.join(tmp, "catalog.toml")
        with open(catalog, "w") as f:
            f.write(CATALOG)
        env = dict(os.environ, **(env_extra or {}))
        env.pop("GENAI_PROVIDERS", None)
        self.out_path = os.path.join(tmp, "stdout.txt")
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--demo", "--listen", f"127.0.0.1:{self.port}",
             "--database", f"sqlite://{tmp}/genai.db", "--catalog", catalog],
            env=env, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("genai serve exited:\n" + self.text())
            if "listening on" in self.text():
                return
            time.sleep(0.1)
        raise AssertionError("genai serve did not start:\n" + self.text())

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.out.close()

    def demo(self):
        """(admin API token, {model: (resource id, key)}) as printed."""
        text = self.text()
        token = re.search(r"API token of the admin \(shown once\): (\S+)", text).group(1)
        resources = {}
        for m in re.finditer(r"^  .+ \((\S+), (\S+)\): \S+  key: (\S+)$", text, re.M):
            resources[m.group(1)] = (m.group(2), m.group(3))
        return token, resources

    def consumption(self, token, rid):
        req = urllib.request.Request(f"{self.base}/api/v1/resources/{rid}/consumption",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)["used"]


def printed_commands(text):
    """The `curl …` (with its continuation line) and `python3 -c …` lines the demo printed."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("  curl "):
            out.append(line.rstrip("\\").strip() + " " + lines[i + 1].strip())
        elif line.startswith("  python3 -c "):
            out.append(line.strip())
    return out


def main():
    expect(os.path.exists(BIN), f"{BIN} does not exist: build it (cargo build --release -p genai-server) or set GENAI_BIN")
    tmp = tempfile.mkdtemp(prefix="genai-builtin-")
    srv = Server(tmp)
    try:
        token, resources = srv.demo()
        expect(set(resources) == {CHAT, EMBED}, f"the demo printed {resources}:\n{srv.text()}")
        chat_rid, chat_key = resources[CHAT]
        emb_rid, emb_key = resources[EMBED]
        expect("not installed" not in srv.text(), "the models are installed, yet the demo says they are not")

        # The printed commands work as printed.
        commands = printed_commands(srv.text())
        expect(len(commands) == 4, f"expected 2 curl and 2 python lines, got {commands}")
        for c in commands:
            r = subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=120)
            expect(r.returncode == 0, f"{c}\n→ exit {r.returncode}: {r.stderr}")
            expect(r.stdout.strip() and "error" not in r.stdout.lower(), f"{c}\n→ {r.stdout}")
            if "chat/completions" in c:
                expect(json.loads(r.stdout)["choices"][0]["message"]["content"], r.stdout)
            if "/embeddings" in c:
                expect(len(json.loads(r.stdout)["data"][0]["embedding"]) == 384, r.stdout[:200])
        print("ok: the demo's printed curl and python3 lines work as printed")
        # What those four calls used.
        base_chat = srv.consumption(token, chat_rid)
        base_emb = srv.consumption(token, emb_rid)
        expect(base_chat["api_calls"] == 2 and base_emb["api_calls"] == 2, f"{base_chat} {base_emb}")

        client = openai.OpenAI(base_url=srv.base + "/v1", api_key=chat_key, max_retries=0)
        messages = [{"role": "user", "content": "Name three colours."}]
        whole = client.chat.completions.create(model=CHAT, messages=messages, temperature=0, max_tokens=24)
        text = whole.choices[0].message.content
        expect(text and whole.model == CHAT, whole)
        expect(whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens, whole.usage)
        pieces, usage, finish = [], None, None
        for chunk in client.chat.completions.create(model=CHAT, messages=messages, temperature=0, max_tokens=24,
                                                    stream=True, stream_options={"include_usage": True}):
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        expect("".join(pieces) == text, f"stream {''.join(pieces)!r} != {text!r}")
        expect(len([p for p in pieces if p]) >= 3, f"not streamed piece by piece: {pieces}")
        expect(usage is not None and usage.prompt_tokens == whole.usage.prompt_tokens
               and usage.completion_tokens == whole.usage.completion_tokens, f"{usage} vs {whole.usage}")
        expect(finish == whole.choices[0].finish_reason, finish)
        print(f"ok: chat whole and streamed agree at temperature 0 ({whole.usage.completion_tokens} tokens: {text!r})")

        # The Control Center stays responsive while a model computes: inference runs on the
        # models' own threads, never on the server's async workers.
        import threading
        long_answer = {}
        def generate():
            long_answer["r"] = client.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": "Write a long story about a lighthouse."}],
                temperature=0, max_tokens=100)
        worker = threading.Thread(target=generate)
        before = srv.consumption(token, chat_rid)
        worker.start()
        time.sleep(0.5)
        latencies = []
        while worker.is_alive() and len(latencies) < 20:
            t0 = time.time()
            req = urllib.request.Request(f"{srv.base}/api/v1/catalog", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req) as r:
                expect(r.status == 200, r.status)
            latencies.append(time.time() - t0)
            time.sleep(0.05)
        worker.join()
        expect(len(latencies) >= 3, f"the generation ended before the check could run ({latencies})")
        expect(max(latencies) < 1.0, f"the Control Center API stalled while the model computed: {latencies}")
        print(f"ok: {len(latencies)} Control Center API calls during a generation, slowest {max(latencies) * 1000:.0f} ms")
        after = srv.consumption(token, chat_rid)
        lu = long_answer["r"].usage
        expect(after["output_tokens"] - before["output_tokens"] == lu.completion_tokens, (before, after, lu))
        base_chat = {k: after[k] - before[k] + base_chat[k] for k in base_chat}

        used = srv.consumption(token, chat_rid)
        expect(used["input_tokens"] - base_chat["input_tokens"] == 2 * whole.usage.prompt_tokens, used)
        expect(used["output_tokens"] - base_chat["output_tokens"] == 2 * whole.usage.completion_tokens, used)
        expect(used["api_calls"] - base_chat["api_calls"] == 2, used)
        print(f"ok: consumption shows exactly the usage the answers reported ({used})")

        # Quota: 400 output tokens a month on this plan; calls of up to 30 run it out.
        refused = None
        for _ in range(30):
            try:
                client.chat.completions.create(model=CHAT, messages=messages, temperature=0.8, max_tokens=30)
            except openai.RateLimitError as e:
                refused = e
                break
        expect(refused is not None and "quota" in str(refused).lower(), f"no 429 before the quota ran out: {refused}")
        used = srv.consumption(token, chat_rid)
        expect(used["output_tokens"] <= 400 and used["input_tokens"] <= 4000, f"quota exceeded: {used}")
        print(f"ok: the text quota is enforced (429 at {used})")

        emb = openai.OpenAI(base_url=srv.base + "/v1", api_key=emb_key, max_retries=0)
        a = emb.embeddings.create(model=EMBED, input=["The new movie is awesome", "The new movie is so great"])
        b = emb.embeddings.create(model=EMBED, input="The new movie is awesome", encoding_format="float")
        v1, v2 = a.data[0].embedding, a.data[1].embedding
        expect(len(v1) == 384 and abs(math.sqrt(sum(x * x for x in v1)) - 1) < 1e-3, len(v1))
        expect(max(abs(x - y) for x, y in zip(v1, b.data[0].embedding)) < 1e-6, "base64 and float differ")
        cos = sum(x * y for x, y in zip(v1, v2))
        expect(abs(cos - 0.8939) < 0.0005, f"cos = {cos}")
        expect(a.usage.prompt_tokens == 7 + 8 and b.usage.prompt_tokens == 7, (a.usage, b.usage))
        used = srv.consumption(token, emb_rid)
        expect(used["input_tokens"] - base_emb["input_tokens"] == 22 and used["api_calls"] - base_emb["api_calls"] == 2, used)
        print(f"ok: embeddings (base64 and float) with cos = {cos:.4f}, usage {used}")
        # The product family's Cohere invoke on the built-in model: truncate as the client says.
        long_text = "word " * 300  # 1,500 characters, 302 word pieces: over the 256-piece window
        def invoke(body):
            req = urllib.request.Request(f"{srv.base}/runtime/v1/resources/{emb_rid}/invoke", method="POST",
                                         data=json.dumps(body).encode(),
                                         headers={"x-api-key": emb_key, "content-type": "application/json"})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)
        status, body = invoke({"texts": ["short", long_text], "input_type": "search_document", "truncate": "END"})
        expect(status == 200 and len(body["embeddings"]) == 2 and len(body["embeddings"][1]) == 384, (status, body))
        status, body = invoke({"texts": ["short", long_text], "input_type": "search_document"})
        expect(status == 400 and "texts[1]" in json.dumps(body), (status, body))
        print("ok: Cohere invoke on the built-in model: truncate END embeds, the default NONE refuses (400)")
        refused = None
        for _ in range(40):
            try:
                emb.embeddings.create(model=EMBED, input=["a sentence of several words to embed"] * 20)
            except openai.RateLimitError as e:
                refused = e
                break
        expect(refused is not None, "no 429 on the embeddings quota")
        used = srv.consumption(token, emb_rid)
        expect(used["input_tokens"] <= 4000, used)
        print(f"ok: the embeddings quota is enforced (429 at {used})")
    except BaseException:
        print(srv.text()[-3000:], file=sys.stderr)
        raise
    finally:
        srv.close()

    # Without the models: the demo says how to install them, and the calls answer 503.
    tmp2 = tempfile.mkdtemp(prefix="genai-builtin-empty-")
    empty = os.path.join(tmp2, "models")
    os.makedirs(empty)
    srv = Server(tmp2, {"GENAI_MODELS_DIR": empty})
    try:
        expect("  genai models install" in srv.text(), "the demo does not print the install command:\n" + srv.text())
        _, resources = srv.demo()
        client = openai.OpenAI(base_url=srv.base + "/v1", api_key=resources[CHAT][1], max_retries=0)
        try:
            client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}])
            raise AssertionError("a chat without the model answered")
        except openai.APIStatusError as e:
            expect(e.status_code == 503, e)
            expect(e.body.get("code") == "model_not_installed" and "genai models install" in e.body.get("message", ""), e.body)
        print("ok: without the models the demo prints the install command and calls answer 503 model_not_installed")
    finally:
        srv.close()
    print("all built-in model end-to-end checks passed")


if __name__ == "__main__":
    main()
