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
use candle_core::{DType, Device, Module, Result, Tensor};
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

/// A weight matrix applied to activations: `x [m, k] → x·Wᵀ [m, n]`.
///
/// Q4_1 weights are split into a Q4_0 matrix and per-block offsets (module docs); the offset
/// term is computed the way ggml's `vec_dot_q4_1_q8_1` computes it: `8·d` against the sum of
/// the quantized activations of the block, `m` against that sum rounded to f16 (ggml's `s`).
pub enum QLinear {
    /// A matrix candle multiplies directly (Q8_0 and others).
    Plain(QMatMul),
    /// A Q4_1 matrix, rewritten.
    Q4_1Split {
        /// Nibbles and scales as Q4_0: `d·(q − 8)`.
        q4_0: QMatMul,
        /// `8·d` per (row, block): `[n, k/32]`, transposed to `[k/32, n]`.
        eight_d: Tensor,
        /// `m` per (row, block), transposed to `[k/32, n]`.
        m: Tensor,
    },
}

const QK: usize = 32;

impl QLinear {
    /// Wraps a weight read from the GGUF; Q4_1 weights are rewritten (module docs).
    pub fn new(weight: QTensor) -> Result<Self> {
        if weight.dtype() != GgmlDType::Q4_1 {
            return Ok(Self::Plain(QMatMul::from_qtensor(weight)?));
        }
        let (n, k) = weight.shape().dims2()?;
        if k % QK != 0 {
            candle_core::bail!("Q4_1 row length {k} is not a multiple of {QK}");
        }
        let blocks_per_row = k / QK;
        let raw = weight.data()?;
        // Q4_1 block: f16 d, f16 m, 16 bytes of nibbles. Q4_0 block: f16 d, 16 bytes of nibbles.
        const Q4_1_BYTES: usize = 20;
        const Q4_0_BYTES: usize = 18;
        if raw.len() != n * blocks_per_row * Q4_1_BYTES {
            candle_core::bail!("Q4_1 tensor has {} bytes, expected {}", raw.len(), n * blocks_per_row * Q4_1_BYTES);
        }
        let mut q4_0 = Vec::with_capacity(n * blocks_per_row * Q4_0_BYTES);
        let mut eight_d = Vec::with_capacity(n * blocks_per_row);
        let mut m = Vec::with_capacity(n * blocks_per_row);
        for block in raw.chunks_exact(Q4_1_BYTES) {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            q4_0.extend_from_slice(&block[0..2]);
            q4_0.extend_from_slice(&block[4..20]);
            eight_d.push(8.0 * d);
            m.push(f16::from_le_bytes([block[2], block[3]]).to_f32());
        }
        let storage = QStorage::from_data(Cow::Owned(q4_0), &Device::Cpu, GgmlDType::Q4_0)?;
        let q4_0 = QMatMul::from_qtensor(QTensor::new(storage, (n, k))?)?;
        let transpose = |v: Vec<f32>| Tensor::from_vec(v, (n, blocks_per_row), &Device::Cpu)?.t()?.contiguous();
        Ok(Self::Q4_1Split { q4_0, eight_d: transpose(eight_d)?, m: transpose(m)? })
    }

    /// `x [m, k] → [m, n]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Plain(w) => w.forward(x),
            Self::Q4_1Split { q4_0, eight_d, m } => {
                let (sum_dq, s) = quantized_block_sums(x)?;
                let main = q4_0.forward(x)?;
                main + sum_dq.matmul(eight_d)? + s.matmul(m)?
            }
        }
    }
}

