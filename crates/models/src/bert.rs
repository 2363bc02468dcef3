//! The BERT encoder forward pass of all-MiniLM-L6-v2, on candle tensors (f32, CPU).
//!
//! It computes exactly what Hugging Face's `BertModel` computes in evaluation mode, so that the
//! vectors equal sentence-transformers' to ~1e-6 (the fixtures check 1e-4):
//! embeddings (word + absolute position + token type 0, then LayerNorm), then per layer
//! self-attention with the padding mask added as a large negative bias before the softmax,
//! residual + LayerNorm, a GELU (erf form, as `hidden_act: "gelu"` means in Hugging Face)
//! feed-forward, residual + LayerNorm. Pooling and normalisation live in [`crate::embed`].
//!
//! One deliberate difference in form, not in result: the query, key and value projections of a
//! layer are fused into one `[3·hidden, hidden]` matrix at load time, so each layer does one
//! large matrix product instead of three small ones.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear};
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

struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A loaded BERT encoder.
pub struct Bert {
    word_embeddings: Embedding,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
}

impl Bert {
    /// Loads the weights from a safetensors file (read into memory, no mmap).
    pub fn load(weights: &Path, config: &BertConfig) -> Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!("unsupported hidden_act {:?} (only gelu)", config.hidden_act);
        }
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!("hidden_size is not a multiple of num_attention_heads");
        }
        let device = Device::Cpu;
        let mut tensors = candle_core::safetensors::load(weights, &device)?;
        let mut take = |name: &str| -> Result<Tensor> {
            tensors
                .remove(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?
                .to_dtype(DType::F32)
        };
        let hidden = config.hidden_size;
        let eps = config.layer_norm_eps;
        let norm = |take: &mut dyn FnMut(&str) -> Result<Tensor>, prefix: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(take(&format!("{prefix}.weight"))?, take(&format!("{prefix}.bias"))?, eps))
        };
        let linear = |take: &mut dyn FnMut(&str) -> Result<Tensor>, prefix: &str| -> Result<Linear> {
            Ok(Linear::new(take(&format!("{prefix}.weight"))?, Some(take(&format!("{prefix}.bias"))?)))
        };
        let word = take("embeddings.word_embeddings.weight")?;
        let position_embeddings = take("embeddings.position_embeddings.weight")?;
        let token_type_embedding = take("embeddings.token_type_embeddings.weight")?.get(0)?;
        let embeddings_norm = norm(&mut take, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut qkv_w = Vec::with_capacity(3);
            let mut qkv_b = Vec::with_capacity(3);
            for part in ["query", "key", "value"] {
                qkv_w.push(take(&format!("{p}.attention.self.{part}.weight"))?);
                qkv_b.push(take(&format!("{p}.attention.self.{part}.bias"))?);
            }
            layers.push(Layer {
                qkv: Linear::new(Tensor::cat(&qkv_w, 0)?, Some(Tensor::cat(&qkv_b, 0)?)),
                attention_output: linear(&mut take, &format!("{p}.attention.output.dense"))?,
                attention_norm: norm(&mut take, &format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&mut take, &format!("{p}.intermediate.dense"))?,
                output: linear(&mut take, &format!("{p}.output.dense"))?,
                output_norm: norm(&mut take, &format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word_embeddings: Embedding::new(word, hidden),
            position_embeddings,
            token_type_embedding,
            embeddings_norm,
            layers,
            heads: config.num_attention_heads,
            head_dim: hidden / config.num_attention_heads,
            hidden,
        })
    }

    /// Longest sequence the model accepts.
    pub fn max_positions(&self) -> usize {
        self.position_embeddings.dim(0).unwrap_or(0)
    }

    /// Runs the encoder. `ids`: `[batch, len]` u32 token ids (padded); `mask`: `[batch, len]`
    /// f32, 1 for real tokens and 0 for padding. Returns the last hidden states
    /// `[batch, len, hidden]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let positions = self.position_embeddings.narrow(0, 0, len)?;
        let mut x =
            self.word_embeddings.forward(ids)?.broadcast_add(&positions)?.broadcast_add(&self.token_type_embedding)?;
        x = self.embeddings_norm.forward(&x)?;
        // 0 where the key is a real token, a large negative number where it is padding, so
        // that padding gets zero weight after the softmax (Hugging Face uses the dtype's min).
        let bias = ((mask.ones_like()? - mask)? * f64::from(f32::MIN))?.reshape((batch, 1, 1, len))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv =
                layer.qkv.forward(&x)?.reshape((batch, len, 3, self.heads, self.head_dim))?.permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, len, self.hidden))?;
            let attended = layer.attention_norm.forward(&(layer.attention_output.forward(&context)? + &x)?)?;
            let inner = layer.intermediate.forward(&attended)?.gelu_erf()?;
            x = layer.output_norm.forward(&(layer.output.forward(&inner)? + &attended)?)?;
        }
        Ok(x)
    }
}

/// Mean of the hidden states over the real tokens (mask 1), then L2 normalisation:
/// sentence-transformers' `Pooling(mean)` + `Normalize` modules. `[batch, len, hidden]` →
/// `[batch, hidden]`.
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask3 = mask.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask3)?.sum(1)?;
    // sentence-transformers clamps the count at 1e-9 to never divide by zero.
    let counts = mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    // torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}
