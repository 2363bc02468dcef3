#!/usr/bin/env bash
# Gateway benchmark: in one run, against the same static upstream (`genai-fake-upstream
# --static`), the Runtime API's cost next to calling the upstream directly, nginx proxy_pass
# and LiteLLM, on SQLite and on PostgreSQL. Usage:
#   bench/gateway.sh [POSTGRES_URL]
# Environment: RUNS (3: saturated runs per system, the median is printed), SECONDS_PER_RUN (10),
# C (32 connections), SOAK (60: seconds of the RSS soak; 600 for the 10-minute figure),
# LITELLM_VENV (/var/cache/genai-bench-venv: `python3 -m venv DIR &&
# DIR/bin/pip install 'litellm[proxy]==1.108.0'`; skipped when missing).
# Needs wrk and nginx (apt: wrk, nginx-light), python3, jq, curl. Figures go to bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p genai-server -p genai-fake-upstream >/dev/null
pg_url="${1:-}"
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
C=${C:-32}
SOAK=${SOAK:-60}
LITELLM_VENV=${LITELLM_VENV:-/var/cache/genai-bench-venv}
W=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -f $W/nginx.pid ]] && nginx -c "$W/nginx.conf" -s stop 2>/dev/null || true
  [[ -n ${pg_name:-} ]] && psql "$pg_url" -qc "DROP DATABASE IF EXISTS $pg_name WITH (FORCE)" || true
  rm -rf "$W"
}
trap cleanup EXIT

UP=127.0.0.1:9500
"$target/release/genai-fake-upstream" --port 9500 --static --threads 1 >"$W/upstream.log" 2>&1 &
pids+=($!)