/// For each row of `x [m, k]` and each block of 32: the block quantized to 8 bits as ggml's
/// `quantize_row_q8_1` does (scale `d = amax/127`, round to nearest even), then
/// `f16(d)·Σq` (what the Q4_0 kernel's `−8` term subtracts) and `f16(d·Σq)` (ggml's `s`).
fn quantized_block_sums(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, k) = x.dims2()?;
    let blocks = k / QK;
    let data = x.flatten_all()?.to_vec1::<f32>()?;
    let mut sum_dq = Vec::with_capacity(rows * blocks);
    let mut s = Vec::with_capacity(rows * blocks);
    for block in data.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let sum: i32 = block.iter().map(|v| (v * id).round_ties_even() as i32).sum();
        sum_dq.push(f16::from_f32(d).to_f32() * sum as f32);
        s.push(f16::from_f32(d * sum as f32).to_f32());
    }
    Ok((
        Tensor::from_vec(sum_dq, (rows, blocks), &Device::Cpu)?,
        Tensor::from_vec(s, (rows, blocks), &Device::Cpu)?,
    ))
}

struct Block {
    attn_norm: Tensor,
    q: QLinear,
    k: QLinear,
    v: QLinear,
    o: QLinear,
    ffn_norm: Tensor,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// The loaded model.
pub struct Llama {
    config: LlamaConfig,
    embeddings: Tensor,
    blocks: Vec<Block>,
    output_norm: Tensor,
    output: QLinear,
    cos: Tensor,
    sin: Tensor,
}

/// The keys and values of every position seen so far, per block: one sequence's memory.
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
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

fn round_f16(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F16)?.to_dtype(DType::F32)
}

