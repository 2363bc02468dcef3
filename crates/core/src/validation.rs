//! Parse, don't validate: the provisioning form turned into values that are known to be valid.
//!
//! [`ProvisionForm`] holds what a client sent (already typed by the HTTP layer: an unknown enum
//! value never gets this far). [`ProvisionForm::validate`] checks every field against SPEC §6 and
//! the catalog and reports *all* bad fields at once. Rules that need the database (a unique
//! display name, an existing embeddings resource) are checked by the application layer and
//! merged into the same field map.

use crate::calendar::Instant;
use crate::catalog::{Catalog, Plan, PlanSize, ResourceType};
use crate::error::FieldErrors;
use crate::ids::{CompanyId, ResourceId};
use crate::resource::{Environment, Person, Resource, Status};
use crate::tokens::CloudTokens;

/// Longest display name, in characters, after trimming.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Longest person name, in characters, after trimming.
pub const PERSON_NAME_MAX: usize = 100;
/// Longest email address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// Why a name a person typed is not acceptable as text, if it is not: control characters
/// (line breaks, escapes) and Unicode *format* characters (general category Cf: the direction
/// overrides U+202A–U+202E and U+2066–U+2069, zero-width U+200B–U+200D, U+FEFF, …). Format
/// characters are invisible yet change how a name is shown, so "Support bot" and a look-alike
/// with a hidden U+200B could sit side by side, and U+202E can make a name read backwards in
/// every list and audit line that shows it.
fn name_text_problem(s: &str) -> Option<String> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if s.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    let chars: Vec<char> = s.chars().collect();
    let visible =
        |c: Option<&char>| c.is_some_and(|c| !c.is_whitespace() && c.general_category() != GeneralCategory::Format);
    // The zero-width non-joiner and joiner (U+200C, U+200D) are part of how Persian and Indic
    // names are spelled and of emoji sequences (👩‍💻): allowed between two visible characters,
    // never at an edge or next to a space.
    let allowed = |i: usize, c: char| {
        matches!(c, '\u{200C}' | '\u{200D}')
            && visible(i.checked_sub(1).and_then(|j| chars.get(j)))
            && visible(chars.get(i + 1))
    };
    let found =
        chars.iter().enumerate().find(|&(i, &c)| c.general_category() == GeneralCategory::Format && !allowed(i, c));
    found.map(|(_, &c)| {
        format!(
            "must not contain invisible formatting characters such as direction marks or \
             zero-width spaces (found U+{:04X})",
            u32::from(c)
        )
    })
}

