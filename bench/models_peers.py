#!/usr/bin/env python3
"""The peers of bench/models.sh, measured the way crates/models/examples/models_bench.rs measures
the built-in models, on the same inputs and the same model files (from the pinned wheels):

    models_peers.py embed    SENTENCES_FILE MODEL_DIR RUNS    # sentence-transformers, CPU torch
    models_peers.py generate PROMPT_FILE    GGUF_FILE RUNS N  # llama.cpp via llama-cpp-python

Prints one JSON object per line. Both peers run with 2 threads (the machine's cores).
"""
import json
import os
import sys
import time


def last_logits(llm):
    """The logits llama.cpp computed for the last token fed (llama-cpp-python 0.3.x keeps no copy
    unless logits_all is set)."""
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def embed(sentences_file, model_dir, runs):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    sentences = [l for l in open(sentences_file).read().splitlines() if l.strip()]
    t = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    print(json.dumps({"metric": "embed_load_s", "value": round(time.perf_counter() - t, 3)}))
    model.encode(sentences[:32], batch_size=32)
    for batch in (1, 32):
        for run in range(runs):
            t = time.perf_counter()
            for i in range(0, len(sentences), batch):
                model.encode(sentences[i:i + batch], batch_size=batch, show_progress_bar=False)
            rate = len(sentences) / (time.perf_counter() - t)
            print(json.dumps({"metric": f"embed_batch{batch}_sentences_per_s", "run": run, "value": round(rate, 1)}))


def generate(prompt_file, gguf, runs, n):
    import jinja2
    import llama_cpp
    import numpy as np

    story = open(prompt_file).read().strip()
    t = time.perf_counter()
    threads = int(os.environ.get("GENAI_BENCH_THREADS", "2"))
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                          flash_attn=False, verbose=False)
    print(json.dumps({"metric": "generate_load_s", "value": round(time.perf_counter() - t, 3)}))
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    prompt = jinja2.Template(llm.metadata["tokenizer.chat_template"]).render(
        messages=[{"role": "user", "content": story}], add_generation_prompt=True)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    for run in range(-1, runs):  # run -1 warms up
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        tok = int(np.argmax(last_logits(llm)))
        ttft = time.perf_counter() - t
        produced = 1
        t_first = time.perf_counter()
        cpu_first = time.process_time()
        while produced < n and not llama_cpp.llama_vocab_is_eog(vocab, tok):
            llm.eval([tok])
            tok = int(np.argmax(last_logits(llm)))
            produced += 1
        rate = (produced - 1) / (time.perf_counter() - t_first)
        cpu_ms = (time.process_time() - cpu_first) * 1000 / (produced - 1)
        if run >= 0:
            print(json.dumps({"metric": "generate", "run": run, "prompt_tokens": len(ids), "tokens": produced,
                              "ttft_ms": round(ttft * 1000, 1), "tokens_per_s": round(rate, 1),
                              "cpu_ms_per_token": round(cpu_ms, 2)}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "embed":
        embed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "generate":
        generate(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
