#!/usr/bin/env bash
# Exact similarity search of genai-knowledge next to FAISS IndexFlatIP, on the same random unit
# vectors and queries (bench/README.md, "Knowledge-base search"). A program, not a test.
#
#   bench/knowledge.sh [ROWS ...]            default: 10000 100000 1000000
#
# Environment: DIM (384), RUNS (5), K (5), QUERIES (default: by size, see knowledge_bench),
# GENAI_BENCH_VENV (/var/cache/genai-venvs/knowledge-bench: numpy and faiss-cpu are installed
# there from PyPI on first use, outside the repository), CARGO_TARGET_DIR as for cargo.
# The data (1.5 GB at a million rows) lives in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 100000 1000000)
dim="${DIM:-384}"
runs="${RUNS:-5}"
k="${K:-5}"
venv="${GENAI_BENCH_VENV:-/var/cache/genai-venvs/knowledge-bench}"
target="${CARGO_TARGET_DIR:-target}"

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import faiss, numpy' 2>/dev/null; then
  echo "== making $venv (numpy, faiss-cpu)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'faiss-cpu==1.15.1' numpy
fi

echo "== cargo build --release --example knowledge_bench" >&2
cargo build --release --locked -p genai-knowledge --example knowledge_bench >&2
bench_bin="$target/release/examples/knowledge_bench"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
for rows in "${sizes[@]}"; do
  queries_opt=()
  [[ -n "${QUERIES:-}" ]] && queries_opt=(--queries "$QUERIES")
  echo "== $rows rows: genai-knowledge" >&2
  "$bench_bin" --rows "$rows" --dim "$dim" --runs "$runs" --k "$k" --data "$work/data" "${queries_opt[@]}" \
    | tee -a "$results" >&2
  echo "== $rows rows: FAISS IndexFlatIP" >&2
  "$venv/bin/python" bench/knowledge_faiss.py run "$work/data" "$rows" "$dim" "$runs" "$k" | tee -a "$results" >&2
  rm -rf "$work/data"
done
"$venv/bin/python" bench/knowledge_faiss.py table "$results"
