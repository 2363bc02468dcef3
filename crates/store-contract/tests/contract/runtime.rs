//! The runtime's ports — teams, runtime keys, usage and quota leases — on every adapter
//! (included by `contract.rs`; each case runs on SQLite and on PostgreSQL like the others).
//!
//! Beyond answers, these cases hold the adapters to the runtime's invariants under concurrency:
//! concurrent lease acquisitions from many tasks (on PostgreSQL: many connections, as several
//! instances would be) never grant past the quota; leases that expire stop counting; a group
//! commit moves what it used from `held` to `used`; a team is never emptied, even by two
//! removals at once; and when a deprovisioning takes effect every key of the resource (and of
//! its companions) is revoked in the same transaction.

use super::fixtures::*;
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::Resource;
use genai_core::{Instant, ResourceId, Tokens, UserId};
use genai_store::{
    HistoryPage, LeaseDelta, LeaseOutcome, LeaseRequest, Member, MonthUsage, NewMember, Removal, Role, RuntimeKey,
    Store, StoreError, UsageBatch, UsageDelta, User,
};
use std::sync::Arc;

/// A user of a company (not yet stored).
pub fn person(company: &genai_core::CompanyId, email: &str, role: Role) -> User {
    User {
        id: UserId(next_id("usr")),
        company_id: company.clone(),
        name: format!("Person {email}"),
        email: email.into(),
        role,
        password_hash: None,
        created_at: at("2025-01-05T10:00:00Z"),
        disabled_at: None,
    }
}

/// Stores a user.
async fn stored_person(s: &dyn Store, company: &genai_core::CompanyId, email: &str) -> User {
    let u = person(company, email, Role::Member);
    s.create_user(&u, &audit(Some(company), "user.created", u.created_at)).await.expect("create user");
    u
}

/// A provisioned text resource (no team).
async fn provisioned(s: &dyn Store, company: &genai_core::CompanyId, name: &str) -> Resource {
    let r = text(company, name, at("2025-01-10T09:00:00Z"));
    insert(s, &r).await.expect("insert");
    r
}

/// An audit event about a resource.
fn about(r: &Resource, action: &str, when: Instant) -> genai_store::AuditEvent {
    let mut e = audit(Some(&r.company_id), action, when);
    e.resource_id = Some(r.id.clone());
    e
}

/// How many audit events of `action` the company has.
async fn audited(s: &dyn Store, company: &genai_core::CompanyId, action: &str) -> usize {
    let events = s.audit_events(company, &HistoryPage::all()).await.expect("audit events");
    events.iter().filter(|e| e.action == action).count()
}

// ---- teams ------------------------------------------------------------------------------------

pub async fn provisioning_makes_the_named_person_a_member(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let created = at("2025-01-10T09:00:00Z");

    // An email nobody uses yet: the user is created with the resource, role member.
    let r = text(&c, "Bot", created);
    let ada = person(&c, "ada@example.com", Role::Member);
    let mut new = provision(&r);
    new.member = Some(NewMember::Create(ada.clone()));
    s.insert_resource(&new, None, None).await.expect("insert");
    assert_eq!(s.user_by_email("ada@example.com").await.expect("user"), Some(ada.clone()));
    let members = s.members(&r.id).await.expect("members");
    assert_eq!(
        members,
        [Member {
            resource_id: r.id.clone(),
            user_id: ada.id.clone(),
            name: ada.name.clone(),
            email: ada.email.clone(),
            added_at: created,
        }]
    );

    // An existing user of the company.
    let r2 = text(&c, "Second", created);
    let mut new = provision(&r2);
    new.member = Some(NewMember::Existing(ada.id.clone()));
    s.insert_resource(&new, None, None).await.expect("insert");
    assert!(s.is_member(&r2.id, &ada.id).await.expect("is_member"));
    let theirs: Vec<ResourceId> =
        s.member_resources(&ada.id).await.expect("member_resources").into_iter().map(|r| r.id).collect();
    assert_eq!(theirs, [r.id.clone(), r2.id.clone()], "in id order");

    // The user to create was registered meanwhile: nothing at all is written.
    let r3 = text(&c, "Third", created);
    let mut new = provision(&r3);
    new.member = Some(NewMember::Create(person(&c, "ada@example.com", Role::Member)));
    let refused = s.insert_resource(&new, None, None).await;
    assert!(matches!(refused, Err(StoreError::Duplicate("email"))), "{refused:?}");
    assert_eq!(s.resource(&c, &r3.id).await.expect("resource"), None);
    assert_eq!(s.balance(&c).await.expect("balance").allocated.get(), 60, "no allocation either");

    // No member (the email is another company's login): the team starts empty.
    let r4 = provisioned(s, &c, "Fourth").await;
    assert!(s.members(&r4.id).await.expect("members").is_empty());
    assert_books_balance(s, &c).await;
}