cat >"$W/nginx.conf" <<NGX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server $UP; keepalive 64; }
  server {
    listen 127.0.0.1:9501;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
nginx -c "$W/nginx.conf"

# Quotas far beyond what a run uses: the benchmark measures the gateway, not a refusal.
cat >"$W/catalog.toml" <<'TOML'
[[regions]]
id = "eu-central-1"
name = "EU (Frankfurt)"

[[models]]
id = "claude-sonnet-4.6"
name = "Anthropic Claude Sonnet 4.6"
type = "text_generation"
regions = { "eu-central-1" = "cri_only" }

[[models]]
id = "cohere-embed-english-v3"
name = "Cohere Embed v3 English"
type = "embeddings_generation"
regions = { "eu-central-1" = "in_region_only" }

[[plans]]
type = "text_generation"
size = "small"
cloud_tokens = 30
input_tokens = 1000000000000
output_tokens = 1000000000000

[[plans]]
type = "text_generation"
size = "medium"
cloud_tokens = 60
input_tokens = 1000000000000
output_tokens = 1000000000000

[[plans]]
type = "text_generation"
size = "large"
cloud_tokens = 120
input_tokens = 1000000000000
output_tokens = 1000000000000

[[plans]]
type = "embeddings_generation"
size = "small"
cloud_tokens = 6
input_tokens = 1000000000000

[[plans]]
type = "embeddings_generation"
size = "medium"
cloud_tokens = 12
input_tokens = 1000000000000

[[plans]]
type = "embeddings_generation"
size = "large"
cloud_tokens = 24
input_tokens = 1000000000000

[[plans]]
type = "knowledge_base"
size = "standard"
cloud_tokens = 48
storage_bytes = 10485760
TOML
cat >"$W/providers.toml" <<TOML
[providers.fake]
kind = "openai"
base_url = "http://$UP/v1"
timeout_seconds = 30

[models."claude-sonnet-4.6"]
provider = "fake"
upstream_model = "fake-chat"
TOML

cat >"$W/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"model":"claude-sonnet-4.6","messages":[{"role":"user","content":"hi there"}],"max_tokens":4}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("KEY") or "x")
LUA
# About 1,000 calls/s: 10 connections, each waiting 10 ms after every answer (wrk's `delay`;
# a closed loop, so the latencies are service times, not corrected for queueing).
cp "$W/post.lua" "$W/paced.lua"
echo 'function delay() return 10 end' >>"$W/paced.lua"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { # wrk latency (e.g. 512.00us, 1.20ms, 2.00s) -> ms
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v}'
}
# saturated NAME URL KEY: RUNS runs of wrk -c$C; prints the median req/s, p50 and p99.
saturated() {
  KEY=$3 wrk -t1 -c"$C" -d3s -s "$W/post.lua" "$2" >/dev/null 2>&1 || true
  : >"$W/runs"
  for _ in $(seq "$RUNS"); do
    out=$(KEY=$3 wrk -t1 -c"$C" -d"${SECS}s" -s "$W/post.lua" --latency "$2")
    non2xx=$(echo "$out" | awk '/Non-2xx/{print $5}')
    echo "$(echo "$out" | awk '/Requests\/sec/{print $2}') $(echo "$out" | awk '$1=="50%"{print $2}' | to_ms) $(echo "$out" | awk '$1=="99%"{print $2}' | to_ms) ${non2xx:-0}" >>"$W/runs"
  done
  rps=$(awk '{print $1}' "$W/runs" | median)
  printf '%-22s saturated %9.0f req/s (runs: %s)  p50 %6.2f ms  p99 %6.2f ms  non-2xx %s\n' "$1" "$rps" \
    "$(awk '{printf "%.0f ", $1}' "$W/runs")" "$(awk '{print $2}' "$W/runs" | median)" \
    "$(awk '{print $3}' "$W/runs" | median)" "$(awk '{s+=$4} END {print s}' "$W/runs")"
  echo "$1 $rps" >>"$W/rps"
}
# paced NAME URL KEY: p50/p99 at about 1,000 calls/s (median of RUNS runs).
paced() {
  : >"$W/paced-runs"
  for _ in $(seq "$RUNS"); do
    out=$(KEY=$3 wrk -t1 -c10 -d"${SECS}s" -s "$W/paced.lua" --latency "$2")
    echo "$(echo "$out" | awk '/Requests\/sec/{print $2}') $(echo "$out" | awk '$1=="50%"{print $2}' | to_ms) $(echo "$out" | awk '$1=="99%"{print $2}' | to_ms)" >>"$W/paced-runs"
  done
  p50=$(awk '{print $2}' "$W/paced-runs" | median)
  printf '%-22s ~1,000/s  %6.0f req/s  p50 %6.3f ms  p99 %6.3f ms\n' "$1" \
    "$(awk '{print $1}' "$W/paced-runs" | median)" "$p50" "$(awk '{print $3}' "$W/paced-runs" | median)"
  echo "$1 $p50" >>"$W/p50"
}
# ttfb NAME URL KEY: median time to the first byte of a streamed answer over 200 calls.
ttfb() {
  body='{"model":"claude-sonnet-4.6","messages":[{"role":"user","content":"hi there"}],"max_tokens":16,"stream":true}'
  for _ in $(seq 200); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' -H "Authorization: Bearer $3" -H 'Content-Type: application/json' \
      -d "$body" "$2"
  done | awk '{print $1*1000}' | median | xargs printf '%-22s streaming TTFB p50 %.3f ms\n' "$1"
}

