//! The quantized llama forward pass of SmolLM2-135M-Instruct, read from its GGUF file.
//!
//! Architecture (from the GGUF metadata): 30 blocks, hidden 576, 9 query heads sharing 3
//! key/value heads (grouped-query attention), head size 64, rotary position embeddings of the
//! "normal" (interleaved pairs) kind with base 100 000, RMSNorm, SwiGLU feed-forward of 1536,
//! output projection tied to the token embeddings (`token_embd.weight`, Q8_0).
//!
//! Numerics follow llama.cpp's CPU path, so that greedy decoding picks the same tokens as the
//! reference run (see `tests/fixtures/README.md`):
//! - activations are quantized per block of 32 to 8 bits before each quantized matrix product,
//!   exactly as ggml does (candle's kernels do this for us);
//! - rotary angles are computed as ggml computes them (`θ·scale^i` by repeated multiplication
//!   in f32), not with `powf` per index;
//! - keys, values, queries and attention weights are rounded to f16 where llama.cpp keeps its
//!   KV cache and attention products in f16 (its default).
//!
//! Speed: candle has SIMD kernels for Q4_0×Q8_0 and Q8_0×Q8_0 but only a scalar one for
//! Q4_1×Q8_1, which made every Q4_1 product several times slower than llama.cpp's. Q4_1
//! stores `w = d·q + m` per block of 32 (q ∈ 0..16); we rewrite each weight losslessly as
//! `w = d·(q − 8) + (8·d + m)`: the first term is a Q4_0 block with the same nibbles and scale
//! (fast kernel), the second a per-block constant whose product with the activations is a
//! small f32 matrix product over block sums (1/32 of the work). See [`QLinear`].

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Result, Tensor};
use half::f16;
use std::borrow::Cow;
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
/// `f32` slices (the small per-token operations around it are cheaper in plain Rust than as
/// tensor operations, each of which allocates).
///
/// Q4_1 weights are split into a Q4_0 matrix and per-block offsets (module docs); the offset
/// term is computed the way ggml's `vec_dot_q4_1_q8_1` computes it: `8·d` against the sum of
/// the quantized activations of the block, `m` against that sum rounded to f16 (ggml's `s`).
pub struct QLinear {
    matmul: QMatMul,
    k: usize,
    n: usize,
    /// For a rewritten Q4_1 matrix: `[2·k/32, n]`, the `8·d` of every (block, row) then the `m`
    /// of every (block, row), so that the offset term is one f32 matrix product (as a tensor
    /// for many rows, as a plain slice for one).
    offsets: Option<(Tensor, Vec<f32>)>,
}

const QK: usize = 32;
const Q4_1_BYTES: usize = 20;
const Q4_0_BYTES: usize = 18;