pub async fn members_join_and_leave_but_never_the_last(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let when = at("2025-01-11T09:00:00Z");
    let grace = stored_person(s, &c, "grace@example.com").await;
    let (m, added) = s
        .add_member(&r.id, &NewMember::Existing(grace.id.clone()), when, &about(&r, "team.member_added", when))
        .await
        .expect("add");
    assert!(added);
    assert_eq!((m.user_id.clone(), m.email.as_str(), m.added_at), (grace.id.clone(), "grace@example.com", when));
    // Again: already a member, nothing written, the first joining kept.
    let later = at("2025-01-12T09:00:00Z");
    let (again, added) = s
        .add_member(&r.id, &NewMember::Existing(grace.id.clone()), later, &about(&r, "team.member_added", later))
        .await
        .expect("add again");
    assert_eq!((again, added), (m.clone(), false));
    assert_eq!(audited(s, &c, "team.member_added").await, 1);

    // A new person, created with their membership.
    let linus = person(&c, "linus@example.com", Role::Member);
    let (m2, added) = s
        .add_member(&r.id, &NewMember::Create(linus.clone()), later, &about(&r, "team.member_added", later))
        .await
        .expect("add new");
    assert!(added && m2.user_id == linus.id);
    assert_eq!(s.user(&linus.id).await.expect("user").map(|u| u.role), Some(Role::Member));
    let emails: Vec<String> = s.members(&r.id).await.expect("members").into_iter().map(|m| m.email).collect();
    assert_eq!(emails, ["grace@example.com", "linus@example.com"], "in the order they joined");

    let stranger = stored_person(s, &c, "stranger@example.com").await;
    let gone = about(&r, "team.member_removed", later);
    assert_eq!(s.remove_member(&r.id, &stranger.id, &gone).await.expect("remove"), Removal::NotAMember);
    assert_eq!(s.remove_member(&r.id, &grace.id, &gone).await.expect("remove"), Removal::Removed);
    assert!(!s.is_member(&r.id, &grace.id).await.expect("is_member"));
    let last = about(&r, "team.member_removed", later);
    assert_eq!(s.remove_member(&r.id, &linus.id, &last).await.expect("remove"), Removal::LastMember);
    assert_eq!(s.members(&r.id).await.expect("members").len(), 1);
    assert_eq!(audited(s, &c, "team.member_removed").await, 1, "refusals are not audited");
}