# genai_start NAME DATABASE: a genai server with a company, a resource and a runtime key.
genai_start() {
  local port=$((18100 + ${#pids[@]}))
  export GENAI_OPERATOR_TOKEN="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  GENAI_LOG=warn "$target/release/genai" serve --listen "127.0.0.1:$port" --database "$2" \
    --catalog "$W/catalog.toml" --providers "$W/providers.toml" >"$W/$1.log" 2>&1 &
  pids+=($!)
  genai_pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  op() { curl -fsS -X "$1" -H "Authorization: Bearer $GENAI_OPERATOR_TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"} "$base$2"; }
  company=$(op POST /api/v1/operator/companies '{"name":"Bench","price_list":"FY21","accounts":1,"enterprise_subscriptions":1}' | jq -r .id)
  op POST "/api/v1/operator/companies/$company/token-grants" '{"tokens":1000000}' >/dev/null
  user=$(op POST "/api/v1/operator/companies/$company/users" \
    "{\"name\":\"Bench Admin\",\"email\":\"bench-$RANDOM@example.com\",\"role\":\"company_admin\"}" | jq -r .id)
  admin=$(op POST "/api/v1/operator/users/$user/api-tokens" '' | jq -r .token)
  rid=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$base/api/v1/resources" -d \
    '{"type":"text_generation","display_name":"Bench","environment":"production","region":"eu-central-1","cross_region_inference":true,"model":"claude-sonnet-4.6","plan":"large","user":{"name":"Bench Admin","email":"bench@example.com"}}' | jq -r .id)
  key=$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$base/api/v1/resources/$rid/keys" \
    -d '{"description":"bench"}' | jq -r .secret)
  curl -fsS -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$base/v1/chat/completions" \
    -d '{"model":"claude-sonnet-4.6","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'
}
rss() { awk '/VmRSS/{print $2/1024}' "/proc/$1/status"; }

echo "gateway benchmark: $(nproc) cores, wrk -t1 -c$C, ${SECS}s x $RUNS runs (medians), load $(cut -d' ' -f1-3 /proc/loadavg)"
saturated "upstream direct" "http://$UP/v1/chat/completions" x
saturated "nginx proxy_pass" http://127.0.0.1:9501/v1/chat/completions x
paced "upstream direct" "http://$UP/v1/chat/completions" x
ttfb "upstream direct" "http://$UP/v1/chat/completions" x

if [[ -x $LITELLM_VENV/bin/litellm ]]; then
  llkey=sk-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf 'model_list:\n  - model_name: claude-sonnet-4.6\n    litellm_params:\n      model: openai/fake\n      api_base: http://%s/v1\n      api_key: x\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n' "$UP" >"$W/ll.yaml"
  LITELLM_MASTER_KEY=$llkey "$LITELLM_VENV/bin/litellm" --config "$W/ll.yaml" --port 4011 --num_workers 2 >"$W/ll.log" 2>&1 &
  pids+=($!)
  llpid=$!
  for _ in $(seq 120); do curl -sf -o /dev/null http://127.0.0.1:4011/health/liveliness && break; sleep 1; done
  saturated "litellm 1.108 x2" http://127.0.0.1:4011/v1/chat/completions "$llkey"
  kill "$llpid"; wait "$llpid" 2>/dev/null || true
else
  echo "litellm: no venv at $LITELLM_VENV (python3 -m venv DIR && DIR/bin/pip install 'litellm[proxy]==1.108.0')"
fi

databases=("sqlite sqlite://$W/genai.db")
if [[ -n $pg_url ]]; then
  pg_name="genai_gw_bench_$RANDOM$RANDOM"
  psql "$pg_url" -qc "CREATE DATABASE $pg_name"
  databases+=("postgres ${pg_url%/*}/$pg_name")
fi
for entry in "${databases[@]}"; do
  name="genai ${entry%% *}"
  genai_start "${entry%% *}" "${entry#* }"
  url="$base/v1/chat/completions"
  saturated "$name" "$url" "$key"
  paced "$name" "$url" "$key"
  ttfb "$name" "$url" "$key"
  before=$(rss "$genai_pid")
  KEY=$key wrk -t1 -c"$C" -d"${SOAK}s" -s "$W/post.lua" "$url" >"$W/soak.txt" 2>&1 &
  soak=$!
  samples="$before"
  for _ in $(seq $((SOAK / 10))); do sleep 10; samples="$samples $(rss "$genai_pid")"; done
  wait "$soak" || true
  printf '%-22s RSS over a %ss soak at saturation (MiB, every 10 s): %s\n' "$name" "$SOAK" "$samples"
  kill "$genai_pid"; wait "$genai_pid" 2>/dev/null || true
done

nginx_rps=$(awk '$1=="nginx"{print $NF}' "$W/rps")
direct_p50=$(awk '$1=="upstream"{print $NF}' "$W/p50")
echo "--- ratios"
while read -r line; do
  sys=${line% *}; rps=${line##* }
  awk -v s="$sys" -v r="$rps" -v n="$nginx_rps" 'BEGIN {printf "%-22s %.2fx nginx req/s\n", s, r/n}'
done <"$W/rps"
while read -r line; do
  sys=${line% *}; p=${line##* }
  [[ $sys == genai* ]] && awk -v s="$sys" -v p="$p" -v d="$direct_p50" 'BEGIN {printf "%-22s added p50 at ~1,000/s: %.3f ms\n", s, p-d}'
done <"$W/p50"