/// A resource display name: 1–64 characters after trimming, no control or format characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<DisplayName, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > DISPLAY_NAME_MAX {
            return Err(format!("must be at most {DISPLAY_NAME_MAX} characters"));
        }
        if let Some(problem) = name_text_problem(s) {
            return Err(problem);
        }
        Ok(DisplayName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key names are unique by among a company's live resources: case-insensitive.
    pub fn unique_key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A person's (or company's) name: 1–100 characters after trimming, no control or format
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a person name.
    pub fn parse(raw: &str) -> Result<PersonName, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > PERSON_NAME_MAX {
            return Err(format!("must be at most {PERSON_NAME_MAX} characters"));
        }
        if let Some(problem) = name_text_problem(s) {
            return Err(problem);
        }
        Ok(PersonName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address: `local@domain.tld`, no spaces, at most 254 characters. Stored lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an email address.
    pub fn parse(raw: &str) -> Result<Email, String> {
        let s = raw.trim();
        let bad = || Err(format!("\"{s}\" is not a valid email address"));
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > EMAIL_MAX {
            return Err(format!("must be at most {EMAIL_MAX} characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')) {
            return bad();
        }
        let Some((local, domain)) = s.rsplit_once('@') else { return bad() };
        let labels: Vec<&str> = domain.split('.').collect();
        if local.is_empty()
            || local.contains('@')
            || labels.len() < 2
            || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return bad();
        }
        Ok(Email(s.to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the three text newtypes share: reading back what was stored, and being used as text.
macro_rules! stored_text {
    ($($name:ident),+) => {$(
        impl $name {
            /// A value read back from storage, where it was parsed when it was written. Not
            /// checked again, so that tightening a rule never makes existing rows unreadable.
            pub fn stored(value: String) -> $name {
                $name(value)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    )+};
}

stored_text!(DisplayName, PersonName, Email);

/// What a client sent to provision (or to preview) a resource. `None` means "missing".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionForm {
    /// Resource type (always known: it selects the rules).
    pub resource_type: Option<ResourceType>,
    /// Display name.
    pub display_name: Option<String>,
    /// Environment label.
    pub environment: Option<Environment>,
    /// Region id.
    pub region: Option<String>,
    /// Cross-region inference.
    pub cross_region_inference: Option<bool>,
    /// Model id (text and embeddings).
    pub model: Option<String>,
    /// Plan size.
    pub plan: Option<PlanSize>,
    /// Embeddings resource (knowledge bases).
    pub embeddings_resource_id: Option<String>,
    /// Name of the person it is created for.
    pub user_name: Option<String>,
    /// Email of the person it is created for.
    pub user_email: Option<String>,
}

/// A provisioning request whose every field is valid (database-backed rules aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProvision {
    /// Type.
    pub resource_type: ResourceType,
    /// Display name.
    pub display_name: DisplayName,
    /// Environment.
    pub environment: Environment,
    /// Region id (in the catalog).
    pub region: String,
    /// Cross-region inference (allowed for the model in that region).
    pub cross_region_inference: bool,
    /// Model id (in the catalog, of the right type, offered in the region).
    pub model: Option<String>,
    /// The plan, from the catalog.
    pub plan: Plan,
    /// The embeddings resource (knowledge bases), still to be checked against the store.
    pub embeddings_resource_id: Option<ResourceId>,
    /// Name of the person it is created for.
    pub user_name: PersonName,
    /// Email of the person it is created for.
    pub user_email: Email,
}

impl ValidProvision {
    /// The resource this request creates, anchored at `now`.
    pub fn into_resource(self, id: ResourceId, company_id: CompanyId, now: Instant) -> Resource {
        Resource {
            id,
            company_id,
            resource_type: self.resource_type,
            display_name: self.display_name,
            environment: self.environment,
            region: self.region,
            cross_region_inference: self.cross_region_inference,
            model: self.model,
            plan: self.plan.size,
            cloud_tokens: self.plan.cloud_tokens,
            created_for: Person { name: self.user_name, email: self.user_email },
            status: Status::Active,
            created_at: now,
            scheduled: None,
            deprovisioned_at: None,
            embeddings_resource_id: self.embeddings_resource_id,
            version: 0,
        }
    }
}

const REQUIRED: &str = "is required";

impl ProvisionForm {
    /// The plan the form asks for, when type and size are known and the catalog has it: enough
    /// to price a Resource Specification even while other fields are still wrong.
    pub fn plan<'c>(&self, catalog: &'c Catalog) -> Option<&'c Plan> {
        catalog.plan(self.resource_type?, self.plan?)
    }

    /// Checks every field; all problems are reported together.
    pub fn validate(&self, catalog: &Catalog) -> Result<ValidProvision, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut bad = |field: &str, msg: String| {
            errors.entry(field.to_string()).or_insert(msg);
        };

        let Some(resource_type) = self.resource_type else {
            bad("type", REQUIRED.into());
            return Err(errors);
        };
        let display_name = match self.display_name.as_deref().map(DisplayName::parse) {
            None => {
                bad("display_name", REQUIRED.into());
                None
            }
            Some(Err(e)) => {
                bad("display_name", e);
                None
            }
            Some(Ok(n)) => Some(n),
        };
        if self.environment.is_none() {
            bad("environment", REQUIRED.into());
        }
        let region = match self.region.as_deref() {
            None | Some("") => {
                bad("region", REQUIRED.into());
                None
            }
            Some(r) => match catalog.region(r) {
                Some(region) => Some(region),
                None => {
                    let ids: Vec<&str> = catalog.regions.iter().map(|r| r.id.as_str()).collect();
                    bad("region", format!("unknown region \"{r}\"; one of: {}", ids.join(", ")));
                    None
                }
            },
        };
        // Knowledge bases run no model, so the flag means nothing for them: it defaults to false.
        let cross_region_inference = match (self.cross_region_inference, resource_type) {
            (None, ResourceType::KnowledgeBase) => Some(false),
            (None, _) => {
                bad("cross_region_inference", REQUIRED.into());
                None
            }
            (given, _) => given,
        };

        // The model: only for text and embeddings; must exist, be of the type, be offered in the
        // region, with the matching inference mode.
        let mut model = None;
        if resource_type.has_model() {
            match self.model.as_deref() {
                None | Some("") => bad("model", REQUIRED.into()),
                Some(id) => match catalog.model(id) {
                    None => bad("model", format!("unknown model \"{id}\"")),
                    Some(m) if m.resource_type != resource_type => {
                        bad("model", format!("{} ({id}) is a {} model, not {resource_type}", m.name, m.resource_type))
                    }
                    Some(m) => {
                        model = Some(m.id.clone());
                        if let Some(region) = region {
                            let offered: Vec<String> =
                                m.regions.iter().map(|(r, mode)| format!("{r} {}", mode.describe())).collect();
                            match m.regions.get(&region.id) {
                                None => bad(
                                    "model",
                                    format!(
                                        "{} ({id}) is not offered in {} ({}); it is offered in {}",
                                        m.name,
                                        region.name,
                                        region.id,
                                        offered.join("; ")
                                    ),
                                ),
                                Some(mode) => {
                                    if let Some(cri) = self.cross_region_inference {
                                        if !mode.allows(cri) {
                                            let msg = format!(
                                                "{} ({id}) is offered in {} ({}) {}",
                                                m.name,
                                                region.name,
                                                region.id,
                                                mode.describe()
                                            );
                                            bad("cross_region_inference", msg.clone());
                                            bad("model", msg);
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
        } else if self.model.as_deref().is_some_and(|m| !m.is_empty()) {
            bad("model", "knowledge bases have no model; leave it out".into());
        }

        let plan = match self.plan {
            None => {
                bad("plan", REQUIRED.into());
                None
            }
            Some(size) if !PlanSize::allowed_for(resource_type).contains(&size) => {
                let allowed: Vec<&str> = PlanSize::allowed_for(resource_type).iter().map(|p| p.as_str()).collect();
                bad("plan", format!("a {resource_type} resource has plan {}; got {size}", allowed.join(", ")));
                None
            }
            Some(size) => match catalog.plan(resource_type, size) {
                None => {
                    bad("plan", format!("the catalog offers no {size} plan for {resource_type}"));
                    None
                }
                Some(p) => Some(p.clone()),
            },
        };

        let embeddings_resource_id = match (resource_type, self.embeddings_resource_id.as_deref()) {
            (ResourceType::KnowledgeBase, None | Some("")) => {
                bad("embeddings_resource_id", REQUIRED.into());
                None
            }
            (ResourceType::KnowledgeBase, Some(id)) => Some(ResourceId(id.to_string())),
            (_, Some(id)) if !id.is_empty() => {
                bad("embeddings_resource_id", "only knowledge bases link an embeddings resource".into());
                None
            }
            _ => None,
        };

        let user_name = match self.user_name.as_deref().map(PersonName::parse) {
            None => {
                bad("user.name", REQUIRED.into());
                None
            }
            Some(Err(e)) => {
                bad("user.name", e);
                None
            }
            Some(Ok(n)) => Some(n),
        };
        let user_email = match self.user_email.as_deref().map(Email::parse) {
            None => {
                bad("user.email", REQUIRED.into());
                None
            }
            Some(Err(e)) => {
                bad("user.email", e);
                None
            }
            Some(Ok(e)) => Some(e),
        };

        match (display_name, self.environment, region, cross_region_inference, plan, user_name, user_email) {
            (
                Some(display_name),
                Some(environment),
                Some(region),
                Some(cri),
                Some(plan),
                Some(user_name),
                Some(user_email),
            ) if errors.is_empty() => Ok(ValidProvision {
                resource_type,
                display_name,
                environment,
                region: region.id.clone(),
                cross_region_inference: cri,
                model,
                plan,
                embeddings_resource_id,
                user_name,
                user_email,
            }),
            _ => Err(errors),
        }
    }
}

// ---- limits of the operator's and users' other inputs --------------------------------------
//
// Every bound a request is checked against lives here, next to the provisioning form's, so the
// API, the CLI and the UI refuse the same things with the same words, and a later surface (the
// Portal, the Runtime API) reuses them instead of inventing its own.

/// Most accounts or enterprise subscriptions a company can be recorded with.
pub const COMPANY_COUNT_MAX: i64 = 1_000_000;
/// Most cloud tokens one grant may add (a typo guard: 10¹², far beyond any real contract, and
/// far from `i64::MAX`, so totals cannot overflow through grants in any realistic lifetime).
pub const GRANT_TOKENS_MAX: i64 = 1_000_000_000_000;
/// Longest note on a grant, in characters.
pub const GRANT_NOTE_MAX: usize = 500;
/// Shortest password, in characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password, in bytes (bounds the work of hashing it).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Longest API-token description, in characters.
pub const TOKEN_DESCRIPTION_MAX: usize = 200;

/// A company's count of accounts or enterprise subscriptions: 0 to [`COMPANY_COUNT_MAX`].
pub fn company_count(n: i64) -> Result<i64, String> {
    if (0..=COMPANY_COUNT_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be a whole number from 0 to {COMPANY_COUNT_MAX}"))
    }
}

/// The amount of a grant: 1 to [`GRANT_TOKENS_MAX`] cloud tokens.
pub fn grant_tokens(n: i64) -> Result<CloudTokens, String> {
    if (1..=GRANT_TOKENS_MAX).contains(&n) {
        Ok(CloudTokens(n))
    } else {
        Err(format!("must be a whole number from 1 to {GRANT_TOKENS_MAX}"))
    }
}

/// A grant's note: at most [`GRANT_NOTE_MAX`] characters; blank means none.
pub fn grant_note(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw {
        Some(n) if n.chars().count() > GRANT_NOTE_MAX => Err(format!("must be at most {GRANT_NOTE_MAX} characters")),
        Some(n) if !n.trim().is_empty() => Ok(Some(n.to_string())),
        _ => Ok(None),
    }
}

/// A password as chosen: [`PASSWORD_MIN_CHARS`] characters to [`PASSWORD_MAX_BYTES`] bytes.
pub fn password(raw: &str) -> Result<&str, String> {
    if raw.chars().count() < PASSWORD_MIN_CHARS || raw.len() > PASSWORD_MAX_BYTES {
        Err(format!("must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_BYTES} characters"))
    } else {
        Ok(raw)
    }
}

/// An API token's description: trimmed, at most [`TOKEN_DESCRIPTION_MAX`] characters, no
/// control characters; missing means empty.
pub fn token_description(raw: Option<&str>) -> Result<String, String> {
    let d = raw.unwrap_or_default().trim();
    if d.chars().count() > TOKEN_DESCRIPTION_MAX || d.chars().any(char::is_control) {
        Err(format!("must be at most {TOKEN_DESCRIPTION_MAX} characters, no control characters"))
    } else {
        Ok(d.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ProvisionForm {
        ProvisionForm {
            resource_type: Some(ResourceType::TextGeneration),
            display_name: Some("  Support bot ".into()),
            environment: Some(Environment::Production),
            region: Some("eu-central-1".into()),
            cross_region_inference: Some(true),
            model: Some("claude-sonnet-4.6".into()),
            plan: Some(PlanSize::Medium),
            embeddings_resource_id: None,
            user_name: Some("Ada Lovelace".into()),
            user_email: Some("Ada@Example.com".into()),
        }
    }

    #[test]
    fn names_refuse_invisible_format_characters() {
        for bad in [
            "evil\u{202E}txt.exe",
            "Support\u{200B}bot",
            "\u{FEFF}Bot",
            "a\u{2066}b",
            "soft\u{AD}hyphen",
            "edge\u{200D}",
            "a \u{200C}b",
        ] {
            let e = DisplayName::parse(bad).err().unwrap_or_default();
            assert!(e.contains("invisible formatting characters"), "{bad:?}: {e}");
            let e = PersonName::parse(bad).err().unwrap_or_default();
            assert!(e.contains("invisible formatting characters"), "{bad:?}: {e}");
        }
        assert!(DisplayName::parse("x\u{202E}").err().unwrap_or_default().contains("U+202E"));
        // Letters, marks and emoji of every script stay allowed.
        for good in
            ["Zoë's bot", "Łódź ☕", "東京チーム", "مساعد", "e\u{301}clair", "👩\u{200D}💻 team", "می\u{200C}خواهم"]
        {
            assert!(DisplayName::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_good_form_parses() {
        let v = form().validate(&Catalog::builtin()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(v.display_name.as_str(), "Support bot");
        assert_eq!(v.user_email.as_str(), "ada@example.com");
        assert_eq!(v.plan.cloud_tokens.get(), 60);
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = ProvisionForm {
            display_name: Some("bad\u{7}".into()),
            cross_region_inference: Some(false),
            user_email: Some("nope".into()),
            user_name: None,
            ..form()
        };
        let e = f.validate(&Catalog::builtin()).err().unwrap_or_default();
        let fields: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(fields, ["cross_region_inference", "display_name", "model", "user.email", "user.name"]);
        assert!(e["model"].contains("claude-sonnet-4.6") && e["model"].contains("eu-central-1"), "{e:?}");
    }

    #[test]
    fn model_must_be_offered_in_the_region() {
        let f = ProvisionForm { region: Some("ca-central-1".into()), ..form() };
        let e = f.validate(&Catalog::builtin()).err().unwrap_or_default();
        assert!(e["model"].contains("not offered in Canada (Montreal)"), "{e:?}");
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b..co", "a@-b.co"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_of_other_inputs() {
        assert_eq!(company_count(0), Ok(0));
        assert_eq!(company_count(COMPANY_COUNT_MAX), Ok(COMPANY_COUNT_MAX));
        assert!(company_count(-1).is_err() && company_count(COMPANY_COUNT_MAX + 1).is_err());

        assert_eq!(grant_tokens(1), Ok(CloudTokens(1)));
        assert_eq!(grant_tokens(GRANT_TOKENS_MAX), Ok(CloudTokens(GRANT_TOKENS_MAX)));
        for bad in [0, -5, GRANT_TOKENS_MAX + 1, i64::MAX] {
            assert!(grant_tokens(bad).unwrap_err().contains("from 1 to"), "{bad}");
        }

        assert_eq!(grant_note(None), Ok(None));
        assert_eq!(grant_note(Some("  ")), Ok(None));
        assert_eq!(grant_note(Some("Q1 top-up")), Ok(Some("Q1 top-up".into())));
        assert!(grant_note(Some(&"é".repeat(GRANT_NOTE_MAX))).is_ok(), "characters, not bytes");
        assert!(grant_note(Some(&"x".repeat(GRANT_NOTE_MAX + 1))).is_err());

        assert!(password("1234567").is_err());
        assert_eq!(password("12345678"), Ok("12345678"));
        assert!(password(&"x".repeat(PASSWORD_MAX_BYTES)).is_ok());
        assert!(password(&"x".repeat(PASSWORD_MAX_BYTES + 1)).is_err());

        assert_eq!(token_description(None), Ok(String::new()));
        assert_eq!(token_description(Some("  ci deploy ")), Ok("ci deploy".into()));
        assert!(token_description(Some("a\u{7}b")).is_err());
        assert!(token_description(Some(&"x".repeat(TOKEN_DESCRIPTION_MAX + 1))).is_err());
    }
}