pub async fn concurrent_removals_never_empty_a_team(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 10_000).await;
    for round in 0..5 {
        let r = provisioned(s, &c, &format!("Team {round}")).await;
        let size = 2 + round;
        let mut users = Vec::new();
        for i in 0..size {
            let u = stored_person(s, &c, &format!("m{round}-{i}@example.com")).await;
            let when = at("2025-01-11T09:00:00Z");
            s.add_member(&r.id, &NewMember::Existing(u.id.clone()), when, &about(&r, "team.member_added", when))
                .await
                .expect("add");
            users.push(u);
        }
        // Everyone removes themselves at once: exactly one must stay.
        let mut tasks = Vec::new();
        for u in users {
            let (store, r) = (store.clone(), r.clone());
            tasks.push(tokio::spawn(async move {
                let when = at("2025-01-12T09:00:00Z");
                store.remove_member(&r.id, &u.id, &about(&r, "team.member_removed", when)).await
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task").expect("remove"));
        }
        let removed = outcomes.iter().filter(|o| **o == Removal::Removed).count();
        let refused = outcomes.iter().filter(|o| **o == Removal::LastMember).count();
        assert_eq!((removed, refused), (size - 1, 1), "{outcomes:?}");
        assert_eq!(s.members(&r.id).await.expect("members").len(), 1);
    }
}

pub async fn a_deprovisioned_team_cannot_change(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let u = stored_person(s, &c, "grace@example.com").await;
    let v = stored_person(s, &c, "linus@example.com").await;
    let when = at("2025-01-11T09:00:00Z");
    for user in [&u, &v] {
        let e = about(&r, "team.member_added", when);
        s.add_member(&r.id, &NewMember::Existing(user.id.clone()), when, &e).await.expect("add");
    }
    apply(s, r.deprovision(&[], when).expect("deprovision")).await.expect("schedule");
    let scheduled = reload(s, &r).await;
    let end = at("2025-02-10T09:00:00Z");
    apply(s, scheduled.take_effect(end).expect("due")).await.expect("deprovisioned");
    let w = stored_person(s, &c, "late@example.com").await;
    let add = s.add_member(&r.id, &NewMember::Existing(w.id), end, &about(&r, "team.member_added", end)).await;
    assert!(matches!(add, Err(StoreError::NotFound)), "{add:?}");
    let remove = s.remove_member(&r.id, &u.id, &about(&r, "team.member_removed", end)).await;
    assert!(matches!(remove, Err(StoreError::NotFound)), "{remove:?}");
    assert_eq!(s.members(&r.id).await.expect("members").len(), 2, "kept for history");
}

// ---- keys -------------------------------------------------------------------------------------

/// A key of `r` made by `by` (not yet stored).
fn runtime_key(r: &ResourceId, by: &UserId, public_id: &str, created_at: Instant) -> RuntimeKey {
    RuntimeKey {
        id: next_id("key"),
        resource_id: r.clone(),
        public_id: public_id.into(),
        secret_hash: format!("hash-of-{public_id}"),
        description: format!("key {public_id}"),
        created_at,
        created_by: by.clone(),
        last_used_at: None,
        revoked_at: None,
        companion_of: None,
        parent_key_id: None,
    }
}

/// An embeddings resource and a knowledge base linked to it, both stored.
async fn knowledge_base_pair(s: &dyn Store, c: &genai_core::CompanyId) -> (Resource, Resource) {
    let created = at("2025-01-10T09:00:00Z");
    let e = resource(c, ResourceType::EmbeddingsGeneration, PlanSize::Small, "Embed", created);
    insert(s, &e).await.expect("insert embeddings");
    let mut kb = resource(c, ResourceType::KnowledgeBase, PlanSize::Standard, "Docs", created);
    kb.embeddings_resource_id = Some(e.id.clone());
    insert(s, &kb).await.expect("insert knowledge base");
    (e, kb)
}

pub async fn keys_are_created_listed_found_and_revoked(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let admin = stored_person(s, &c, "admin@example.com").await;
    let r = provisioned(s, &c, "Bot").await;
    let (e, kb) = knowledge_base_pair(s, &c).await;

    let first = runtime_key(&r.id, &admin.id, "aaaaaaaaaaaa", at("2025-01-11T09:00:00Z"));
    let second = runtime_key(&r.id, &admin.id, "bbbbbbbbbbbb", at("2025-01-12T09:00:00Z"));
    for k in [&first, &second] {
        s.create_keys(std::slice::from_ref(k), &about(&r, "key.created", k.created_at)).await.expect("create");
    }
    assert_eq!(s.keys(&r.id).await.expect("keys"), [second.clone(), first.clone()], "newest first");
    assert_eq!(s.key(&r.id, &first.id).await.expect("key"), Some(first.clone()));
    assert_eq!(s.key(&kb.id, &first.id).await.expect("key"), None, "a key of another resource");
    let (found, of) = s.runtime_key("aaaaaaaaaaaa").await.expect("lookup").expect("found");
    assert_eq!((found, of), (first.clone(), r.clone()));
    assert_eq!(s.runtime_key("cccccccccccc").await.expect("lookup"), None);
    let ids: Vec<String> = ["bbbbbbbbbbbb", "cccccccccccc", "aaaaaaaaaaaa"].map(String::from).into();
    let mut batch = s.runtime_keys(&ids).await.expect("batched lookup");
    batch.sort_by(|a, b| a.0.public_id.cmp(&b.0.public_id));
    assert_eq!(batch, [(first.clone(), r.clone()), (second.clone(), r.clone())], "the ones that exist");
    assert_eq!(s.runtime_keys(&[]).await.expect("nothing asked"), []);
    assert_eq!(s.runtime_resource(&r.id).await.expect("resource"), Some(r.clone()));

    // A public id is unique: a second key with the same one is refused, nothing written.
    let twin = runtime_key(&r.id, &admin.id, "aaaaaaaaaaaa", at("2025-01-13T09:00:00Z"));
    assert!(s.create_keys(&[twin], &about(&r, "key.created", at("2025-01-13T09:00:00Z"))).await.is_err());
    assert_eq!(s.keys(&r.id).await.expect("keys").len(), 2);

    // A knowledge-base key and its companion on the embeddings resource, together.
    let kb_key = runtime_key(&kb.id, &admin.id, "kkkkkkkkkkkk", at("2025-01-14T09:00:00Z"));
    let mut companion = runtime_key(&e.id, &admin.id, "eeeeeeeeeeee", kb_key.created_at);
    companion.companion_of = Some(kb.id.clone());
    companion.parent_key_id = Some(kb_key.id.clone());
    s.create_keys(&[kb_key.clone(), companion.clone()], &about(&kb, "key.created", kb_key.created_at))
        .await
        .expect("create pair");
    assert_eq!(s.keys(&e.id).await.expect("keys"), [companion.clone()]);

    // Revoking the knowledge-base key revokes its companion; revoking again changes nothing.
    let when = at("2025-01-15T09:00:00Z");
    let mut revoked = s.revoke_key(&kb.id, &kb_key.id, when, &about(&kb, "key.revoked", when)).await.expect("revoke");
    revoked.sort();
    let mut both = vec![kb_key.id.clone(), companion.id.clone()];
    both.sort();
    assert_eq!(revoked, both);
    assert_eq!(s.key(&e.id, &companion.id).await.expect("key").and_then(|k| k.revoked_at), Some(when));
    let later = at("2025-01-16T09:00:00Z");
    let again = s.revoke_key(&kb.id, &kb_key.id, later, &about(&kb, "key.revoked", later)).await.expect("again");
    assert!(again.is_empty());
    assert_eq!(s.key(&kb.id, &kb_key.id).await.expect("key").and_then(|k| k.revoked_at), Some(when), "first kept");
    assert_eq!(audited(s, &c, "key.revoked").await, 1);
    let unknown = s.revoke_key(&r.id, &kb_key.id, later, &about(&r, "key.revoked", later)).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "another resource's key: {unknown:?}");
    // The revoked key is still found by the runtime (which refuses it).
    let (k, _) = s.runtime_key("kkkkkkkkkkkk").await.expect("lookup").expect("found");
    assert_eq!(k.revoked_at, Some(when));
}

pub async fn deprovisioning_revokes_every_key_at_once(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let admin = stored_person(s, &c, "admin@example.com").await;
    let r = provisioned(s, &c, "Bot").await;
    let other = provisioned(s, &c, "Other").await;
    let (e, kb) = knowledge_base_pair(s, &c).await;
    let made = at("2025-01-11T09:00:00Z");
    let keys = [
        runtime_key(&r.id, &admin.id, "r00000000001", made),
        runtime_key(&r.id, &admin.id, "r00000000002", made),
        runtime_key(&other.id, &admin.id, "o00000000001", made),
    ];
    for k in &keys {
        s.create_keys(std::slice::from_ref(k), &about(&r, "key.created", made)).await.expect("create");
    }
    let kb_key = runtime_key(&kb.id, &admin.id, "k00000000001", made);
    let mut companion = runtime_key(&e.id, &admin.id, "e00000000001", made);
    companion.companion_of = Some(kb.id.clone());
    companion.parent_key_id = Some(kb_key.id.clone());
    let own = runtime_key(&e.id, &admin.id, "e00000000002", made);
    s.create_keys(&[kb_key, companion.clone()], &about(&kb, "key.created", made)).await.expect("create pair");
    s.create_keys(std::slice::from_ref(&own), &about(&e, "key.created", made)).await.expect("create");

    let asked = at("2025-01-20T00:00:00Z");
    for x in [&r, &kb] {
        apply(s, x.deprovision(&[], asked).expect("deprovision")).await.expect("schedule");
    }
    // The scheduler applies both; the keys are revoked at the effective instants.
    let now = at("2025-03-01T00:00:00Z");
    let decide = |x: &Resource| x.take_effect(now).map(|ch| write(ch, None));
    let batch = s.apply_due(now, 10, &decide).await.expect("apply_due");
    let mut changed = batch.changed.clone();
    changed.sort();
    let mut expected = vec![r.id.clone(), kb.id.clone()];
    expected.sort();
    assert_eq!((batch.applied, changed), (2, expected));
    let effective = at("2025-02-10T09:00:00Z");
    for k in s.keys(&r.id).await.expect("keys") {
        assert_eq!(k.revoked_at, Some(effective), "{}", k.public_id);
    }
    for k in s.keys(&kb.id).await.expect("keys") {
        assert_eq!(k.revoked_at, Some(effective));
    }
    let e_keys = s.keys(&e.id).await.expect("keys");
    let revoked_at = |id: &str| e_keys.iter().find(|k| k.id == id).and_then(|k| k.revoked_at);
    assert_eq!(revoked_at(&companion.id), Some(effective), "the knowledge base's companion goes with it");
    assert_eq!(revoked_at(&own.id), None, "the embeddings resource's own key stays");
    assert!(s.keys(&other.id).await.expect("keys").iter().all(|k| k.revoked_at.is_none()), "other resources");

    // No key can be made for a deprovisioned resource.
    let late = runtime_key(&r.id, &admin.id, "r00000000003", now);
    let refused = s.create_keys(std::slice::from_ref(&late), &about(&r, "key.created", now)).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert_eq!(s.keys(&r.id).await.expect("keys").len(), 2);
}

// ---- usage and leases -------------------------------------------------------------------------

const HOLDER_A: &str = "instance-a";
const HOLDER_B: &str = "instance-b";
/// Wall-clock milliseconds the lease cases start at.
const T0: i64 = 1_700_000_000_000;

fn lease(r: &Resource, holder: &str, quota: Tokens, need: Tokens, want: Tokens, now_ms: i64) -> LeaseRequest {
    LeaseRequest {
        resource_id: r.id.clone(),
        month_start: r.created_at,
        holder: holder.into(),
        quota,
        need,
        want,
        expires_at_ms: now_ms + 10_000,
        now_ms,
    }
}

/// What is free and what `holder` holds, read through a refused request (which writes nothing).
async fn pool(s: &dyn Store, r: &Resource, holder: &str, quota: Tokens, now_ms: i64) -> (Tokens, Tokens) {
    let impossible = Tokens::new(i64::MAX / 4, i64::MAX / 4);
    match s.acquire_lease(&lease(r, holder, quota, impossible, impossible, now_ms)).await.expect("acquire") {
        LeaseOutcome::Refused { free, held } => (free, held),
        granted => panic!("an impossible need was granted: {granted:?}"),
    }
}

fn used_delta(r: &Resource, day: &str, used: Tokens, calls: i64) -> UsageDelta {
    UsageDelta { resource_id: r.id.clone(), month_start: r.created_at, day: day.into(), used, api_calls: calls }
}

fn held_delta(r: &Resource, held: Tokens) -> LeaseDelta {
    LeaseDelta { resource_id: r.id.clone(), month_start: r.created_at, held }
}

pub async fn leases_grant_between_need_and_what_is_free(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let quota = Tokens::new(1000, 500);

    let got = s
        .acquire_lease(&lease(&r, HOLDER_A, quota, Tokens::new(10, 10), Tokens::new(400, 100), T0))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Granted { granted: Tokens::new(400, 100), free: Tokens::new(600, 400) });
    // B wants more than is free: it gets what is free, per kind.
    let got = s
        .acquire_lease(&lease(&r, HOLDER_B, quota, Tokens::new(100, 0), Tokens::new(900, 300), T0))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Granted { granted: Tokens::new(600, 300), free: Tokens::new(0, 100) });
    // A needs input that is not free: refused, nothing written.
    let got = s
        .acquire_lease(&lease(&r, HOLDER_A, quota, Tokens::new(1, 1), Tokens::new(1, 1), T0 + 1))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Refused { free: Tokens::new(0, 100), held: Tokens::new(400, 100) });
    // Output only (need 0 input): granted, and added to A's live lease.
    let got = s
        .acquire_lease(&lease(&r, HOLDER_A, quota, Tokens::new(0, 50), Tokens::new(0, 50), T0 + 2))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Granted { granted: Tokens::new(0, 50), free: Tokens::new(0, 50) });
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 3).await, (Tokens::new(0, 50), Tokens::new(400, 150)));
    // An upgrade raises the quota: the pool grows at once.
    let bigger = Tokens::new(2000, 1000);
    assert_eq!(pool(s, &r, HOLDER_B, bigger, T0 + 3).await, (Tokens::new(1000, 550), Tokens::new(600, 300)));
    // The next bundle month is a pool of its own.
    let mut next = lease(&r, HOLDER_A, quota, quota, quota, T0 + 4);
    next.month_start = at("2025-02-10T09:00:00Z");
    assert_eq!(
        s.acquire_lease(&next).await.expect("acquire"),
        LeaseOutcome::Granted { granted: quota, free: Tokens::ZERO }
    );
}

