//! The runtime engine as the knowledge bases' [`Embedder`] (RUNTIME.md §8): an upload or a
//! search by text is embedded by the knowledge base's linked embeddings resource, through the
//! same route, reservation and settlement as a Runtime API call of that resource
//! (`POST /v1/embeddings`), so it is metered there and refused when that resource's quota is
//! spent (429 `quota_exceeded`), when it is deprovisioned, or when no provider serves its model
//! (503 `model_not_served`, naming the providers file). No key is involved: the caller is the
//! server itself ([`Caller::internal`]), so no key's "last used" changes.

use async_trait::async_trait;
use genai_app::knowledge::{EmbedError, Embedder};
use genai_core::quota::Tokens;
use genai_core::resource::Resource;
use genai_runtime::{Caller, Demand, Runtime, RuntimeError};
use genai_wire::estimate;
use genai_wire::openai::{EmbeddingInput, EmbeddingsRequest, Vector};

/// Embeds with the runtime engine.
pub struct RuntimeEmbedder {
    runtime: Runtime,
}

impl RuntimeEmbedder {
    /// The embedder of a running engine.
    pub fn new(runtime: Runtime) -> RuntimeEmbedder {
        RuntimeEmbedder { runtime }
    }
}

fn refusal(embeddings: &Resource, e: &RuntimeError) -> EmbedError {
    EmbedError {
        status: e.status(),
        code: e.code().to_string(),
        message: format!("{} ({}): {e}", embeddings.display_name, embeddings.id),
        retry_after_secs: e.retry_after(),
    }
}

#[async_trait]
impl Embedder for RuntimeEmbedder {
    async fn embed(&self, embeddings: &Resource, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rt = &self.runtime;
        let fail = |status: u16, code: &str, message: String| EmbedError {
            status,
            code: code.to_string(),
            message: format!("{} ({}): {message}", embeddings.display_name, embeddings.id),
            retry_after_secs: None,
        };
        if !genai_runtime::serves_at(embeddings, rt.app().now()) {
            return Err(fail(403, "resource_deprovisioned", "is deprovisioned and serves no calls".into()));
        }
        let Some(model) = embeddings.model.clone() else {
            return Err(fail(400, "wrong_resource_type", "has no model".into()));
        };
        let route = rt.route(&model).map_err(|e| refusal(embeddings, &RuntimeError::from(e)))?.clone();
        let request = EmbeddingsRequest {
            model: model.clone(),
            input: EmbeddingInput::Texts(texts.to_vec()),
            encoding_format: None,
            dimensions: None,
            extra: Default::default(),
        };
        let bound = estimate::embeddings(&request);
        let caller = Caller::internal(embeddings.clone());
        let demand = Demand { input: bound, max_output: None, produces_output: false };
        let reservation = rt.reserve(&caller, demand).await.map_err(|e| refusal(embeddings, &e))?;
        // A failed call drops its reservation unsettled, as the gateway's handlers do.
        let answer = route.embed(request).await.map_err(|e| refusal(embeddings, &RuntimeError::Provider(e)))?;
        let used = Tokens::new(answer.input_tokens().unwrap_or(bound), 0);
        rt.settle(reservation, used).await.map_err(|e| refusal(embeddings, &e))?;
        let mut data = answer.response.data;
        data.sort_by_key(|d| d.index);
        if data.len() != texts.len() {
            return Err(fail(
                502,
                "upstream_failed",
                format!("its model answered {} vectors for {} texts", data.len(), texts.len()),
            ));
        }
        data.into_iter()
            .map(|d| match d.embedding {
                #[allow(clippy::cast_possible_truncation)]
                Vector::Floats(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
                Vector::Base64(_) => Err(fail(502, "upstream_failed", "its model answered base64 vectors".into())),
            })
            .collect()
    }
}
