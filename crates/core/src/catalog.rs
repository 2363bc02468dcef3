//! The catalog: regions, models and plans a company can provision (SPEC §1).
//!
//! The built-in default is SPEC §1's table. An installation may replace it as a whole with a TOML
//! file (`genai serve --catalog FILE`); [`Catalog::from_toml`] refuses a file that is not valid
//! with the line and the reason, so a typo never reaches a running server. The catalog is
//! immutable once loaded. Cloud-token costs must grow strictly with the plan size, so "a larger
//! plan" and "a plan that costs more" always mean the same thing.

use crate::tokens::CloudTokens;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The three kinds of GenAI resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    /// Chat / text generation with an LLM.
    TextGeneration,
    /// Embedding vectors.
    EmbeddingsGeneration,
    /// Stored chunks with vectors and similarity search.
    KnowledgeBase,
}

impl ResourceType {
    /// All types, in the order the overview shows them.
    pub const ALL: [ResourceType; 3] =
        [ResourceType::TextGeneration, ResourceType::EmbeddingsGeneration, ResourceType::KnowledgeBase];

    /// The wire name (`text_generation`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::TextGeneration => "text_generation",
            ResourceType::EmbeddingsGeneration => "embeddings_generation",
            ResourceType::KnowledgeBase => "knowledge_base",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether resources of this type run a catalog model.
    pub fn has_model(self) -> bool {
        self != ResourceType::KnowledgeBase
    }

    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            ResourceType::TextGeneration => "Text Generation",
            ResourceType::EmbeddingsGeneration => "Embeddings Generation",
            ResourceType::KnowledgeBase => "Knowledge Base",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan size. Text and embeddings resources have small/medium/large, knowledge bases standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSize {
    /// The smallest plan.
    Small,
    /// The middle plan.
    Medium,
    /// The largest plan.
    Large,
    /// The single plan of knowledge bases.
    Standard,
}

impl PlanSize {
    /// All sizes.
    pub const ALL: [PlanSize; 4] = [PlanSize::Small, PlanSize::Medium, PlanSize::Large, PlanSize::Standard];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSize::Small => "small",
            PlanSize::Medium => "medium",
            PlanSize::Large => "large",
            PlanSize::Standard => "standard",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<PlanSize> {
        PlanSize::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The sizes a resource type may use.
    pub fn allowed_for(t: ResourceType) -> &'static [PlanSize] {
        match t {
            ResourceType::KnowledgeBase => &[PlanSize::Standard],
            _ => &[PlanSize::Small, PlanSize::Medium, PlanSize::Large],
        }
    }
}

impl fmt::Display for PlanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which inference modes a model offers in one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceMode {
    /// Only with cross-region inference (`cross_region_inference: true`).
    CriOnly,
    /// Only in the region itself (`cross_region_inference: false`).
    InRegionOnly,
    /// Either.
    Both,
}

impl InferenceMode {
    /// Whether the mode allows the given `cross_region_inference` value.
    pub fn allows(self, cross_region_inference: bool) -> bool {
        match self {
            InferenceMode::CriOnly => cross_region_inference,
            InferenceMode::InRegionOnly => !cross_region_inference,
            InferenceMode::Both => true,
        }
    }

    /// A phrase for people.
    pub fn describe(self) -> &'static str {
        match self {
            InferenceMode::CriOnly => "with cross-region inference only (cross_region_inference: true)",
            InferenceMode::InRegionOnly => "in-region only (cross_region_inference: false)",
            InferenceMode::Both => "with or without cross-region inference",
        }
    }
}

/// A region resources can be hosted in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Stable id, e.g. `eu-central-1`.
    pub id: String,
    /// Name for people, e.g. "EU (Frankfurt)".
    pub name: String,
}

/// A model a text or embeddings resource can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// Stable id, e.g. `claude-sonnet-4.6`.
    pub id: String,
    /// Display name, e.g. "Anthropic Claude Sonnet 4.6".
    pub name: String,
    /// `text_generation` or `embeddings_generation`.
    #[serde(rename = "type")]
    pub resource_type: ResourceType,
    /// Region id → the inference modes offered there. Regions not listed do not offer it.
    pub regions: BTreeMap<String, InferenceMode>,
}

