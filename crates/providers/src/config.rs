//! The providers file (RUNTIME.md §6): which upstreams exist and which catalog model each
//! serves.
//!
//! ```toml
//! [providers.local]
//! kind = "openai"
//! base_url = "http://127.0.0.1:9000/v1"
//! api_key_env = "UPSTREAM_KEY"    # optional
//! timeout_seconds = 300           # optional, default 300
//!
//! [models."claude-sonnet-4.6"]
//! provider = "local"
//! upstream_model = "fake-model"   # optional, default: the catalog id
//! ```
//!
//! Everything is checked at start, so `genai serve` refuses a file it could not serve and says
//! which line is wrong: TOML errors and unknown keys, an unknown `kind`, a bad `base_url`, an
//! `api_key_env` variable that is not set, a model the catalog does not have, a model routed to
//! a provider the file does not define. The key itself is read from the environment here and
//! kept only as a sensitive header value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::openai::OpenAiSettings;

/// Seconds a call may take when the file does not say (the product family's client waits 300).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// Why a providers file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when it was read from one.
    pub path: Option<String>,
    /// 1-based line of the offending entry, when it can be told.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.path.as_deref().unwrap_or("providers file");
        match self.line {
            Some(line) => write!(f, "{file}, line {line}: {}", self.message),
            None => write!(f, "{file}: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The kinds of provider, with their settings.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// Any OpenAI-compatible server.
    OpenAi(OpenAiSettings),
}

impl ProviderKind {
    /// The kinds a providers file may name. The built-in local models (issue 9) need no entry:
    /// they serve their models whenever the file does not route them elsewhere.
    pub const NAMES: [&'static str; 1] = ["openai"];
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The table's name.
    pub name: String,
    /// Its kind and settings.
    pub kind: ProviderKind,
}

/// One `[models."ID"]` table: a catalog model and the upstream that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The catalog model id.
    pub model: String,
    /// The provider's name.
    pub provider: String,
    /// The upstream's name for the model.
    pub upstream_model: String,
}

/// A checked providers file.
#[derive(Debug, Clone, Default)]
pub struct ProvidersConfig {
    /// The providers, by name.
    pub providers: Vec<ProviderConfig>,
    /// The routes, by model id.
    pub models: Vec<ModelRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: BTreeMap<Spanned<String>, Spanned<RawProvider>>,
    #[serde(default)]
    models: BTreeMap<Spanned<String>, Spanned<RawModel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Spanned<String>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    provider: Spanned<String>,
    upstream_model: Option<Spanned<String>>,
}

impl ProvidersConfig {
    /// Reads and checks the file at `path`; `is_catalog_model` says whether a model id is in the
    /// catalog; keys are read from the process environment.
    pub fn load(path: &Path, is_catalog_model: impl Fn(&str) -> bool) -> Result<ProvidersConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: Some(shown.clone()),
            line: None,
            message: format!("cannot read it ({e})"),
        })?;
        ProvidersConfig::parse(&text, is_catalog_model, |name| std::env::var(name).ok())
            .map_err(|e| ConfigError { path: Some(shown), ..e })
    }

    /// Checks a providers file's text. `env` reads an environment variable (a parameter so that
    /// tests do not touch the process environment).
    pub fn parse(
        text: &str,
        is_catalog_model: impl Fn(&str) -> bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProvidersConfig, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let at = |span: std::ops::Range<usize>, message: String| ConfigError {
            path: None,
            line: Some(line_of(span.start)),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError {
            path: None,
            line: e.span().map(|s| line_of(s.start)),
            message: e.message().to_string(),
        })?;

        let mut providers = Vec::with_capacity(raw.providers.len());
        for (name, table) in &raw.providers {
            let p = table.get_ref();
            let kind = match p.kind.get_ref().as_str() {
                "openai" => {
                    let base_url = p.base_url.as_ref().ok_or_else(|| {
                        at(table.span(), format!("provider `{}` of kind openai needs a base_url", name.get_ref()))
                    })?;
                    let api_key = match &p.api_key_env {
                        Some(var) => {
                            let value = env(var.get_ref()).filter(|v| !v.is_empty()).ok_or_else(|| {
                                at(
                                    var.span(),
                                    format!("the variable `{}` named by api_key_env is not set", var.get_ref()),
                                )
                            })?;
                            Some(value)
                        }
                        None => None,
                    };
                    let seconds = match &p.timeout_seconds {
                        Some(t) => u64::try_from(*t.get_ref()).ok().filter(|s| *s >= 1).ok_or_else(|| {
                            at(t.span(), format!("timeout_seconds must be at least 1, got {}", t.get_ref()))
                        })?,
                        None => DEFAULT_TIMEOUT_SECONDS,
                    };
                    let settings =
                        OpenAiSettings::new(base_url.get_ref(), api_key.as_deref(), Duration::from_secs(seconds))
                            .map_err(|e| {
                                // An error about the key must not quote it: name the variable.
                                let span = if e.contains("API key") {
                                    p.api_key_env.as_ref().map_or(base_url.span(), Spanned::span)
                                } else {
                                    base_url.span()
                                };
                                at(span, format!("base_url: {e}"))
                            })?;
                    ProviderKind::OpenAi(settings)
                }
                other => {
                    return Err(at(
                        p.kind.span(),
                        format!("unknown provider kind `{other}` (known: {})", ProviderKind::NAMES.join(", ")),
                    ))
                }
            };
            providers.push(ProviderConfig { name: name.get_ref().clone(), kind });
        }

        let mut models = Vec::with_capacity(raw.models.len());
        for (model, table) in &raw.models {
            let id = model.get_ref();
            if !is_catalog_model(id) {
                return Err(at(model.span(), format!("model `{id}` is not in the catalog")));
            }
            let m = table.get_ref();
            let provider = m.provider.get_ref();
            if !raw.providers.keys().any(|k| k.get_ref() == provider) {
                return Err(at(
                    m.provider.span(),
                    format!("model `{id}` names provider `{provider}`, which this file does not define"),
                ));
            }
            let upstream_model = match &m.upstream_model {
                Some(u) if u.get_ref().trim().is_empty() => {
                    return Err(at(u.span(), "upstream_model must not be empty".into()))
                }
                Some(u) => u.get_ref().clone(),
                None => id.clone(),
            };
            models.push(ModelRoute { model: id.clone(), provider: provider.clone(), upstream_model });
        }
        Ok(ProvidersConfig { providers, models })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: [&str; 2] = ["claude-sonnet-4.6", "cohere-embed-english-v3"];

    fn parse(text: &str) -> Result<ProvidersConfig, ConfigError> {
        ProvidersConfig::parse(text, |m| CATALOG.contains(&m), |v| (v == "UPSTREAM_KEY").then(|| "sk-test".into()))
    }

    const GOOD: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9000/v1"
api_key_env = "UPSTREAM_KEY"
timeout_seconds = 30

[providers.other]
kind = "openai"
base_url = "http://10.0.0.2:8000/v1/"

[models."claude-sonnet-4.6"]
provider = "local"
upstream_model = "fake-model"

[models."cohere-embed-english-v3"]
provider = "other"
"#;

    #[test]
    fn a_good_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.providers.len(), 2);
        let ProviderKind::OpenAi(local) = &c.providers[0].kind;
        assert_eq!((local.base_url(), local.timeout()), ("http://127.0.0.1:9000/v1", Duration::from_secs(30)));
        let ProviderKind::OpenAi(other) = &c.providers[1].kind;
        assert_eq!(other.timeout(), Duration::from_secs(DEFAULT_TIMEOUT_SECONDS));
        assert_eq!(
            c.models,
            vec![
                ModelRoute {
                    model: "claude-sonnet-4.6".into(),
                    provider: "local".into(),
                    upstream_model: "fake-model".into()
                },
                ModelRoute {
                    model: "cohere-embed-english-v3".into(),
                    provider: "other".into(),
                    upstream_model: "cohere-embed-english-v3".into()
                },
            ]
        );
        assert!(!format!("{c:?}").contains("sk-test"), "the key must not show in Debug output");
        assert!(parse("").unwrap().models.is_empty());
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases: [(&str, &str, usize, &str); 11] = [
            ("unknown kind", r#"kind = "openai""#, 3, "kind = \"anthropic\""),
            ("unset variable", r#"api_key_env = "UPSTREAM_KEY""#, 5, "api_key_env = \"NOPE\""),
            ("bad url", r#"base_url = "http://127.0.0.1:9000/v1""#, 4, "base_url = \"localhost:9000\""),
            ("https", r#"base_url = "http://127.0.0.1:9000/v1""#, 4, "base_url = \"https://api.openai.com/v1\""),
            ("zero timeout", "timeout_seconds = 30", 6, "timeout_seconds = 0"),
            ("unknown key", "timeout_seconds = 30", 6, "timeout = 30"),
            ("wrong type", "timeout_seconds = 30", 6, "timeout_seconds = \"30\""),
            ("model not in catalog", r#"[models."claude-sonnet-4.6"]"#, 12, r#"[models."gpt-9"]"#),
            ("unknown provider", r#"provider = "local""#, 13, r#"provider = "remote""#),
            ("empty upstream model", r#"upstream_model = "fake-model""#, 14, r#"upstream_model = """#),
            ("toml syntax", r#"provider = "other""#, 17, r#"provider = "other"#),
        ];
        for (name, from, line, to) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "{name}: the edit did not apply");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, Some(line), "{name}: {e}");
        }
        let e = parse(&GOOD.replacen(r#"kind = "openai""#, r#"kind = "anthropic""#, 1)).unwrap_err();
        assert_eq!(e.to_string(), "providers file, line 3: unknown provider kind `anthropic` (known: openai)");
        let e = parse(&GOOD.replacen(r#"api_key_env = "UPSTREAM_KEY""#, r#"api_key_env = "NOPE""#, 1)).unwrap_err();
        assert!(e.message.contains("`NOPE`") && e.message.contains("not set"), "{e}");
        let e = parse(&GOOD.replacen(r#"[models."claude-sonnet-4.6"]"#, r#"[models."gpt-9"]"#, 1)).unwrap_err();
        assert_eq!(e.message, "model `gpt-9` is not in the catalog");
        let e = parse("[providers.x]\nkind = \"openai\"\n").unwrap_err();
        assert!(e.message.contains("needs a base_url"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("genai-providers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("providers.toml");
        std::fs::write(&path, "[providers.x]\nkind = \"grpc\"\n").unwrap();
        let e = ProvidersConfig::load(&path, |_| true).unwrap_err();
        assert_eq!(e.to_string(), format!("{}, line 2: unknown provider kind `grpc` (known: openai)", path.display()));
        let e = ProvidersConfig::load(&dir.join("missing.toml"), |_| true).unwrap_err();
        assert!(e.message.starts_with("cannot read it"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