pub async fn expired_leases_stop_counting(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let quota = Tokens::new(1000, 0);
    let all = Tokens::new(1000, 0);
    let got = s.acquire_lease(&lease(&r, HOLDER_A, quota, all, all, T0)).await.expect("acquire");
    assert!(matches!(got, LeaseOutcome::Granted { granted, .. } if granted == all));
    // A used 300 of it (committed), then died: its lease runs out at T0 + 10 s.
    let batch = UsageBatch {
        holder: HOLDER_A.into(),
        usage: vec![used_delta(&r, "2025-01-11", Tokens::new(300, 0), 3)],
        leases: vec![held_delta(&r, Tokens::new(-300, 0))],
        now_ms: T0 + 1,
        ..UsageBatch::default()
    };
    s.commit_usage(&batch).await.expect("commit");
    assert_eq!(pool(s, &r, HOLDER_B, quota, T0 + 9_999).await, (Tokens::ZERO, Tokens::ZERO), "still live");
    assert_eq!(pool(s, &r, HOLDER_B, quota, T0 + 10_000).await.0, Tokens::new(700, 0), "expired: returned");
    let got = s
        .acquire_lease(&lease(&r, HOLDER_B, quota, Tokens::new(700, 0), Tokens::new(700, 0), T0 + 10_001))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Granted { granted: Tokens::new(700, 0), free: Tokens::ZERO });

    // A renewal does not bring an expired lease back (B holds its unused part now).
    let renew = UsageBatch {
        holder: HOLDER_A.into(),
        renew_until_ms: Some(T0 + 60_000),
        now_ms: T0 + 10_002,
        ..UsageBatch::default()
    };
    s.commit_usage(&renew).await.expect("renew");
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 10_003).await, (Tokens::ZERO, Tokens::ZERO), "A holds nothing");
    // A comes back: its expired lease counts as empty, so it starts from what it is granted.
    let batch = UsageBatch {
        holder: HOLDER_B.into(),
        leases: vec![held_delta(&r, Tokens::new(-200, 0))],
        renew_until_ms: Some(T0 + 20_000),
        now_ms: T0 + 10_004,
        ..UsageBatch::default()
    };
    s.commit_usage(&batch).await.expect("B gives 200 back and renews");
    let got = s
        .acquire_lease(&lease(&r, HOLDER_A, quota, Tokens::new(50, 0), Tokens::new(50, 0), T0 + 10_005))
        .await
        .expect("acquire");
    assert_eq!(got, LeaseOutcome::Granted { granted: Tokens::new(50, 0), free: Tokens::new(150, 0) });
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 10_006).await.1, Tokens::new(50, 0), "not 700 + 50");
    // B's renewal kept its lease alive past T0 + 10 s + 10 s of the original expiry.
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 19_999).await.0, Tokens::new(150, 0));
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 20_000).await.0, Tokens::new(650, 0), "then it expires");

    // Housekeeping deletes leases that expired; the live one stays.
    assert_eq!(s.purge_leases(T0 + 20_001).await.expect("purge"), 1, "B's; A's lease is live until T0 + 20 005");
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 20_002).await.1, Tokens::new(50, 0));
}

