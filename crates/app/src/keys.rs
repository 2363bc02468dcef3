//! Runtime keys in the Portal (RUNTIME.md §2): create (the secret and the configuration key are
//! shown once), list, revoke.
//!
//! Rules (also in the README's "Rules we chose"):
//! - A key's secret is `gr_<public id>_<secret>` ([`genai_core::keys`]), made from 320 random
//!   bits read from the operating system; only its SHA-256 is stored.
//! - Keys can be created while the resource is live (active, downgrade or deprovisioning
//!   scheduled); a deprovisioned one answers 409 `already_deprovisioned`. A deprovisioning whose
//!   instant has passed counts as done even if the scheduler has not written it yet.
//! - A knowledge-base key comes with a **companion** key on the knowledge base's embeddings
//!   resource (created in the same transaction, listed there with `companion_of`), so that the
//!   configuration key's `embeddings` part works on its own. Revoking the knowledge-base key
//!   revokes its companion; the companion can also be revoked on its own, on the embeddings
//!   resource (the knowledge base then cannot embed through it).
//! - Revoking is final and idempotent: revoking a revoked key changes nothing and succeeds.
//! - The **configuration key** is base64 (standard alphabet, padded) of the product family's
//!   JSON, `schemaVersion: 3`; `environment` is the resource's label capitalised (`Test`,
//!   `Acceptance`, `Production`), `architecture` is `AWS`, URLs are built from the public URL
//!   (`genai serve --public-url`), and a knowledge base's `model` is its embeddings model (the
//!   importing clients require one).

use crate::auth::{self, Actor};
use crate::ids::random_bytes;
use crate::{App, AppError};
use base64::Engine;
use genai_core::catalog::ResourceType;
use genai_core::keys::{self, KeySecret};
use genai_core::resource::{Environment, Resource, Scheduled};
use genai_core::{DomainError, ResourceId};
use genai_store::{RuntimeKey, StoreError, User};
use serde_json::{json, Value};

/// A key just created: the only moment its secret and configuration key exist outside the
/// caller's hands.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The key as stored.
    pub key: RuntimeKey,
    /// Its secret, shown once.
    pub secret: KeySecret,
    /// Base64 of the configuration JSON (which carries the secret), shown once.
    pub configuration_key: String,
    /// For a knowledge-base key: the companion key made on its embeddings resource.
    pub companion: Option<RuntimeKey>,
}

/// The product family's name of a resource type.
fn type_name(t: ResourceType) -> &'static str {
    match t {
        ResourceType::TextGeneration => "TEXT_GENERATION",
        ResourceType::EmbeddingsGeneration => "EMBEDDINGS_GENERATION",
        ResourceType::KnowledgeBase => "KNOWLEDGE_BASE",
    }
}

/// The environment label as the product family writes it.
fn environment_name(e: Environment) -> &'static str {
    match e {
        Environment::Test => "Test",
        Environment::Acceptance => "Acceptance",
        Environment::Production => "Production",
    }
}

/// A fresh secret from the operating system's randomness.
fn new_secret() -> KeySecret {
    KeySecret::from_random(random_bytes(), random_bytes())
}

impl App {
    /// The configuration JSON of one resource and key (without the knowledge base's
    /// `embeddings` part).
    fn key_configuration(&self, r: &Resource, key: &RuntimeKey, secret: &KeySecret, model: Option<&str>) -> Value {
        let base = self.public_url();
        json!({
            "id": r.id,
            "name": r.display_name.as_str(),
            "type": type_name(r.resource_type),
            "resourceBaseUrl": format!("{base}/runtime/v1/resources/{}", r.id),
            "accessToken": secret.expose(),
            "architecture": "AWS",
            "model": model,
            "keyName": key.description,
            "keyId": key.id,
            "environment": environment_name(r.environment),
            "deepLinkUrl": format!("{base}/portal/resources/{}", r.id),
            "schemaVersion": 3,
        })
    }

    fn new_key(&self, r: &ResourceId, user: &User, description: &str, secret: &KeySecret) -> RuntimeKey {
        RuntimeKey {
            id: self.ids.next("key"),
            resource_id: r.clone(),
            public_id: secret.public_id().to_string(),
            secret_hash: auth::token_hash(secret.expose()),
            description: description.to_string(),
            created_at: self.now(),
            created_by: user.id.clone(),
            last_used_at: None,
            revoked_at: None,
            companion_of: None,
            parent_key_id: None,
        }
    }

    /// A team member's resource as it is now: a deprovisioning whose instant has passed is
    /// written first (the scheduler may be a moment behind).
    async fn settled_team_resource(&self, actor: &Actor, id: &ResourceId) -> Result<(User, Resource), AppError> {
        let (user, resource) = self.team_resource(actor, id).await?;
        let due =
            matches!(resource.scheduled, Some(Scheduled::Deprovision { effective_at }) if effective_at <= self.now());
        if due && resource.is_live() {
            self.apply_due_changes().await?;
            return self.team_resource(actor, id).await;
        }
        Ok((user, resource))
    }