impl QLinear {
    /// Wraps a weight read from the GGUF; Q4_1 weights are rewritten (module docs).
    pub fn new(weight: QTensor) -> Result<Self> {
        let (n, k) = weight.shape().dims2()?;
        if weight.dtype() != GgmlDType::Q4_1 {
            return Ok(Self { matmul: QMatMul::from_qtensor(weight)?, k, n, offsets: None });
        }
        if !k.is_multiple_of(QK) {
            candle_core::bail!("Q4_1 row length {k} is not a multiple of {QK}");
        }
        let raw = weight.data()?;
        if raw.len() != n * (k / QK) * Q4_1_BYTES {
            candle_core::bail!("Q4_1 tensor has {} bytes, expected {}", raw.len(), n * (k / QK) * Q4_1_BYTES);
        }
        // Q4_1 block: f16 d, f16 m, 16 bytes of nibbles. Q4_0 block: f16 d, 16 bytes of nibbles.
        let blocks = raw.len() / Q4_1_BYTES;
        let mut q4_0 = Vec::with_capacity(blocks * Q4_0_BYTES);
        let mut eight_d = Vec::with_capacity(blocks);
        let mut m = Vec::with_capacity(blocks);
        for block in raw.chunks_exact(Q4_1_BYTES) {
            q4_0.extend_from_slice(&block[0..2]);
            q4_0.extend_from_slice(&block[4..20]);
            eight_d.push(8.0 * f16::from_le_bytes([block[0], block[1]]).to_f32());
            m.push(f16::from_le_bytes([block[2], block[3]]).to_f32());
        }
        let storage = QStorage::from_data(Cow::Owned(q4_0), &Device::Cpu, GgmlDType::Q4_0)?;
        let matmul = QMatMul::from_qtensor(QTensor::new(storage, (n, k))?)?;
        let per_row = |v: Vec<f32>| Tensor::from_vec(v, (n, k / QK), &Device::Cpu);
        let offsets = Tensor::cat(&[per_row(eight_d)?, per_row(m)?], 1)?.t()?.contiguous()?;
        let flat = offsets.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { matmul, k, n, offsets: Some((offsets, flat)) })
    }

    /// One matrix made of the rows of `parts` stacked (same type and row length), so that
    /// e.g. the query, key and value projections are one product instead of three.
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
        let storage = QStorage::from_data(Cow::Owned(data), &Device::Cpu, dtype)?;
        Self::new(QTensor::new(storage, (rows, k))?)
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// `x`: `rows × k` row-major → `rows × n` row-major.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let input = Tensor::from_slice(x, (rows, self.k), &Device::Cpu)?;
        let mut y = self.matmul.forward(&input)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some((offsets, flat)) = &self.offsets {
            let blocks = self.k / QK;
            let mut sums = vec![0f32; rows * 2 * blocks];
            for (row, out) in x.chunks_exact(self.k).zip(sums.chunks_exact_mut(2 * blocks)) {
                let (sum_dq, s) = out.split_at_mut(blocks);
                quantized_block_sums(row, sum_dq, s);
            }
            if rows == 1 {
                // One row (decoding): a few axpys over contiguous rows beat a matrix-product call.
                for (b, &sum) in sums.iter().enumerate() {
                    y.iter_mut().zip(&flat[b * self.n..(b + 1) * self.n]).for_each(|(o, &w)| *o += sum * w);
                }
            } else {
                let sums = Tensor::from_vec(sums, (rows, 2 * blocks), &Device::Cpu)?;
                let correction = sums.matmul(offsets)?.flatten_all()?.to_vec1::<f32>()?;
                add_into(&mut y, &correction);
            }
        }
        Ok(y)
    }
}

