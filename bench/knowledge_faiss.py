"""FAISS IndexFlatIP on the vectors and queries that knowledge_bench wrote (bench/knowledge.sh).

    python knowledge_faiss.py run DIR ROWS DIM RUNS K     JSON lines like knowledge_bench's
    python knowledge_faiss.py table RESULTS.jsonl         the figures as a Markdown table

`run` reads DIR/vectors.f32 and DIR/queries.f32 (little-endian float32 unit vectors; the
metadata is implicit: row i has category c{i % 10}), builds an exact inner-product index (on
unit vectors, inner product = cosine), and times the same measurements as knowledge_bench:
one query per call (how a server answers one request), on one thread and on every core, with
no filter and with the filter category = c3 (an IDSelectorBitmap); plus all queries in one
call (FAISS's batch path, matrix multiplication over every core), its best throughput.
It also checks that FAISS finds the same top 5 as genai-knowledge (DIR/ours_top5.txt).
Needs numpy and faiss-cpu (bench/knowledge.sh makes a virtual environment outside the repo).
"""

import json
import os
import statistics
import sys
import time


def percentile(sorted_values, p):
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def run(directory, rows, dim, runs, k):
    import faiss
    import numpy as np

    vectors = np.fromfile(os.path.join(directory, "vectors.f32"), dtype="<f4").reshape(rows, dim)
    queries = np.fromfile(os.path.join(directory, "queries.f32"), dtype="<f4").reshape(-1, dim)
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    add_s = time.perf_counter() - t
    print(json.dumps({"impl": "faiss", "version": faiss.__version__, "rows": rows, "dim": dim,
                      "queries": len(queries), "runs": runs, "k": k, "cores": cores,
                      "index_inserts_per_s": round(rows / add_s)}), flush=True)

    mask = (np.arange(rows) % 10) == 3
    bitmap = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(rows, faiss.swig_ptr(bitmap))
    filters = [("none", None), ("category=c3", faiss.SearchParameters(sel=selector))]

    # Same neighbours as genai-knowledge? Compare sets of the top 5 (ties may order differently).
    ours = {}
    with open(os.path.join(directory, "ours_top5.txt")) as f:
        for line in f:
            name, keys = line.split()
            ours.setdefault(name, []).append({int(x) for x in keys.split(",")})
    for name, params in filters:
        n = len(ours.get(name, []))
        _, ids = index.search(queries[:n], 5, params=params)
        found = sum(len(ours[name][i] & {int(x) for x in ids[i]}) for i in range(n))
        print(json.dumps({"impl": "faiss", "rows": rows, "filter": name,
                          "same_top5_as_genai_knowledge": round(found / (5 * n), 6) if n else None}), flush=True)

    for name, params in filters:
        for threads in sorted({1, cores}):
            faiss.omp_set_num_threads(threads)
            for q in queries[:10]:  # warm up
                index.search(q.reshape(1, -1), k, params=params)
            p50s, p99s, qpss = [], [], []
            for _ in range(runs):
                latencies = []
                start = time.perf_counter()
                for q in queries:
                    t = time.perf_counter()
                    index.search(q.reshape(1, -1), k, params=params)
                    latencies.append((time.perf_counter() - t) * 1e3)
                total = time.perf_counter() - start
                latencies.sort()
                p50s.append(percentile(latencies, 50))
                p99s.append(percentile(latencies, 99))
                qpss.append(len(latencies) / total)
            print(json.dumps({"impl": "faiss", "rows": rows, "filter": name, "mode": "one query at a time",
                              "threads": threads, "p50_ms": round(statistics.median(p50s), 3),
                              "p99_ms": round(statistics.median(p99s), 3),
                              "qps": round(statistics.median(qpss), 1)}), flush=True)
        faiss.omp_set_num_threads(cores)
        qpss = []
        for _ in range(runs):
            start = time.perf_counter()
            index.search(queries, k, params=params)
            qpss.append(len(queries) / (time.perf_counter() - start))
        print(json.dumps({"impl": "faiss", "rows": rows, "filter": name, "mode": "all queries in one call",
                          "threads": cores, "qps": round(statistics.median(qpss), 1)}), flush=True)


def table(results_path):
    """Markdown: one line per size, filter and mode; ratio = genai-knowledge qps / FAISS qps."""
    with open(results_path) as f:
        records = [json.loads(line) for line in f if line.startswith("{")]
    timed = [r for r in records if "mode" in r]
    keyed = {(r["impl"], r["rows"], r["filter"], r["mode"], r["threads"]): r for r in timed}
    print("| rows | filter | mode | threads | genai-knowledge p50 / p99 | qps | FAISS p50 / p99 | qps | ratio |")
    print("|---:|---|---|---:|---|---:|---|---:|---:|")

    def latency(r):
        return f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} ms" if r and "p50_ms" in r else "—"

    for r in sorted(timed, key=lambda r: (r["rows"], r["filter"] != "none", r["mode"], r["threads"])):
        if r["impl"] != "genai-knowledge":
            continue
        peer = keyed.get(("faiss", r["rows"], r["filter"], r["mode"], r["threads"]))
        ratio = f"{r['qps'] / peer['qps']:.2f}×" if peer else "—"
        peer_qps = f"{peer['qps']:,.0f}" if peer else "—"
        print(f"| {r['rows']:,} | {r['filter']} | {r['mode']} | {r['threads']} | {latency(r)} | {r['qps']:,.0f} "
              f"| {latency(peer)} | {peer_qps} | {ratio} |")
    for r in timed:
        if r["impl"] == "faiss" and r["mode"] == "all queries in one call":
            print(f"| {r['rows']:,} | {r['filter']} | FAISS, all queries in one call | {r['threads']} | — | — "
                  f"| — | {r['qps']:,.0f} | — |")
    for r in records:
        if "same_top5_as_genai_knowledge" in r:
            print(f"\nrows {r['rows']:,}, filter {r['filter']}: FAISS and genai-knowledge share "
                  f"{r['same_top5_as_genai_knowledge']:.4%} of their top-5 results")
        if r.get("impl") == "genai-knowledge" and "index_inserts_per_s" in r:
            print(f"\nrows {r['rows']:,}: in-memory index build {r['index_inserts_per_s']:,} vectors/s, "
                  f"{r['index_memory_mb']} MB")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "run":
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
