//! The wire layer of the Runtime API: the two formats clients speak, translation between them,
//! SSE, and the reservation estimate. Pure data and functions: no I/O, no async, so every rule
//! here is a unit test away.
//!
//! - [`openai`]: OpenAI's chat completions, embeddings, models list and error object: the
//!   canonical shape every provider speaks.
//! - [`converse`] and [`cohere`]: the product family's format (Bedrock Converse and
//!   ConverseStream, Cohere Embed through `invoke`).
//! - [`translate`]: between the two, including a stateful stream translator.
//! - [`estimate`]: what a call reserves against its quota, and why the bound holds.
//! - [`sse`]: an incremental event-stream parser and a writer.
//! - [`error`]: refusals naming the field ([`WireError`]) and unusable upstream answers
//!   ([`BadAnswer`]).

pub mod cohere;
pub mod converse;
pub mod error;
pub mod estimate;
mod extra;
pub mod openai;
pub mod sse;
pub mod translate;

pub use error::{parse_request, BadAnswer, WireError, WireErrorKind};
