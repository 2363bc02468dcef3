//! The quantized llama forward pass of SmolLM2-135M-Instruct, read from its GGUF file.
//!
//! Architecture (from the GGUF metadata): 30 blocks, hidden 576, 9 query heads sharing 3
//! key/value heads (grouped-query attention), head size 64, rotary position embeddings of the
//! "normal" (interleaved pairs) kind with base 100 000, RMSNorm, SwiGLU feed-forward of 1536,
//! output projection tied to the token embeddings (`token_embd.weight`, Q8_0).
//!
//! Numerics: this forward pass computes llama.cpp's CPU path bit for bit (its token-by-token
//! path, built with `-march=native`), so that greedy decoding gives llama.cpp's answer token for
//! token (`tests/generation.rs` checks it against `tests/fixtures/generation.json`). Every
//! floating-point operation is done in llama.cpp's order, and where GCC fused a multiply and an
//! add into one instruction, so do we:
//! - the quantized matrix products are ggml's kernels reproduced in [`crate::quant`]
//!   (activations quantized per block of 32 with `127/amax`, eight lanes, `hsum_float_8`);
//! - RMSNorm sums the squares in f64 and scales by `1/sqrt(mean + eps)` in f32;
//! - rotary angles are `pos·scale^i` by repeated multiplication in f32 (`rope_cache_init`),
//!   and the rotation is contracted as llama.cpp's binary computes it: `fma(x0, cos, −x1·sin)`
//!   and `fma(x0, sin, x1·cos)` (found by comparing every value with llama.cpp's own);
//! - queries, keys and values are rounded to f16 (llama.cpp's KV cache and the f16 products
//!   against it); attention scores and weighted values are f16 dot products accumulated in
//!   64 lanes as `ggml_vec_dot_f16` does with AVX-512, the soft-max uses `ggml_v_expf` and sums
//!   per 16 in f64 ([`crate::quant::ggml`]);
//! - SwiGLU uses `ggml_v_silu`.
//!
//! A prompt read at once gives the same numbers as read token by token: each query row attends
//! exactly as the single-token path would.
//!
//! Speed: the products run ggml's own algorithm (AVX2 integer dot products, four activation
//! rows per unpacked weight block when reading a prompt) on the model's own rayon pool.

use crate::quant::{ggml, model_pool, round_f16, with_fma, QMatrix, F16_LANES};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Result};
use rayon::prelude::*;
use std::io::{Read, Seek};

/// The shape of the model, read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Transformer blocks.
    pub blocks: usize,
    /// Width of the hidden state.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// The context window the model was trained for.
    pub context: usize,
    /// Rotary embedding base frequency.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Vocabulary size.
    pub vocab: usize,
}

/// A weight matrix applied to activations: `x [m, k] → x·Wᵀ [m, n]`, on plain row-major
/// `f32` slices, with ggml's kernels reproduced bit for bit ([`crate::quant`]).
pub struct QLinear {
    matrix: QMatrix,
}

impl QLinear {
    /// Wraps a weight read from the GGUF (Q4_1 or Q8_0, the types SmolLM2's GGUF uses).
    pub fn new(weight: QTensor) -> Result<Self> {
        Self::stacked(vec![weight])
    }

    /// One matrix made of the rows of `parts` stacked (same type and row length), so that
    /// e.g. the query, key and value projections are one product instead of three (each output
    /// value is still one dot product of one weight row: stacking changes no result).
    pub fn stacked(parts: Vec<QTensor>) -> Result<Self> {
        let Some(first) = parts.first() else { candle_core::bail!("nothing to stack") };
        let (dtype, k) = (first.dtype(), first.shape().dims2()?.1);
        let mut rows = 0;
        let mut data = Vec::new();
        for part in &parts {
            let (n, pk) = part.shape().dims2()?;
            if part.dtype() != dtype || pk != k {
                candle_core::bail!("cannot stack {:?}/{pk} under {dtype:?}/{k}", part.dtype());
            }
            rows += n;
            // Rows are whole numbers of blocks, so stacking rows is concatenating bytes.
            data.extend_from_slice(&part.data()?);
        }
        let matrix = match dtype {
            GgmlDType::Q4_1 => QMatrix::q4_1(&data, rows, k),
            GgmlDType::Q8_0 => QMatrix::q8_0(&data, rows, k),
            other => candle_core::bail!("unsupported weight type {other:?} (expected Q4_1 or Q8_0)"),
        }
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Self { matrix })
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.matrix.rows()
    }

    /// `x`: `rows × k` row-major → `rows × n` row-major.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        Ok(self.matrix.matmul(x, rows))
    }
}