/// For each block of 32 of one activation row: the block quantized to 8 bits as ggml's
/// `quantize_row_q8_1` does (scale `d = amax/127`, round to nearest even), then
/// `f16(d)·Σq` (what the Q4_0 kernel's `−8` term subtracts) and `f16(d·Σq)` (ggml's `s`).
fn quantized_block_sums(row: &[f32], sum_dq: &mut [f32], s: &mut [f32]) {
    for (b, block) in row.chunks_exact(QK).enumerate() {
        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let sum: i32 = block.iter().map(|v| (v * id).round_ties_even() as i32).sum();
        sum_dq[b] = f16::from_f32(d).to_f32() * sum as f32;
        s[b] = f16::from_f32(d * sum as f32).to_f32();
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

fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
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
        Ok(Self { config, embeddings, blocks, output_norm, output, cos, sin, ffn })
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
            for (r, row) in qkv.chunks_exact_mut(q_width + 2 * kv_width).enumerate() {
                let pos = past + r;
                let (q, kv) = row.split_at_mut(q_width);
                self.rope(q, pos);
                self.rope(&mut kv[..kv_width], pos);
                // llama.cpp keeps K and V in an f16 cache and multiplies Q in f16 against it.
                row.iter_mut().for_each(|v| *v = round_f16(*v));
            }
            let capacity = cache.capacity;
            let attended = self.attention(&qkv, t, past, capacity, &mut cache.k[i], &mut cache.v[i])?;
            add_into(&mut x, &block.o.forward(&attended, t)?);
            let h = rms_norm(&x, &block.ffn_norm, c.eps);
            let gate_up = block.gate_up.forward(&h, t)?;
            let mut act = Vec::with_capacity(t * self.ffn);
            for row in gate_up.chunks_exact(2 * self.ffn) {
                let (gate, up) = row.split_at(self.ffn);
                act.extend(gate.iter().zip(up).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u));
            }
            add_into(&mut x, &block.down.forward(&act, t)?);
        }
        cache.len = total;
        let last = rms_norm(&x[(t - 1) * hidden..], &self.output_norm, c.eps);
        self.output.forward(&last, 1)
    }

    /// Rotates each head of `row` (interleaved pairs) to position `pos`.
    fn rope(&self, row: &mut [f32], pos: usize) {
        let half = self.config.head_dim / 2;
        let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
        for head in row.chunks_exact_mut(self.config.head_dim) {
            for (p, pair) in head.chunks_exact_mut(2).enumerate() {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * cos[p] - x1 * sin[p];
                pair[1] = x0 * sin[p] + x1 * cos[p];
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
        if t == 1 {
            // Decoding: one query per head; plain loops over the cache, no tensors.
            let mut scores = vec![0f32; total];
            for head in 0..c.heads {
                let g = head / group;
                let q = &qkv[head * hd..(head + 1) * hd];
                let keys = &k_cache[g * capacity * hd..(g * capacity + total) * hd];
                for (score, key) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
                    *score = dot(q, key) * scale;
                }
                softmax_f16(&mut scores);
                let o = &mut out[head * hd..(head + 1) * hd];
                let values = &v_cache[g * capacity * hd..(g * capacity + total) * hd];
                for (&p, value) in scores.iter().zip(values.chunks_exact(hd)) {
                    o.iter_mut().zip(value).for_each(|(o, &v)| *o += p * v);
                }
            }
            return Ok(out);
        }
        // Reading a prompt: matrix products. Queries [kv_heads, group·t, hd] (the query heads
        // that share key/value head g stacked as rows), keys and values [kv_heads, total, hd].
        let mut q = vec![0f32; q_width * t];
        for (r, row) in qkv.chunks_exact(row_width).enumerate() {
            for head in 0..c.heads {
                let at = (head * t + r) * hd;
                q[at..at + hd].copy_from_slice(&row[head * hd..(head + 1) * hd]);
            }
        }
        let gather = |cache: &[f32]| -> Result<Tensor> {
            let mut data = Vec::with_capacity(c.kv_heads * total * hd);
            for g in 0..c.kv_heads {
                data.extend_from_slice(&cache[g * capacity * hd..(g * capacity + total) * hd]);
            }
            Tensor::from_vec(data, (c.kv_heads, total, hd), &Device::Cpu)
        };
        let (keys, values) = (gather(k_cache)?, gather(v_cache)?);
        let q = Tensor::from_vec(q, (c.kv_heads, group * t, hd), &Device::Cpu)?;
        let mut scores = q.matmul(&keys.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        for (r, row) in scores.chunks_exact_mut(total).enumerate() {
            let visible = past + r % t + 1;
            row[..visible].iter_mut().for_each(|v| *v *= scale);
            softmax_f16(&mut row[..visible]);
            row[visible..].iter_mut().for_each(|v| *v = 0.0);
        }
        let probs = Tensor::from_vec(scores, (c.kv_heads, group * t, total), &Device::Cpu)?;
        let context = probs.matmul(&values)?.flatten_all()?.to_vec1::<f32>()?; // [kv, group·t, hd]
        for head in 0..c.heads {
            for r in 0..t {
                let from = (head * t + r) * hd;
                out[r * q_width + head * hd..r * q_width + (head + 1) * hd].copy_from_slice(&context[from..from + hd]);
            }
        }
        Ok(out)
    }
}

/// Dot product with eight independent sums, so that the compiler can use vector registers
/// (a single running sum forces one addition after the other).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Softmax in place (max subtracted, sum in f64 as ggml does), then rounded to f16.
fn softmax_f16(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    row.iter_mut().for_each(|v| *v = round_f16(*v * inv));
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