impl Llama {
    /// Reads the model from a GGUF file.
    pub fn load<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self> {
        let md = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("GGUF metadata {key} is missing")))
        };
        let arch = md("general.architecture")?.to_string()?;
        if arch != "llama" {
            candle_core::bail!("unsupported GGUF architecture {arch:?} (expected llama)");
        }
        let heads = md("llama.attention.head_count")?.to_u32()? as usize;
        let hidden = md("llama.embedding_length")?.to_u32()? as usize;
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
        if config.heads % config.kv_heads != 0 || config.head_dim % 2 != 0 {
            candle_core::bail!("unsupported head layout {config:?}");
        }
        let device = Device::Cpu;
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let token_embd = tensor("token_embd.weight")?;
        let embeddings = token_embd.dequantize(&device)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => QLinear::new(tensor("output.weight")?)?,
            false => QLinear::new(token_embd)?,
        };
        let output_norm = tensor("output_norm.weight")?.dequantize(&device)?;
        let mut blocks = Vec::with_capacity(config.blocks);
        for i in 0..config.blocks {
            let mut w = |part: &str| tensor(&format!("blk.{i}.{part}.weight"));
            blocks.push(Block {
                attn_norm: w("attn_norm")?.dequantize(&device)?,
                q: QLinear::new(w("attn_q")?)?,
                k: QLinear::new(w("attn_k")?)?,
                v: QLinear::new(w("attn_v")?)?,
                o: QLinear::new(w("attn_output")?)?,
                ffn_norm: w("ffn_norm")?.dequantize(&device)?,
                gate: QLinear::new(w("ffn_gate")?)?,
                up: QLinear::new(w("ffn_up")?)?,
                down: QLinear::new(w("ffn_down")?)?,
            });
        }
        let (cos, sin) = rope_tables(&config)?;
        Ok(Self { config, embeddings, blocks, output_norm, output, cos, sin })
    }

    /// The model's shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache with room for `capacity` positions (it grows when needed).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let capacity = capacity.clamp(1, self.config.context);
        let shape = (self.config.kv_heads, capacity, self.config.head_dim);
        let zeros = || Tensor::zeros(shape, DType::F32, &Device::Cpu);
        Ok(KvCache {
            k: (0..self.config.blocks).map(|_| zeros()).collect::<Result<_>>()?,
            v: (0..self.config.blocks).map(|_| zeros()).collect::<Result<_>>()?,
            len: 0,
            capacity,
        })
    }

    fn grow(&self, cache: &mut KvCache, needed: usize) -> Result<()> {
        if needed <= cache.capacity {
            return Ok(());
        }
        let capacity = needed.max(cache.capacity * 2).min(self.config.context);
        let shape = (self.config.kv_heads, capacity, self.config.head_dim);
        for t in cache.k.iter_mut().chain(cache.v.iter_mut()) {
            let bigger = Tensor::zeros(shape, DType::F32, &Device::Cpu)?;
            bigger.slice_set(&t.narrow(1, 0, cache.len)?.contiguous()?, 1, 0)?;
            *t = bigger;
        }
        cache.capacity = capacity;
        Ok(())
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
        self.grow(cache, total)?;
        let c = &self.config;
        let group = c.heads / c.kv_heads;
        let ids = Tensor::from_slice(tokens, t, &Device::Cpu)?;
        let mut x = self.embeddings.index_select(&ids, 0)?; // [t, hidden]
        let cos = self.cos.narrow(0, past, t)?;
        let sin = self.sin.narrow(0, past, t)?;
        let mask = causal_mask(t, past, group)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        for (i, block) in self.blocks.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &block.attn_norm, c.eps)?;
            let q = block.q.forward(&h)?.reshape((t, c.heads, c.head_dim))?.transpose(0, 1)?.contiguous()?;
            let k = block.k.forward(&h)?.reshape((t, c.kv_heads, c.head_dim))?.transpose(0, 1)?.contiguous()?;
            let v = block.v.forward(&h)?.reshape((t, c.kv_heads, c.head_dim))?.transpose(0, 1)?.contiguous()?;
            let q = candle_nn::rotary_emb::rope_i(&q.unsqueeze(0)?, &cos, &sin)?.squeeze(0)?;
            let k = candle_nn::rotary_emb::rope_i(&k.unsqueeze(0)?, &cos, &sin)?.squeeze(0)?;
            // llama.cpp keeps K and V in an f16 cache and multiplies Q in f16 against it.
            cache.k[i].slice_set(&round_f16(&k)?, 1, past)?;
            cache.v[i].slice_set(&round_f16(&v)?, 1, past)?;
            let keys = cache.k[i].narrow(1, 0, total)?;
            let values = cache.v[i].narrow(1, 0, total)?;
            // Query heads g·group..(g+1)·group share key/value head g: stack them as rows.
            let q = round_f16(&q)?.reshape((c.kv_heads, group * t, c.head_dim))?;
            let scores = (q.matmul(&keys.t()?)? * scale)?.broadcast_add(&mask)?;
            let probs = round_f16(&candle_nn::ops::softmax_last_dim(&scores)?)?;
            let context = probs
                .matmul(&values)?
                .reshape((c.heads, t, c.head_dim))?
                .transpose(0, 1)?
                .reshape((t, c.hidden))?;
            x = (x + block.o.forward(&context)?)?;
            let h = candle_nn::ops::rms_norm(&x, &block.ffn_norm, c.eps)?;
            let gated = (candle_nn::ops::silu(&block.gate.forward(&h)?)? * block.up.forward(&h)?)?;
            x = (x + block.down.forward(&gated)?)?;
        }
        cache.len = total;
        let last = x.narrow(0, t - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.output_norm, c.eps)?;
        self.output.forward(&last)?.squeeze(0)?.to_vec1::<f32>()
    }
}

/// `[group·t, past + t]`: 0 where query row (head j, position i) may see key position p
/// (p ≤ past + i), −∞ elsewhere. Rows are ordered head-major, as the queries are stacked.
fn causal_mask(t: usize, past: usize, group: usize) -> Result<Tensor> {
    let total = past + t;
    let mut mask = Vec::with_capacity(group * t * total);
    for _ in 0..group {
        for i in 0..t {
            mask.extend((0..total).map(|p| if p <= past + i { 0f32 } else { f32::NEG_INFINITY }));
        }
    }
    Tensor::from_vec(mask, (group * t, total), &Device::Cpu)
}

/// cos/sin tables `[context, head_dim/2]` for interleaved rotary embeddings, computed as ggml's
/// `rope_cache_init` does: θ starts at the position and is multiplied by `base^(−2/dim)` for
/// each next pair, in f32.
fn rope_tables(c: &LlamaConfig) -> Result<(Tensor, Tensor)> {
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
    Ok((
        Tensor::from_vec(cos, (c.context, half), &Device::Cpu)?,
        Tensor::from_vec(sin, (c.context, half), &Device::Cpu)?,
    ))
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