pub async fn commits_move_held_to_used_exactly(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let idle = provisioned(s, &c, "Idle").await;
    let quota = Tokens::new(10_000, 5_000);
    s.acquire_lease(&lease(&r, HOLDER_A, quota, Tokens::new(2000, 1000), Tokens::new(2000, 1000), T0))
        .await
        .expect("acquire");

    // Two calls settled in one commit on two days; the second used more output than reserved
    // (recorded anyway), and only the reserved part comes out of the lease.
    let admin = stored_person(s, &c, "admin@example.com").await;
    let k = runtime_key(&r.id, &admin.id, "aaaaaaaaaaaa", at("2025-01-10T10:00:00Z"));
    s.create_keys(std::slice::from_ref(&k), &about(&r, "key.created", k.created_at)).await.expect("key");
    let batch = UsageBatch {
        holder: HOLDER_A.into(),
        usage: vec![
            used_delta(&r, "2025-01-11", Tokens::new(120, 30), 1),
            used_delta(&r, "2025-01-12", Tokens::new(80, 700), 1),
            used_delta(&r, "2025-01-12", Tokens::new(1, 1), 1),
        ],
        leases: vec![held_delta(&r, Tokens::new(-201, -500)), held_delta(&r, Tokens::new(0, -31))],
        renew_until_ms: Some(T0 + 30_000),
        now_ms: T0 + 5,
        key_uses: vec![(k.id.clone(), at("2025-01-12T10:00:00Z"))],
    };
    s.commit_usage(&batch).await.expect("commit");
    let used = MonthUsage { input_tokens: 201, output_tokens: 731, api_calls: 3 };
    let months = s.month_usage(&[(r.id.clone(), r.created_at), (idle.id.clone(), idle.created_at)]).await;
    assert_eq!(months.expect("months"), [used, MonthUsage::default()]);
    let days = s.day_usage(&r.id, "2025-01-01", "2025-01-31").await.expect("days");
    let days: Vec<(String, i64, i64, i64)> =
        days.into_iter().map(|d| (d.day, d.input_tokens, d.output_tokens, d.api_calls)).collect();
    assert_eq!(days, [("2025-01-11".into(), 120, 30, 1), ("2025-01-12".into(), 81, 701, 2)]);
    assert_eq!(s.day_usage(&r.id, "2025-01-12", "2025-01-12").await.expect("days").len(), 1, "inclusive");
    assert!(s.day_usage(&r.id, "2025-01-13", "2025-02-01").await.expect("days").is_empty());
    // used + held: 201 + 1799 input, 731 + 469 output; the rest is free.
    let (free, held) = pool(s, &r, HOLDER_A, quota, T0 + 20_000).await;
    assert_eq!((free, held), (Tokens::new(8000, 3800), Tokens::new(1799, 469)), "renewed past T0 + 10 s");
    assert_eq!(s.key(&r.id, &k.id).await.expect("key").and_then(|k| k.last_used_at), Some(at("2025-01-12T10:00:00Z")));

    // A held amount never goes below zero; an older key use does not move last_used_at back.
    let batch = UsageBatch {
        holder: HOLDER_A.into(),
        leases: vec![held_delta(&r, Tokens::new(-1_000_000, -1_000_000))],
        now_ms: T0 + 20_001,
        key_uses: vec![(k.id.clone(), at("2025-01-11T10:00:00Z"))],
        ..UsageBatch::default()
    };
    s.commit_usage(&batch).await.expect("commit");
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 20_002).await, (Tokens::new(9799, 4269), Tokens::ZERO));
    assert_eq!(s.key(&r.id, &k.id).await.expect("key").and_then(|k| k.last_used_at), Some(at("2025-01-12T10:00:00Z")));

    // Usage beyond the quota is recorded (never under-counted); the pool is then simply empty.
    let batch = UsageBatch {
        holder: HOLDER_B.into(),
        usage: vec![used_delta(&r, "2025-01-13", Tokens::new(20_000, 0), 1)],
        now_ms: T0 + 20_003,
        ..UsageBatch::default()
    };
    s.commit_usage(&batch).await.expect("commit");
    let month = s.month_usage(&[(r.id.clone(), r.created_at)]).await.expect("months");
    assert_eq!(month[0].input_tokens, 20_201);
    assert_eq!(pool(s, &r, HOLDER_A, quota, T0 + 20_004).await.0, Tokens::new(0, 4269));

    // A commit that fails writes nothing of itself (here: usage of a resource that does not exist).
    let ghost = text(&c, "Ghost", r.created_at);
    let broken = UsageBatch {
        holder: HOLDER_A.into(),
        usage: vec![
            used_delta(&r, "2025-01-14", Tokens::new(5, 5), 1),
            used_delta(&ghost, "2025-01-14", Tokens::new(1, 1), 1),
        ],
        now_ms: T0 + 20_005,
        ..UsageBatch::default()
    };
    assert!(s.commit_usage(&broken).await.is_err());
    assert!(s.day_usage(&r.id, "2025-01-14", "2025-01-14").await.expect("days").is_empty(), "all or nothing");
}

