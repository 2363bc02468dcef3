#!/usr/bin/env python3
"""Knowledge bases end to end over HTTP (bench/README.md, "Knowledge bases over HTTP").

  bench/knowledge_http.py [--database URL] [--chunks 100000] [--dim 384] [--clients 4]
                          [--searches 200] [--k 5] [--bin target/release/genai]

Starts the real `genai serve` (a fresh SQLite file unless --database names a PostgreSQL
database, which should be empty), provisions a knowledge base through the Operator and Control
Center APIs, makes a runtime key, then:

1. inserts CHUNKS chunks of DIM dimensions (random unit vectors, ~200 characters of text, two
   metadata pairs) with `POST …/knowledge-bases/bench/chunks`, 100 chunks a request, from
   CLIENTS concurrent clients, and reports chunks per second (the request bodies are made before
   the clock starts, so the client's JSON work is not measured);
2. runs SEARCHES `similarity` requests one after another (k = K, random unit query vectors; the
   first one, which loads the collection into memory, is reported on its own) and reports
   p50/p90/p99 latency, then the same with a metadata filter that passes half of the chunks.

Standard library only. A program, not a test: it prints one JSON line of results and a table.
"""

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def request(base, method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


def start(binary, database, operator):
    tmp = tempfile.mkdtemp(prefix="genai-kb-bench-")
    db = database or f"sqlite://{tmp}/bench.db"
    env = dict(os.environ, GENAI_OPERATOR_TOKEN=operator, GENAI_LOG="warn")
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--database", db],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            base = line.split("listening on", 1)[1].strip().rstrip("/")
            return proc, base, tmp
        if proc.poll() is not None:
            break
    proc.kill()
    sys.exit("the server did not start")


def unit(rng, dim):
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--database")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "genai"))
    a = ap.parse_args()

    operator = "op-" + secrets.token_hex(16)
    proc, base, tmp = start(a.bin, a.database, operator)
    try:
        op = {"Authorization": "Bearer " + operator}
        s, c = request(base, "POST", "/api/v1/operator/companies", {"name": "Bench " + secrets.token_hex(3),
                       "price_list": "FY21", "accounts": 1, "enterprise_subscriptions": 1}, op)
        assert s == 201, (s, c)
        request(base, "POST", f"/api/v1/operator/companies/{c['id']}/token-grants", {"tokens": 500}, op)
        s, u = request(base, "POST", f"/api/v1/operator/companies/{c['id']}/users",
                       {"name": "Bench", "email": f"bench-{secrets.token_hex(3)}@example.com",
                        "role": "company_admin", "password": secrets.token_hex(12)}, op)
        assert s == 201, (s, u)
        s, t = request(base, "POST", f"/api/v1/operator/users/{u['id']}/api-tokens", {"description": "bench"}, op)
        admin = {"Authorization": "Bearer " + t["token"]}
        common = {"environment": "test", "region": "eu-central-1", "user": {"name": "B", "email": "b@example.com"}}
        s, emb = request(base, "POST", "/api/v1/resources", {"type": "embeddings_generation", "display_name": "E",
                         "model": "cohere-embed-english-v3", "cross_region_inference": False, "plan": "small",
                         **common}, admin)
        assert s == 201, (s, emb)
        s, kb = request(base, "POST", "/api/v1/resources", {"type": "knowledge_base", "display_name": "KB",
                        "cross_region_inference": False, "plan": "standard", "embeddings_resource_id": emb["id"],
                        **common}, admin)
        assert s == 201, (s, kb)
        s, key = request(base, "POST", f"/api/v1/resources/{kb['id']}/keys", {"description": "bench"}, admin)
        rk = {"x-api-key": key["secret"]}
        path = f"/runtime/v1/resources/{kb['id']}/knowledge-bases/bench"

        rng = random.Random(7)
        words = "lighthouse keeper gulls morning tea rain spring summer harbour ship rope lantern".split()
        bodies = []
        for start_at in range(0, a.chunks, 100):
            chunks = []
            for i in range(start_at, min(a.chunks, start_at + 100)):
                chunks.append({"chunkId": f"c{i}", "vector": ",".join(f"{x:.6f}" for x in unit(rng, a.dim)),
                               "key": " ".join(rng.choice(words) for _ in range(30)), "mxObjectId": f"doc-{i // 10}",
                               "metadata": [{"name": "half", "value": str(i % 2)}, {"name": "n", "value": str(i)}]})
            bodies.append(json.dumps({"chunks": chunks}).encode())
        print(f"made {len(bodies)} request bodies", file=sys.stderr)

        queue = list(enumerate(bodies))
        lock = threading.Lock()
        failures = []

        def client():
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                st, out = request(base, "POST", path + "/chunks", headers=rk, raw=body)
                if st != 201:
                    failures.append((st, out))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        insert_s = time.perf_counter() - t0
        assert not failures, failures[:3]
        s, page = request(base, "GET", path + "/chunks?pageSize=1", headers=rk)
        assert page["totalElements"] == a.chunks, page

        def search(filters):
            q = {"k": a.k, "targetVector": ",".join(f"{x:.6f}" for x in unit(rng, a.dim))}
            if filters:
                q["metadataFilters"] = filters
            t = time.perf_counter()
            st, out = request(base, "POST", path + "/similarity", q, rk)
            dt = (time.perf_counter() - t) * 1000
            assert st == 200 and len(out["chunks"]) == a.k, (st, out)
            return dt

        first = search(None)
        plain = [search(None) for _ in range(a.searches)]
        filtered = [search([{"name": "half", "value": "1"}]) for _ in range(a.searches)]
        s, r = request(base, "GET", f"/api/v1/resources/{kb['id']}", headers=admin)
        result = {
            "database": "postgres" if a.database else "sqlite", "chunks": a.chunks, "dim": a.dim,
            "clients": a.clients, "insert_seconds": round(insert_s, 2),
            "insert_chunks_per_s": round(a.chunks / insert_s),
            "first_search_ms": round(first, 1),
            "search_ms": {p: round(pct(plain, p), 2) for p in (50, 90, 99)},
            "filtered_search_ms": {p: round(pct(filtered, p), 2) for p in (50, 90, 99)},
            "storage_bytes": r["usage"]["storage_bytes"],
        }
        print(json.dumps(result))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