/// A plan: its standing cloud-token cost and its monthly quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The resource type this plan is for.
    #[serde(rename = "type")]
    pub resource_type: ResourceType,
    /// The size.
    pub size: PlanSize,
    /// Tokens held while a resource on this plan exists.
    pub cloud_tokens: CloudTokens,
    /// Monthly input-token quota (text and embeddings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    /// Monthly output-token quota (text only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    /// Stored-content quota in bytes (knowledge bases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<i64>,
}

/// The environments a resource can be labelled with. A label only.
pub const ENVIRONMENTS: [&str; 3] = ["test", "acceptance", "production"];

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    /// Regions, in display order.
    pub regions: Vec<Region>,
    /// Environment labels.
    pub environments: Vec<String>,
    /// Models, in display order.
    pub models: Vec<Model>,
    /// Plans.
    pub plans: Vec<Plan>,
}

/// Why a catalog file was refused: the line (1-based, when known) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    /// 1-based line of the offending entry, when it can be told.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for CatalogError {}

/// The built-in catalog, as a TOML document: the example to copy for `--catalog`.
pub const DEFAULT_CATALOG_TOML: &str = include_str!("default_catalog.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    regions: Vec<toml::Spanned<Region>>,
    #[serde(default)]
    models: Vec<toml::Spanned<Model>>,
    #[serde(default)]
    plans: Vec<toml::Spanned<Plan>>,
}

impl Catalog {
    /// The built-in catalog of SPEC §1.
    pub fn builtin() -> Catalog {
        match Catalog::from_toml(DEFAULT_CATALOG_TOML) {
            Ok(c) => c,
            // The file is compiled in and covered by a test; reaching this is a build defect.
            Err(e) => panic!("the built-in catalog is invalid: {e}"),
        }
    }

    /// Parses and checks a catalog file.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let file: CatalogFile = toml::from_str(text)
            .map_err(|e| CatalogError { line: e.span().map(|s| line_of(s.start)), reason: e.message().to_string() })?;
        let fail =
            |span: std::ops::Range<usize>, reason: String| CatalogError { line: Some(line_of(span.start)), reason };