pub async fn month_usage_is_read_in_batches_in_the_order_asked(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 100_000).await;
    let mut resources = Vec::new();
    for i in 0..5 {
        resources.push(provisioned(s, &c, &format!("R{i}")).await);
    }
    // Usage in January for even resources, in February for all.
    let feb = at("2025-02-10T09:00:00Z");
    let mut usage = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let n = i64::try_from(i).expect("small");
        if i % 2 == 0 {
            usage.push(used_delta(r, "2025-01-20", Tokens::new(n, 0), 1));
        }
        usage.push(UsageDelta {
            resource_id: r.id.clone(),
            month_start: feb,
            day: "2025-02-11".into(),
            used: Tokens::new(100 + n, n),
            api_calls: 2,
        });
    }
    s.commit_usage(&UsageBatch { holder: HOLDER_A.into(), usage, now_ms: T0, ..UsageBatch::default() })
        .await
        .expect("commit");
    // 250 pairs (more than one statement's worth), in a mixed order, with repeats and unknowns.
    let mut asked = Vec::new();
    for i in 0..250 {
        let r = &resources[(i * 7) % 5];
        let month = match i % 3 {
            0 => r.created_at,
            1 => feb,
            _ => at("2025-03-10T09:00:00Z"),
        };
        asked.push((r.id.clone(), month));
    }
    asked.push((ResourceId("res_unknown".into()), feb));
    let got = s.month_usage(&asked).await.expect("months");
    assert_eq!(got.len(), asked.len());
    for ((id, month), usage) in asked.iter().zip(&got) {
        let i = resources.iter().position(|r| &r.id == id);
        let expected = match (i, *month == feb) {
            (None, _) => MonthUsage::default(),
            (Some(i), true) => {
                let n = i64::try_from(i).expect("small");
                MonthUsage { input_tokens: 100 + n, output_tokens: n, api_calls: 2 }
            }
            (Some(i), false) if *month == resources[i].created_at && i % 2 == 0 => {
                MonthUsage { input_tokens: i64::try_from(i).expect("small"), output_tokens: 0, api_calls: 1 }
            }
            (Some(_), false) => MonthUsage::default(),
        };
        assert_eq!(*usage, expected, "{id} {month}");
    }
    assert!(s.month_usage(&[]).await.expect("none").is_empty());
}