    /// Creates a key of a resource (with its companion for a knowledge base).
    pub async fn create_key(
        &self,
        actor: &Actor,
        id: &ResourceId,
        description: Option<&str>,
    ) -> Result<CreatedKey, AppError> {
        let (user, resource) = self.settled_team_resource(actor, id).await?;
        let description = keys::description(description).map_err(|e| AppError::field("description", e))?;
        if !resource.is_live() {
            return Err(DomainError::AlreadyDeprovisioned.into());
        }
        let secret = new_secret();
        let key = self.new_key(&resource.id, &user, &description, &secret);
        let mut configuration = self.key_configuration(&resource, &key, &secret, resource.model.as_deref());
        let mut stored = vec![key.clone()];
        let mut companion = None;
        if resource.resource_type == ResourceType::KnowledgeBase {
            let embeddings_id = resource.embeddings_resource_id.as_ref().ok_or_else(|| {
                AppError::Internal(format!("knowledge base {} has no embeddings resource", resource.id))
            })?;
            let embeddings = self
                .store
                .resource(&resource.company_id, embeddings_id)
                .await?
                .ok_or_else(|| AppError::Internal(format!("embeddings resource {embeddings_id} is missing")))?;
            let companion_secret = new_secret();
            let mut c = self.new_key(
                &embeddings.id,
                &user,
                &format!("For knowledge base \"{}\": {description}", resource.display_name),
                &companion_secret,
            );
            c.companion_of = Some(resource.id.clone());
            c.parent_key_id = Some(key.id.clone());
            let model = embeddings.model.as_deref();
            configuration["model"] = json!(model);
            configuration["embeddings"] = self.key_configuration(&embeddings, &c, &companion_secret, model);
            stored.push(c.clone());
            companion = Some(c);
        }
        let mut audit = self.audit(actor, Some(&resource.company_id), key.created_at, "key.created");
        audit.resource_id = Some(resource.id.clone());
        audit.details = json!({"key_id": key.id, "description": key.description,
            "companion_key_id": companion.as_ref().map(|c| c.id.clone())});
        match self.store.create_keys(&stored, &audit).await {
            Ok(()) => {}
            // The resource (or its embeddings resource) was deprovisioned meanwhile.
            Err(StoreError::NotFound) => return Err(DomainError::AlreadyDeprovisioned.into()),
            Err(e) => return Err(e.into()),
        }
        let configuration_key = base64::engine::general_purpose::STANDARD.encode(configuration.to_string());
        Ok(CreatedKey { key, secret, configuration_key, companion })
    }

    /// A resource's keys, newest first, revoked ones included (never their secrets).
    pub async fn keys(&self, actor: &Actor, id: &ResourceId) -> Result<Vec<RuntimeKey>, AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        Ok(self.store.keys(&resource.id).await?)
    }

    /// Who created `keys` (keys of resource `id`), to show: name and email per creator's user
    /// id, for the people of the resource's company — whether or not they are still on its
    /// team (a key outlives its creator's membership). Nobody of another company is named.
    pub async fn key_creators(
        &self,
        actor: &Actor,
        id: &ResourceId,
        keys: &[RuntimeKey],
    ) -> Result<std::collections::HashMap<String, (String, String)>, AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        let mut names = std::collections::HashMap::new();
        for key in keys {
            if names.contains_key(key.created_by.as_str()) {
                continue;
            }
            if let Some(user) = self.store.user(&key.created_by).await? {
                if user.company_id == resource.company_id {
                    names.insert(user.id.to_string(), (user.name, user.email));
                }
            }
        }
        Ok(names)
    }

    /// Revokes a key of a resource (and, for a knowledge-base key, its companion); the runtime
    /// refuses it from now on. Revoking a revoked key changes nothing.
    pub async fn revoke_key(&self, actor: &Actor, id: &ResourceId, key_id: &str) -> Result<(), AppError> {
        let (_, resource) = self.team_resource(actor, id).await?;
        let key = self.store.key(&resource.id, key_id).await?.ok_or_else(|| AppError::NotFound("key".into()))?;
        let now = self.now();
        let mut audit = self.audit(actor, Some(&resource.company_id), now, "key.revoked");
        audit.resource_id = Some(resource.id.clone());
        audit.details = json!({"key_id": key.id, "description": key.description});
        let revoked = match self.store.revoke_key(&resource.id, &key.id, now, &audit).await {
            Ok(ids) => ids,
            Err(StoreError::NotFound) => return Err(AppError::NotFound("key".into())),
            Err(e) => return Err(e.into()),
        };
        if !revoked.is_empty() {
            self.events.keys_revoked(&resource.id, &revoked);
        }
        Ok(())
    }
}

/// Decodes a configuration key back to its JSON (for tests and tools that check one).
pub fn decode_configuration_key(configuration_key: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(configuration_key).ok()?;
    serde_json::from_slice(&bytes).ok()
}
