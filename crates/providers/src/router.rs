//! The routing table: catalog model → (provider, upstream model).
//!
//! Built once at start from the providers file ([`Router::from_config`]), then read on every
//! call. Routes come from two places, in this order of precedence:
//!
//! 1. the providers file: `[models."ID"]` tables;
//! 2. the built-in provider (issue 9): [`Router::serve_builtin`] adds a route for each local model
//!    the file does not route elsewhere (`all-minilm-l6-v2`, `smollm2-135m-instruct`).
//!
//! A catalog model with neither answers [`ModelNotServed`] (503 `model_not_served`). A model is
//! only ever answered by the upstream its route names: no fallback to another model.

use std::collections::HashMap;
use std::sync::Arc;

use genai_wire::openai::{ChatRequest, EmbeddingsRequest};

use crate::config::{ProviderKind, ProvidersConfig};
use crate::openai::OpenAiProvider;
use crate::{ChatAnswer, ChatStream, EmbedAnswer, Provider, ProviderError};

/// Where calls for one catalog model go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The upstream's name for the model.
    pub upstream_model: Arc<str>,
}

impl Route {
    /// [`Provider::chat`] with this route's upstream model.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatAnswer, ProviderError> {
        self.provider.chat(&self.upstream_model, request).await
    }

    /// [`Provider::chat_stream`] with this route's upstream model.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ProviderError> {
        self.provider.chat_stream(&self.upstream_model, request).await
    }

    /// [`Provider::embed`] with this route's upstream model.
    pub async fn embed(&self, request: EmbeddingsRequest) -> Result<EmbedAnswer, ProviderError> {
        self.provider.embed(&self.upstream_model, request).await
    }
}

/// No provider serves this model (503 `model_not_served`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "model `{model}` is not served by any provider: add a provider and a [models.\"{model}\"] table naming it \
     to the providers file (genai serve --providers FILE)"
)]
pub struct ModelNotServed {
    /// The catalog model id.
    pub model: String,
}

impl ModelNotServed {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        503
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        "model_not_served"
    }
}

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: HashMap<String, Route>,
}

impl Router {
    /// A table without routes: every model is not served.
    pub fn new() -> Router {
        Router::default()
    }

    /// The routes of a checked providers file, one provider (and connection pool) per
    /// `[providers.NAME]` table.
    pub fn from_config(config: &ProvidersConfig) -> Router {
        let providers: HashMap<&str, Arc<dyn Provider>> = config
            .providers
            .iter()
            .map(|p| {
                let provider: Arc<dyn Provider> = match &p.kind {
                    ProviderKind::OpenAi(settings) => Arc::new(OpenAiProvider::new(&p.name, settings.clone())),
                };
                (p.name.as_str(), provider)
            })
            .collect();
        let mut router = Router::new();
        for m in &config.models {
            // `ProvidersConfig::parse` checked that every route names a defined provider.
            if let Some(provider) = providers.get(m.provider.as_str()) {
                router.insert(&m.model, Arc::clone(provider), &m.upstream_model);
            }
        }
        router
    }

    /// Routes `model` to `provider`'s `upstream_model`, replacing any route it had.
    pub fn insert(&mut self, model: &str, provider: Arc<dyn Provider>, upstream_model: &str) {
        self.routes.insert(model.to_owned(), Route { provider, upstream_model: Arc::from(upstream_model) });
    }

    /// The built-in routes: `provider` serves each `(catalog model, its local model)` pair that
    /// the providers file left unrouted.
    pub fn serve_builtin<'a>(
        &mut self,
        provider: Arc<dyn Provider>,
        models: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        for (model, local) in models {
            if !self.routes.contains_key(model) {
                self.insert(model, Arc::clone(&provider), local);
            }
        }
    }

    /// The route of a catalog model.
    pub fn route(&self, model: &str) -> Result<&Route, ModelNotServed> {
        self.routes.get(model).ok_or_else(|| ModelNotServed { model: model.to_owned() })
    }

    /// Whether some provider serves `model` (what the Portal shows).
    pub fn serves(&self, model: &str) -> bool {
        self.routes.contains_key(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    #[derive(Debug)]
    struct Named(&'static str);

    #[async_trait]
    impl Provider for Named {
        fn name(&self) -> &str {
            self.0
        }
        async fn chat(&self, model: &str, _: ChatRequest) -> Result<ChatAnswer, ProviderError> {
            Err(ProviderError::ModelNotInstalled { model: model.into(), hint: "test".into() })
        }
        async fn chat_stream(&self, model: &str, _: ChatRequest) -> Result<ChatStream, ProviderError> {
            Err(ProviderError::ModelNotInstalled { model: model.into(), hint: "test".into() })
        }
        async fn embed(&self, model: &str, _: EmbeddingsRequest) -> Result<EmbedAnswer, ProviderError> {
            Err(ProviderError::ModelNotInstalled { model: model.into(), hint: "test".into() })
        }
    }

    #[test]
    fn the_file_wins_over_builtin_routes_and_unrouted_models_are_not_served() {
        let text = "[providers.up]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\
                    [models.\"all-minilm-l6-v2\"]\nprovider = \"up\"\nupstream_model = \"minilm\"\n";
        let config = ProvidersConfig::parse(text, |_| true, |_| None).unwrap();
        let mut router = Router::from_config(&config);
        router.serve_builtin(
            Arc::new(Named("builtin")),
            [("all-minilm-l6-v2", "all-MiniLM-L6-v2"), ("smollm2-135m-instruct", "SmolLM2-135M-Instruct")],
        );
        let r = router.route("all-minilm-l6-v2").unwrap();
        assert_eq!((r.provider.name(), &*r.upstream_model), ("up", "minilm"));
        let r = router.route("smollm2-135m-instruct").unwrap();
        assert_eq!((r.provider.name(), &*r.upstream_model), ("builtin", "SmolLM2-135M-Instruct"));
        let e = router.route("claude-sonnet-4.6").unwrap_err();
        assert_eq!((e.status(), e.code()), (503, "model_not_served"));
        assert!(e.to_string().contains("`claude-sonnet-4.6`") && e.to_string().contains("--providers"), "{e}");
        assert!(!router.serves("claude-sonnet-4.6") && router.serves("smollm2-135m-instruct"));
    }

    #[tokio::test]
    async fn a_route_calls_its_provider_with_the_upstream_model() {
        let mut router = Router::new();
        router.insert("m", Arc::new(Named("p")), "up-m");
        let req: ChatRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
                .unwrap();
        let e = router.route("m").unwrap().chat(req).await.unwrap_err();
        assert_eq!(e, ProviderError::ModelNotInstalled { model: "up-m".into(), hint: "test".into() });
        assert_eq!((e.status(), e.code()), (503, "model_not_installed"));
    }
}