pub async fn concurrent_leases_never_exceed_the_quota(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let quota = Tokens::new(50_000, 20_000);
    // 8 instances × 4 tasks each keep leasing, using all they needed and giving back the rest,
    // until the pool refuses them. Had any grant gone past the pool, the uses would add up to
    // more than the quota.
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (store, r) = (store.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let holder = format!("instance-{}", t % 8);
            let (mut granted_total, mut used_total) = (Tokens::ZERO, Tokens::ZERO);
            for round in 0..1000 {
                let now = T0 + round;
                let need = Tokens::new(700, 300);
                let want = Tokens::new(1500 + 100 * (t % 5), 600);
                match store.acquire_lease(&lease(&r, &holder, quota, need, want, now)).await.expect("acquire") {
                    LeaseOutcome::Refused { .. } => break,
                    LeaseOutcome::Granted { granted, .. } => {
                        granted_total = granted_total.checked_add(granted).expect("no overflow");
                        // Use the need, give the grant back, in one commit.
                        let used = need;
                        used_total = used_total.checked_add(used).expect("no overflow");
                        let back = Tokens::ZERO.checked_sub(granted).expect("no overflow");
                        let batch = UsageBatch {
                            holder: holder.clone(),
                            usage: vec![used_delta(&r, "2025-01-11", used, 1)],
                            leases: vec![held_delta(&r, back)],
                            now_ms: now,
                            ..UsageBatch::default()
                        };
                        store.commit_usage(&batch).await.expect("commit");
                    }
                }
            }
            (granted_total, used_total)
        }));
    }
    let mut used_total = Tokens::ZERO;
    for task in tasks {
        let (_, used) = task.await.expect("task");
        used_total = used_total.checked_add(used).expect("no overflow");
    }
    let month = s.month_usage(&[(r.id.clone(), r.created_at)]).await.expect("months")[0];
    assert_eq!(Tokens::new(month.input_tokens, month.output_tokens), used_total, "every commit counted once");
    assert!(used_total.fits_in(quota), "used {used_total} of {quota}");
    assert!(used_total.output > quota.output / 2, "the test pushed against the limit: {used_total}");
    // Every lease was given back exactly: what is free is what was not used.
    let (free, held) = pool(s, &r, "instance-0", quota, T0 + 5000).await;
    assert_eq!(held, Tokens::ZERO);
    assert_eq!(free, quota.checked_sub(used_total).expect("no overflow"));
}

