#!/usr/bin/env bash
# Control-plane benchmark: a release build of `genai serve` on a fresh database, driven by the
# load generator in crates/bench (16 concurrent clients of mutating calls, then listing a company
# of 10,000 resources). Usage:
#   bench/control-plane.sh                      # SQLite, one instance
#   bench/control-plane.sh postgres://postgres@127.0.0.1:5432/test [INSTANCES]
# Prints operations/s and latency percentiles; figures are recorded in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p genai-server -p genai-bench >/dev/null
url="${1:-}"
instances="${2:-1}"
tmp=$(mktemp -d)
export GENAI_OPERATOR_TOKEN="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")"
if [[ -z "$url" ]]; then
  database="sqlite://$tmp/bench.db"
else
  name="genai_bench_$RANDOM$RANDOM"
  psql "$url" -qc "CREATE DATABASE $name"
  database="${url%/*}/$name"
fi
pids=()
servers=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -n "${name:-}" ]] && psql "$url" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
for i in $(seq 1 "$instances"); do
  port=$((18080 + i))
  GENAI_LOG=warn "$target/release/genai" serve --listen "127.0.0.1:$port" --database "$database" >"$tmp/server$i.log" 2>&1 &
  pids+=($!)
  servers+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "genai serve x$instances on ${database%%://*}; $(nproc) cores"
"$target/release/genai-bench" --server "$(IFS=,; echo "${servers[*]}")" "${@:3}"
