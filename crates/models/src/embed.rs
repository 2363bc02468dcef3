//! Sentence embeddings with all-MiniLM-L6-v2: tokenizer, truncation rule, batching, pooling.
//!
//! Rules (what a caller gets, and why):
//! - **Window.** The model was trained on sequences of at most 256 word pieces
//!   (`sentence_bert_config.json: max_seq_length`), special tokens included; sentence-transformers
//!   cuts there, so we do too. The `tokenizer.json` shipped with the model pads and truncates at
//!   a fixed 128, which is *not* what sentence-transformers does: both are switched off and
//!   applied here instead.
//! - **Truncation** follows the request ([`Truncate`], Cohere's `truncate` values): `End` keeps
//!   the beginning (sentence-transformers' behaviour), `Start` keeps the end, `None` refuses an
//!   input over the window with [`ModelError::InputTooLong`] naming its index. `[CLS]` and
//!   `[SEP]` are always kept.
//! - **Token counts** are the word pieces the model actually processed for each input, `[CLS]`
//!   and `[SEP]` included (what a text-embeddings server reports as prompt tokens): an empty
//!   string costs 2, a truncated input costs the window.
//! - **Batching.** Inputs are sorted by length and run in chunks of up to `max_batch`, each
//!   padded only to its own longest member with an attention mask, so a short sentence never
//!   pays for a long one; results are returned in the caller's order. Padding does not change
//!   a vector (the mask removes it from attention and pooling), so a sentence gets the same
//!   vector alone or in any batch, up to float rounding.

use crate::bert::{Bert, BertConfig};
use crate::error::ModelError;
use crate::install::{install_command, verify, MINILM};
use crate::EMBEDDING_MODEL;
use std::path::Path;
use tokenizers::Tokenizer;

/// What to do with an input longer than the model's window (Cohere's `truncate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncate {
    /// Refuse the request ([`ModelError::InputTooLong`]).
    None,
    /// Keep the end of the input.
    Start,
    /// Keep the beginning of the input (the default, as in sentence-transformers).
    #[default]
    End,
}

/// The result of embedding a list of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector of [`Embedder::dimensions`] floats per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens processed per input, special tokens included.
    pub tokens: Vec<usize>,
}

impl Embeddings {
    /// Total tokens processed: the usage to meter.
    pub fn total_tokens(&self) -> usize {
        self.tokens.iter().sum()
    }
}

/// all-MiniLM-L6-v2, loaded.
pub struct Embedder {
    tokenizer: Tokenizer,
    bert: Bert,
    window: usize,
    max_batch: usize,
    dimensions: usize,
    /// The model's own compute threads ([`crate::quant::model_pool`]); a batch runs inside.
    pool: rayon::ThreadPool,
}

#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl Embedder {
    /// Loads the model from the cache directory `dir`, after checking every file against its
    /// pinned hash (about half a second). A missing model is [`ModelError::NotInstalled`].
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let model_dir = MINILM.path(dir);
        if !model_dir.is_dir() {
            return Err(ModelError::NotInstalled {
                model: EMBEDDING_MODEL,
                dir: dir.to_path_buf(),
                command: install_command(dir),
            });
        }
        verify(dir, &MINILM).map_err(|detail| ModelError::Corrupt {
            model: EMBEDDING_MODEL,
            dir: model_dir.clone(),
            detail,
            command: install_command(dir),
        })?;
        Self::load_unverified(&model_dir)
    }

    /// Loads the model files from `model_dir` without checking their hashes.
    pub fn load_unverified(model_dir: &Path) -> Result<Self, ModelError> {
        let internal = |e: &dyn std::fmt::Display| ModelError::internal(EMBEDDING_MODEL, e);
        let read_json = |name: &str| -> Result<String, ModelError> {
            std::fs::read_to_string(model_dir.join(name)).map_err(|e| internal(&format!("{name}: {e}")))
        };
        let config: BertConfig =
            serde_json::from_str(&read_json("config.json")?).map_err(|e| internal(&format!("config.json: {e}")))?;
        let st: SentenceBertConfig = serde_json::from_str(&read_json("sentence_bert_config.json")?)
            .map_err(|e| internal(&format!("sentence_bert_config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(model_dir.join("tokenizer.json"))
            .map_err(|e| internal(&format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| internal(&e))?;
        let bert = Bert::load(&model_dir.join("model.safetensors"), &config).map_err(|e| internal(&e))?;
        let window = st.max_seq_length.min(bert.max_positions());
        let pool = crate::quant::model_pool("bert").map_err(|e| internal(&e))?;
        Ok(Self { tokenizer, bert, window, max_batch: 32, dimensions: config.hidden_size, pool })
    }

    /// Length of the vectors (384).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The model's window in tokens, special tokens included (256).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Sets how many inputs run through the model together at most (default 32).
    pub fn set_max_batch(&mut self, max_batch: usize) {
        self.max_batch = max_batch.max(1);
    }

    /// Tokenizes every input with `[CLS]`/`[SEP]` and applies the truncation rule. Returns the
    /// token ids the model will process, per input.
    pub fn prepare<S: AsRef<str>>(&self, inputs: &[S], truncate: Truncate) -> Result<Vec<Vec<u32>>, ModelError> {
        inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                let encoding = self
                    .tokenizer
                    .encode(input.as_ref(), true)
                    .map_err(|e| ModelError::internal(EMBEDDING_MODEL, format!("input[{index}]: {e}")))?;
                let ids = encoding.get_ids();
                let window = self.window;
                if ids.len() <= window {
                    return Ok(ids.to_vec());
                }
                // ids = [CLS] pieces… [SEP]; keep both specials and window-2 pieces.
                let (cls, sep) = (ids[0], ids[ids.len() - 1]);
                let pieces = &ids[1..ids.len() - 1];
                let kept = match truncate {
                    Truncate::None => return Err(ModelError::InputTooLong { index, tokens: ids.len(), max: window }),
                    Truncate::End => &pieces[..window - 2],
                    Truncate::Start => &pieces[pieces.len() - (window - 2)..],
                };
                let mut out = Vec::with_capacity(window);
                out.push(cls);
                out.extend_from_slice(kept);
                out.push(sep);
                Ok(out)
            })
            .collect()
    }

    /// Embeds `inputs` (see the module docs for truncation, counting and batching).
    pub fn embed<S: AsRef<str>>(&self, inputs: &[S], truncate: Truncate) -> Result<Embeddings, ModelError> {
        let prepared = self.prepare(inputs, truncate)?;
        let vectors = self.embed_prepared(&prepared)?;
        Ok(Embeddings { vectors, tokens: prepared.iter().map(Vec::len).collect() })
    }

    /// Embeds already prepared token sequences (from [`Embedder::prepare`]), in order.
    pub fn embed_prepared(&self, prepared: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut order: Vec<usize> = (0..prepared.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(prepared[i].len()));
        let mut vectors = vec![Vec::new(); prepared.len()];
        for chunk in order.chunks(self.max_batch) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| prepared[i].as_slice()).collect();
            let out = self.run_batch(&batch).map_err(|e| ModelError::internal(EMBEDDING_MODEL, e))?;
            for (&i, v) in chunk.iter().zip(out) {
                vectors[i] = v;
            }
        }
        Ok(vectors)
    }

    fn run_batch(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        self.pool.install(|| self.bert.embed(batch))
    }
}

/// Cosine similarity of two vectors (the dot product, for unit vectors).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