struct Block {
    attn_norm: Vec<f32>,
    /// Query, key and value projections stacked: `[q | k | v]` per row.
    qkv: QLinear,
    o: QLinear,
    ffn_norm: Vec<f32>,
    /// Gate and up projections stacked: `[gate | up]` per row.
    gate_up: QLinear,
    down: QLinear,
}

/// The loaded model.
pub struct Llama {
    config: LlamaConfig,
    /// Token embeddings, dequantized: `[vocab, hidden]` row-major.
    embeddings: Vec<f32>,
    blocks: Vec<Block>,
    output_norm: Vec<f32>,
    output: QLinear,
    /// cos and sin per (position, pair): `[context, head_dim/2]` row-major.
    cos: Vec<f32>,
    sin: Vec<f32>,
    ffn: usize,
    /// The model's own compute threads ([`crate::quant::model_pool`]; called from outside, each
    /// of a token's ~150 parallel parts would be a hand-over and a wake-up).
    pool: rayon::ThreadPool,
}

/// The keys and values of every position seen so far, per block: one sequence's memory.
/// Per block, `[kv_heads, capacity, head_dim]` row-major (values already rounded to f16).
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been stored yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn to_vec(t: QTensor) -> Result<Vec<f32>> {
    t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()
}

impl Llama {
    /// Reads the model from a GGUF file.
    pub fn load<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self> {
        let md = |key: &str| {
            content.metadata.get(key).ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata {key} is missing")))
        };
        let arch = md("general.architecture")?.to_string()?;
        if arch != "llama" {
            candle_core::bail!("unsupported GGUF architecture {arch:?} (expected llama)");
        }
        let heads = md("llama.attention.head_count")?.to_u32()? as usize;
        let hidden = md("llama.embedding_length")?.to_u32()? as usize;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            candle_core::bail!("unsupported head count {heads} for width {hidden}");
        }
        let config = LlamaConfig {
            blocks: md("llama.block_count")?.to_u32()? as usize,
            hidden,
            heads,
            kv_heads: md("llama.attention.head_count_kv")?.to_u32()? as usize,
            head_dim: hidden / heads,
            context: md("llama.context_length")?.to_u32()? as usize,
            rope_base: md("llama.rope.freq_base")?.to_f32()?,
            eps: md("llama.attention.layer_norm_rms_epsilon")?.to_f32()?,
            vocab: md("tokenizer.ggml.tokens")?.to_vec()?.len(),
        };
        if config.kv_heads == 0 || !config.heads.is_multiple_of(config.kv_heads) || !config.head_dim.is_multiple_of(2) {
            candle_core::bail!("unsupported head layout {config:?}");
        }
        let device = Device::Cpu;
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let token_embd = tensor("token_embd.weight")?;
        let embeddings = token_embd.dequantize(&device)?.flatten_all()?.to_vec1::<f32>()?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => QLinear::new(tensor("output.weight")?)?,
            false => QLinear::new(token_embd)?,
        };
        let output_norm = to_vec(tensor("output_norm.weight")?)?;
        let mut blocks = Vec::with_capacity(config.blocks);
        let mut ffn = 0;
        for i in 0..config.blocks {
            let mut w = |part: &str| tensor(&format!("blk.{i}.{part}.weight"));
            let gate_up = QLinear::stacked(vec![w("ffn_gate")?, w("ffn_up")?])?;
            ffn = gate_up.out_features() / 2;
            blocks.push(Block {
                attn_norm: to_vec(w("attn_norm")?)?,
                qkv: QLinear::stacked(vec![w("attn_q")?, w("attn_k")?, w("attn_v")?])?,
                o: QLinear::new(w("attn_output")?)?,
                ffn_norm: to_vec(w("ffn_norm")?)?,
                gate_up,
                down: QLinear::new(w("ffn_down")?)?,
            });
        }
        let (cos, sin) = rope_tables(&config);
        let pool = model_pool("llama").map_err(candle_core::Error::Msg)?;
        Ok(Self { config, embeddings, blocks, output_norm, output, cos, sin, ffn, pool })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache with room for `capacity` positions (it grows when needed).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let capacity = capacity.clamp(1, self.config.context);
        let size = self.config.kv_heads * capacity * self.config.head_dim;
        Ok(KvCache {
            k: (0..self.config.blocks).map(|_| vec![0f32; size]).collect(),
            v: (0..self.config.blocks).map(|_| vec![0f32; size]).collect(),
            len: 0,
            capacity,
        })
    }

    fn grow(&self, cache: &mut KvCache, needed: usize) {
        if needed <= cache.capacity {
            return;
        }
        let capacity = needed.max(cache.capacity * 2).min(self.config.context);
        let hd = self.config.head_dim;
        for t in cache.k.iter_mut().chain(cache.v.iter_mut()) {
            let mut bigger = vec![0f32; self.config.kv_heads * capacity * hd];
            for g in 0..self.config.kv_heads {
                let (from, to) = (g * cache.capacity * hd, g * capacity * hd);
                bigger[to..to + cache.len * hd].copy_from_slice(&t[from..from + cache.len * hd]);
            }
            *t = bigger;
        }
        cache.capacity = capacity;
    }

    /// Feeds `tokens` (the next positions of the sequence whose memory is `cache`) through the
    /// model and returns the logits for the token after the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        self.pool.install(|| self.forward_in_pool(tokens, cache))
    }

    fn forward_in_pool(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let t = tokens.len();
        let past = cache.len;
        let total = past + t;
        if t == 0 {
            candle_core::bail!("no tokens to feed");
        }
        if total > self.config.context {
            candle_core::bail!("sequence of {total} tokens exceeds the context of {}", self.config.context);
        }
        self.grow(cache, total);
        let c = &self.config;
        let (hidden, hd) = (c.hidden, c.head_dim);
        let (q_width, kv_width) = (c.heads * hd, c.kv_heads * hd);
        let mut x = Vec::with_capacity(t * hidden);
        for &token in tokens {
            let row = token as usize;
            if row >= c.vocab {
                candle_core::bail!("token {token} is outside the vocabulary");
            }
            x.extend_from_slice(&self.embeddings[row * hidden..(row + 1) * hidden]);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, &block.attn_norm, c.eps);
            let mut qkv = block.qkv.forward(&h, t)?;
            with_fma(
                #[inline(always)]
                || {
                    for (r, row) in qkv.chunks_exact_mut(q_width + 2 * kv_width).enumerate() {
                        let pos = past + r;
                        let (q, kv) = row.split_at_mut(q_width);
                        self.rope(q, pos);
                        self.rope(&mut kv[..kv_width], pos);
                        // llama.cpp keeps K and V in an f16 cache and multiplies Q in f16 against it.
                        row.iter_mut().for_each(|v| *v = round_f16(*v));
                    }
                },
            );
            let capacity = cache.capacity;
            let attended = self.attention(&qkv, t, past, capacity, &mut cache.k[i], &mut cache.v[i])?;
            add_into(&mut x, &block.o.forward(&attended, t)?);
            let h = rms_norm(&x, &block.ffn_norm, c.eps);
            let gate_up = block.gate_up.forward(&h, t)?;
            let mut act = Vec::with_capacity(t * self.ffn);
            with_fma(
                #[inline(always)]
                || {
                    for row in gate_up.chunks_exact(2 * self.ffn) {
                        let (gate, up) = row.split_at(self.ffn);
                        for (&g, &u) in gate.iter().zip(up) {
                            act.push(ggml::silu(g) * u);
                        }
                    }
                },
            );
            add_into(&mut x, &block.down.forward(&act, t)?);
        }
        cache.len = total;
        let last = rms_norm(&x[(t - 1) * hidden..], &self.output_norm, c.eps);
        self.output.forward(&last, 1)
    }

    /// Rotates each head of `row` (interleaved pairs) to position `pos`.
    #[inline(always)]
    fn rope(&self, row: &mut [f32], pos: usize) {
        let half = self.config.head_dim / 2;
        let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
        for head in row.chunks_exact_mut(self.config.head_dim) {
            for (p, pair) in head.chunks_exact_mut(2).enumerate() {
                let (x0, x1) = (pair[0], pair[1]);
                // As llama.cpp's compiled rotation computes it (GCC contracts each expression
                // into one fused multiply-add around x0's product; measured, see docs/models.md).
                pair[0] = x0.mul_add(cos[p], -(x1 * sin[p]));
                pair[1] = x0.mul_add(sin[p], x1 * cos[p]);
            }
        }
    }

    /// Stores the new keys and values of `qkv` (rows `[q | k | v]`) in the cache at `past..`,
    /// then attends every query to the cache: `[t, heads·head_dim]`. Scores are scaled, masked
    /// (causal), soft-maxed, and rounded to f16 before they weigh the values, as llama.cpp does.
    fn attention(
        &self,
        qkv: &[f32],
        t: usize,
        past: usize,
        capacity: usize,
        k_cache: &mut [f32],
        v_cache: &mut [f32],
    ) -> Result<Vec<f32>> {
        let c = &self.config;
        let (hd, group) = (c.head_dim, c.heads / c.kv_heads);
        let (q_width, kv_width) = (c.heads * hd, c.kv_heads * hd);
        let total = past + t;
        let row_width = q_width + 2 * kv_width;
        for (r, row) in qkv.chunks_exact(row_width).enumerate() {
            for g in 0..c.kv_heads {
                let at = (g * capacity + past + r) * hd;
                k_cache[at..at + hd].copy_from_slice(&row[q_width + g * hd..q_width + (g + 1) * hd]);
                let v_at = q_width + kv_width + g * hd;
                v_cache[at..at + hd].copy_from_slice(&row[v_at..v_at + hd]);
            }
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0f32; t * q_width];
        // Every query row attends exactly as llama.cpp's single-token path does (row r sees
        // positions 0..=past+r), so that reading a prompt at once gives the same numbers as
        // reading it token by token.
        // One work item per (query row, head), shared among threads; each computes its output
        // whole, so the split changes no result.
        let heads = c.heads;
        out.par_chunks_mut(hd).enumerate().for_each_init(
            || (vec![0f32; total], vec![0f32; F16_LANES * hd]),
            |(scores, lanes), (item, o)| {
                let (r, head) = (item / heads, item % heads);
                let visible = past + r + 1;
                let g = head / group;
                let q = &qkv[r * row_width + head * hd..r * row_width + (head + 1) * hd];
                let keys = &k_cache[g * capacity * hd..(g * capacity + visible) * hd];
                let values = &v_cache[g * capacity * hd..(g * capacity + visible) * hd];
                with_fma(
                    #[inline(always)]
                    || {
                        for (score, key) in scores[..visible].iter_mut().zip(keys.chunks_exact(hd)) {
                            *score = ggml::dot_f16(q, key) * scale;
                        }
                        ggml::softmax(&mut scores[..visible]);
                        scores[..visible].iter_mut().for_each(|p| *p = round_f16(*p));
                        ggml::weighted_sum_f16(&scores[..visible], values, hd, lanes, o);
                    },
                );
            },
        );
        Ok(out)
    }
}

/// RMSNorm of each row of `x` (width `weight.len()`), as ggml computes it: the squares (f32)
/// summed in f64, `1/sqrt(mean + eps)` in f32, then the weight.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(weight.len()) {
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / row.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(&v, &w)| v * scale * w));
    }
    out
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// cos/sin tables `[context, head_dim/2]` for interleaved rotary embeddings, computed as ggml's
/// `rope_cache_init` does: θ starts at the position and is multiplied by `base^(−2/dim)` for
/// each next pair, in f32.
fn rope_tables(c: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim / 2;
    let theta_scale = c.rope_base.powf(-2.0 / c.head_dim as f32);
    let mut cos = Vec::with_capacity(c.context * half);
    let mut sin = Vec::with_capacity(c.context * half);
    for p in 0..c.context {
        let mut theta = p as f32;
        for _ in 0..half {
            cos.push(theta.cos());
            sin.push(theta.sin());
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

/// The index of the largest logit (the first one on a tie): greedy decoding.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}