        if file.regions.is_empty() {
            return Err(CatalogError { line: None, reason: "the catalog needs at least one [[regions]] entry".into() });
        }
        let mut regions = Vec::new();
        for r in &file.regions {
            let region = r.get_ref();
            if region.id.trim().is_empty() || region.name.trim().is_empty() {
                return Err(fail(r.span(), "a region needs a non-empty id and name".into()));
            }
            if regions.iter().any(|x: &Region| x.id == region.id) {
                return Err(fail(r.span(), format!("region `{}` is listed twice", region.id)));
            }
            regions.push(region.clone());
        }
        let mut models: Vec<Model> = Vec::new();
        for m in &file.models {
            let model = m.get_ref();
            if model.id.trim().is_empty() || model.name.trim().is_empty() {
                return Err(fail(m.span(), "a model needs a non-empty id and name".into()));
            }
            if model.resource_type == ResourceType::KnowledgeBase {
                return Err(fail(
                    m.span(),
                    format!("model `{}`: type must be text_generation or embeddings_generation", model.id),
                ));
            }
            if models.iter().any(|x| x.id == model.id) {
                return Err(fail(m.span(), format!("model `{}` is listed twice", model.id)));
            }
            if model.regions.is_empty() {
                return Err(fail(m.span(), format!("model `{}` is offered in no region", model.id)));
            }
            if let Some(unknown) = model.regions.keys().find(|id| !regions.iter().any(|r| &r.id == *id)) {
                return Err(fail(m.span(), format!("model `{}` names unknown region `{unknown}`", model.id)));
            }
            models.push(model.clone());
        }
        let mut plans: Vec<Plan> = Vec::new();
        for p in &file.plans {
            let plan = p.get_ref();
            let t = plan.resource_type;
            if !PlanSize::allowed_for(t).contains(&plan.size) {
                return Err(fail(p.span(), format!("a {t} plan cannot have size `{}`", plan.size)));
            }
            if plans.iter().any(|x| x.resource_type == t && x.size == plan.size) {
                return Err(fail(p.span(), format!("the {t} plan `{}` is listed twice", plan.size)));
            }
            if plan.cloud_tokens.get() <= 0 {
                return Err(fail(p.span(), "cloud_tokens must be a positive integer".into()));
            }
            let positive = |v: Option<i64>| v.is_some_and(|v| v > 0);
            let ok = match t {
                ResourceType::TextGeneration => {
                    positive(plan.input_tokens) && positive(plan.output_tokens) && plan.storage_bytes.is_none()
                }
                ResourceType::EmbeddingsGeneration => {
                    positive(plan.input_tokens) && plan.output_tokens.is_none() && plan.storage_bytes.is_none()
                }
                ResourceType::KnowledgeBase => {
                    positive(plan.storage_bytes) && plan.input_tokens.is_none() && plan.output_tokens.is_none()
                }
            };
            if !ok {
                let need = match t {
                    ResourceType::TextGeneration => "positive input_tokens and output_tokens",
                    ResourceType::EmbeddingsGeneration => "a positive input_tokens (and no output_tokens)",
                    ResourceType::KnowledgeBase => "a positive storage_bytes (and no token quotas)",
                };
                return Err(fail(p.span(), format!("a {t} plan needs {need}")));
            }
            plans.push(plan.clone());
        }
        for t in ResourceType::ALL {
            let mut of_type: Vec<&Plan> = plans.iter().filter(|p| p.resource_type == t).collect();
            of_type.sort_by_key(|p| p.size);
            if of_type.windows(2).any(|w| w[0].cloud_tokens >= w[1].cloud_tokens) {
                return Err(CatalogError {
                    line: None,
                    reason: format!("{t} plans must cost strictly more cloud tokens as they grow"),
                });
            }
            if t.has_model() && models.iter().any(|m| m.resource_type == t) && of_type.is_empty() {
                return Err(CatalogError { line: None, reason: format!("there are {t} models but no {t} plan") });
            }
        }
        Ok(Catalog { regions, environments: ENVIRONMENTS.iter().map(|e| e.to_string()).collect(), models, plans })
    }

    /// The plan of a type and size, if the catalog has it.
    pub fn plan(&self, t: ResourceType, size: PlanSize) -> Option<&Plan> {
        self.plans.iter().find(|p| p.resource_type == t && p.size == size)
    }

    /// A model by id.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }

    /// A region by id.
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// A model's display name, or its id when the catalog no longer lists it.
    pub fn model_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.model(id).map_or(id, |m| m.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_matches_spec() {
        let c = Catalog::builtin();
        assert_eq!(c.regions.len(), 2);
        assert_eq!(c.models.len(), 10);
        assert_eq!(c.plans.len(), 7);
        // The built-in local models, in every region, with or without cross-region inference.
        for (id, kind) in [
            ("smollm2-135m-instruct", ResourceType::TextGeneration),
            ("all-minilm-l6-v2", ResourceType::EmbeddingsGeneration),
        ] {
            let m = c.model(id).unwrap_or_else(|| panic!("{id} is not in the catalog"));
            assert_eq!(m.resource_type, kind);
            for r in &c.regions {
                assert_eq!(m.regions.get(&r.id).copied(), Some(InferenceMode::Both), "{id} in {}", r.id);
            }
        }
        let p = c.plan(ResourceType::TextGeneration, PlanSize::Medium).map(|p| p.cloud_tokens);
        assert_eq!(p, Some(CloudTokens(60)));
        let kb = c.plan(ResourceType::KnowledgeBase, PlanSize::Standard).and_then(|p| p.storage_bytes);
        assert_eq!(kb, Some(10_000_000_000));
        let m = c.model("claude-sonnet-3").map(|m| m.regions.clone());
        assert_eq!(m.and_then(|r| r.get("ca-central-1").copied()), Some(InferenceMode::InRegionOnly));
    }

    #[test]
    fn bad_files_name_the_line() {
        let text = "[[regions]]\nid = \"r1\"\nname = \"R\"\n\n[[models]]\nid = \"m\"\nname = \"M\"\ntype = \"text_generation\"\nregions = { \"nowhere\" = \"both\" }\n";
        let e = Catalog::from_toml(text).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.reason.contains("nowhere"), "{e}");
        let e = Catalog::from_toml("[[regions]]\nid = 3\n").err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.line, Some(2), "{e}");
    }
}
