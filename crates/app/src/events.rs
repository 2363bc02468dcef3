//! What the runtime hears from the Control Center and the Portal: a listener the application
//! calls right after a write that changes what the Runtime API must accept.
//!
//! The runtime (`genai-runtime`) serves calls from memory: it caches keys and resources and
//! refreshes them in the background, so a change made on *another* instance reaches it within
//! its refresh interval (about a second). A change made on *this* instance must apply at once
//! (RUNTIME.md §5: "refused at once by the instance that made the change"), so every use case
//! that revokes a key, changes a resource's plan or schedule, or makes a deprovisioning take
//! effect (also the scheduler's) tells the listener after its transaction has committed.
//!
//! The methods are synchronous and must not block: a listener only marks cache entries stale.
//! [`NoRuntimeEvents`] is the default, for an application without a runtime (tests, tools).

use genai_core::ResourceId;

/// Listens to changes the runtime must see at once. Every method defaults to doing nothing.
pub trait RuntimeEvents: Send + Sync {
    /// Keys were revoked: `resource`'s key and, for a knowledge-base key, its companion on the
    /// embeddings resource (`key_ids` holds every id revoked).
    fn keys_revoked(&self, resource: &ResourceId, key_ids: &[String]) {
        let _ = (resource, key_ids);
    }

    /// A resource changed: its plan (an upgrade raises the quota at once), a scheduled change,
    /// its name or status.
    fn resource_changed(&self, resource: &ResourceId) {
        let _ = resource;
    }

    /// A resource's deprovisioning took effect: every call with its keys is refused from now on
    /// (the keys were revoked in the same transaction).
    fn resource_deprovisioned(&self, resource: &ResourceId) {
        let _ = resource;
    }
}

/// The listener that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRuntimeEvents;

impl RuntimeEvents for NoRuntimeEvents {}
