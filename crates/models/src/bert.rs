//! The BERT encoder forward pass of all-MiniLM-L6-v2, in plain Rust on f32 rows (CPU).
//!
//! It computes exactly what Hugging Face's `BertModel` computes in evaluation mode, so that the
//! vectors equal sentence-transformers' to ~1e-6 (the fixtures check 1e-4):
//! embeddings (word + absolute position + token type 0, then LayerNorm), then per layer
//! self-attention with the padding mask added as a large negative bias before the softmax,
//! residual + LayerNorm, a GELU (erf form, as `hidden_act: "gelu"` means in Hugging Face)
//! feed-forward, residual + LayerNorm. Pooling and normalisation live in [`crate::embed`].
//!
//! Differences in form, not in result:
//! - the query, key and value projections of a layer are fused into one matrix at load time,
//!   so each layer does one large matrix product instead of three small ones;
//! - the matrix products are [`crate::gemm::Dense`] (weights packed once at load time);
//!   attention, LayerNorm and GELU are loops over rows, shared among threads — as tensor
//!   operations each allocated and dispatched more than it computed for these small shapes;
//! - padding keys are skipped rather than masked with a large negative bias (the same zero
//!   weight after the softmax); GELU's `erf` is a polynomial with |error| < 1.5e-7 (Abramowitz
//!   and Stegun 7.1.26) evaluated in vector registers instead of libm's scalar `erff`.
//!
//! Candle is still what reads the safetensors file.

use crate::gemm::Dense;
use crate::quant::{ggml, with_fma};
use candle_core::{DType, Device, Result};
use rayon::prelude::*;
use std::path::Path;

/// The fields of the model's `config.json` that the forward pass uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Width of every hidden state (384).
    pub hidden_size: usize,
    /// Number of encoder layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (12).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (1536).
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover (512).
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
    /// Activation of the feed-forward layer; only `gelu` is supported.
    pub hidden_act: String,
}

/// A tensor read from the safetensors file: its values (row-major) and its shape.
type Weights = (Vec<f32>, Vec<usize>);

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f64,
}

impl LayerNorm {
    /// Normalises each row of `x` in place: mean and variance (biased) in f64, then
    /// `(v − mean)/sqrt(var + eps)·w + b`.
    fn apply(&self, x: &mut [f32]) {
        let width = self.weight.len();
        x.par_chunks_mut(width).for_each(|row| {
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / width as f64;
            let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / width as f64;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, &w), &b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = ((f64::from(*v) - mean) * inv) as f32 * w + b;
            }
        });
    }
}

