//! The knowledge-base kernel: everything about collections and chunks that needs no database,
//! no network and no async runtime (RUNTIME.md §8).
//!
//! - [`wire`]: the product family's JSON shapes (chunks with the vector as a comma-separated
//!   string, the page object, similarity and search requests and answers).
//! - [`validate`]: turns what a client sent into values known to be valid ([`validate::NewChunk`],
//!   [`validate::CollectionName`], [`validate::SimilarityQuery`]), reporting every bad field with
//!   the chunk it belongs to, so the HTTP layer can answer 400 `validation_failed`.
//! - [`accounting`]: the one function that says how many bytes a chunk occupies for the storage
//!   quota.
//! - [`index`]: the in-memory exact top-k search over one collection (cosine similarity, metadata
//!   and label filters applied before ranking, deterministic ties).
//! - [`extract`] and [`chunking`]: text out of uploaded TXT and PDF files, and that text cut into
//!   chunks of at most 2,048 characters along paragraph, sentence and word boundaries.
//!
//! The storage layer (tables, the quota counter, loading indexes) is described in
//! `docs/knowledge.md`; it builds on these types but lives in the store and app crates.

pub mod accounting;
pub mod chunking;
pub mod extract;
pub mod index;
pub mod validate;
pub mod wire;

pub use accounting::stored_bytes;
pub use index::{Filter, Hit, VectorIndex};
pub use validate::{CollectionName, NewChunk, SimilarityQuery, ValidationErrors, ValidationProblem};