pub async fn concurrent_acquisitions_never_grant_past_the_quota(store: Arc<dyn Store>) {
    let s = &*store;
    let c = funded_company(s, 1000).await;
    let r = provisioned(s, &c, "Bot").await;
    let quota = Tokens::new(10_000, 3_000);
    // 64 tasks of 16 instances grab what they can and keep it: the grants must add up to at
    // most the quota, and to exactly it per kind when the needs divide it.
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (store, r) = (store.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let holder = format!("instance-{}", t % 16);
            let mut got = Tokens::ZERO;
            for round in 0..200 {
                let need = Tokens::new(100, 30);
                let req = lease(&r, &holder, quota, need, Tokens::new(300, 90), T0 + round);
                match store.acquire_lease(&req).await.expect("acquire") {
                    LeaseOutcome::Granted { granted, .. } => {
                        assert!(need.fits_in(granted), "a grant covers the need: {granted}");
                        got = got.checked_add(granted).expect("no overflow");
                    }
                    LeaseOutcome::Refused { .. } => break,
                }
            }
            got
        }));
    }
    let mut total = Tokens::ZERO;
    for task in tasks {
        total = total.checked_add(task.await.expect("task")).expect("no overflow");
    }
    assert!(total.fits_in(quota), "granted {total} of {quota}");
    assert_eq!(pool(s, &r, "anyone", quota, T0 + 300).await.0, quota.checked_sub(total).expect("no overflow"));
    assert!(!Tokens::new(100, 30).fits_in(quota.checked_sub(total).expect("no overflow")), "ran dry: {total}");
}