struct Layer {
    qkv: Dense,
    attention_output: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// The loaded encoder.
pub struct Bert {
    /// `[vocab, hidden]`.
    word_embeddings: Vec<f32>,
    /// `[max positions, hidden]`.
    position_embeddings: Vec<f32>,
    token_type_embedding: Vec<f32>,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    vocab: usize,
}

impl Bert {
    /// Reads the weights (`model.safetensors`) for `config`.
    pub fn load(weights: &Path, config: &BertConfig) -> Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!("unsupported hidden_act {:?} (only gelu)", config.hidden_act);
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!("hidden_size is not a multiple of num_attention_heads");
        }
        let mut tensors = candle_core::safetensors::load(weights, &Device::Cpu)?;
        let mut take = |name: &str| -> Result<Weights> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?
                .to_dtype(DType::F32)?;
            let dims = t.dims().to_vec();
            Ok((t.flatten_all()?.to_vec1::<f32>()?, dims))
        };
        let hidden = config.hidden_size;
        let eps = config.layer_norm_eps;
        let norm = |take: &mut dyn FnMut(&str) -> Result<Weights>, prefix: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                weight: take(&format!("{prefix}.weight"))?.0,
                bias: take(&format!("{prefix}.bias"))?.0,
                eps,
            })
        };
        let dense = |take: &mut dyn FnMut(&str) -> Result<Weights>, prefixes: &[String]| -> Result<Dense> {
            let (mut weight, mut bias, mut n, mut k) = (Vec::new(), Vec::new(), 0, 0);
            for prefix in prefixes {
                let (w, dims) = take(&format!("{prefix}.weight"))?;
                let [rows, cols] = dims[..] else { candle_core::bail!("{prefix}.weight is not a matrix") };
                if k != 0 && cols != k {
                    candle_core::bail!("{prefix}.weight has {cols} columns, expected {k}");
                }
                (n, k) = (n + rows, cols);
                weight.extend(w);
                bias.extend(take(&format!("{prefix}.bias"))?.0);
            }
            if bias.len() != n {
                candle_core::bail!("bias of {} values for {n} outputs", bias.len());
            }
            Dense::new(&weight, &bias, n, k).map_err(candle_core::Error::Msg)
        };
        let (word_embeddings, word_dims) = take("embeddings.word_embeddings.weight")?;
        let position_embeddings = take("embeddings.position_embeddings.weight")?.0;
        let token_type_embedding = take("embeddings.token_type_embeddings.weight")?.0[..hidden].to_vec();
        let embeddings_norm = norm(&mut take, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let parts: Vec<String> =
                ["query", "key", "value"].iter().map(|x| format!("{p}.attention.self.{x}")).collect();
            layers.push(Layer {
                qkv: dense(&mut take, &parts)?,
                attention_output: dense(&mut take, &[format!("{p}.attention.output.dense")])?,
                attention_norm: norm(&mut take, &format!("{p}.attention.output.LayerNorm"))?,
                intermediate: dense(&mut take, &[format!("{p}.intermediate.dense")])?,
                output: dense(&mut take, &[format!("{p}.output.dense")])?,
                output_norm: norm(&mut take, &format!("{p}.output.LayerNorm"))?,
            });
        }
        if word_dims.get(1) != Some(&hidden) || position_embeddings.len() % hidden != 0 {
            candle_core::bail!("embedding tables do not have {hidden} columns");
        }
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type_embedding,
            embeddings_norm,
            layers,
            heads: config.num_attention_heads,
            head_dim: hidden / config.num_attention_heads,
            hidden,
            vocab: word_dims[0],
        })
    }

    /// Longest sequence the model accepts.
    pub fn max_positions(&self) -> usize {
        self.position_embeddings.len() / self.hidden
    }

    /// Runs the encoder on a batch of token sequences (each at most [`Self::max_positions`]
    /// long) and returns, per sequence, the mean of its last hidden states over its tokens,
    /// L2-normalised: sentence-transformers' `Pooling(mean)` + `Normalize`. Sequences are
    /// padded to the longest; padding is never attended to nor pooled.
    pub fn embed(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let hidden = self.hidden;
        let len = batch.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        if len > self.max_positions() {
            candle_core::bail!("a sequence of {len} tokens exceeds the {} positions", self.max_positions());
        }
        let lengths: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let rows = batch.len() * len;
        let mut x = Vec::with_capacity(rows * hidden);
        for seq in batch {
            for t in 0..len {
                let id = seq.get(t).copied().unwrap_or(0) as usize;
                if id >= self.vocab {
                    candle_core::bail!("token {id} is outside the vocabulary");
                }
                let word = &self.word_embeddings[id * hidden..(id + 1) * hidden];
                let pos = &self.position_embeddings[t * hidden..(t + 1) * hidden];
                x.extend(word.iter().zip(pos).zip(&self.token_type_embedding).map(|((w, p), tt)| w + p + tt));
            }
        }
        self.embeddings_norm.apply(&mut x);
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, rows);
            let context = self.attention(&qkv, &lengths, len);
            let mut attended = layer.attention_output.forward(&context, rows);
            add_into(&mut attended, &x);
            layer.attention_norm.apply(&mut attended);
            let mut inner = layer.intermediate.forward(&attended, rows);
            gelu(&mut inner);
            x = layer.output.forward(&inner, rows);
            add_into(&mut x, &attended);
            layer.output_norm.apply(&mut x);
        }
        Ok(lengths
            .iter()
            .enumerate()
            .map(|(b, &n)| {
                let mut mean = vec![0f64; hidden];
                for t in 0..n.min(len) {
                    let row = &x[(b * len + t) * hidden..(b * len + t + 1) * hidden];
                    mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
                }
                let count = n.max(1) as f64;
                let norm = mean.iter().map(|m| (m / count).powi(2)).sum::<f64>().sqrt().max(1e-12);
                mean.iter().map(|m| (m / count / norm) as f32).collect()
            })
            .collect())
    }

    /// Self-attention of every sequence and head in plain loops (the products are a few dozen
    /// tokens by 32 dimensions). `qkv`: `[batch·len, 3·hidden]` (query, key, value); returns
    /// the context `[batch·len, hidden]`. Work items (sequence, head) are shared among threads.
    fn attention(&self, qkv: &[f32], lengths: &[usize], len: usize) -> Vec<f32> {
        let (hidden, hd, heads) = (self.hidden, self.head_dim, self.heads);
        let scale = 1.0 / (hd as f32).sqrt();
        let items: Vec<Vec<f32>> = (0..lengths.len() * heads)
            .into_par_iter()
            .map(|item| {
                let (b, h) = (item / heads, item % heads);
                let keys = lengths[b].clamp(1, len);
                let at = |t: usize, part: usize| (b * len + t) * 3 * hidden + part * hidden + h * hd;
                let mut ctx = vec![0f32; len * hd];
                let mut scores = vec![0f32; keys];
                for t in 0..len {
                    let q = &qkv[at(t, 0)..at(t, 0) + hd];
                    for (j, score) in scores.iter_mut().enumerate() {
                        let k = &qkv[at(j, 1)..at(j, 1) + hd];
                        *score = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    }
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        sum += *s;
                    }
                    let o = &mut ctx[t * hd..(t + 1) * hd];
                    for (j, &p) in scores.iter().enumerate() {
                        let v = &qkv[at(j, 2)..at(j, 2) + hd];
                        let w = p / sum;
                        o.iter_mut().zip(v).for_each(|(o, &v)| *o += w * v);
                    }
                }
                ctx
            })
            .collect();
        let mut out = vec![0f32; lengths.len() * len * hidden];
        for (item, ctx) in items.into_iter().enumerate() {
            let (b, h) = (item / heads, item % heads);
            for t in 0..len {
                let row = (b * len + t) * hidden + h * hd;
                out[row..row + hd].copy_from_slice(&ctx[t * hd..(t + 1) * hd]);
            }
        }
        out
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// GELU, erf form, in place: `x·(1 + erf(x/√2))/2`.
fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).for_each(|chunk| {
        with_fma(
            #[inline(always)]
            || {
                for v in chunk.iter_mut() {
                    *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
                }
            },
        )
    });
}

/// erf by Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7), branch-free so that it vectorizes.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let poly = 1.061_405_4f32
        .mul_add(t, -1.453_152_1)
        .mul_add(t, 1.421_413_8)
        .mul_add(t, -0.284_496_72)
        .mul_add(t, 0.254_829_6)
        * t;
    let y = 1.0 - poly * ggml::expf(-a * a);
    y.copysign(x)
}
