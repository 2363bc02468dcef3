//! The resource lifecycle (SPEC §5) and the cloud-token ledger (SPEC §3) under long random
//! sequences of actions and clock moves, checked against an independent model.
//!
//! The domain crate only *decides* (`Resource::change_plan`, `cancel_downgrade`, `deprovision`,
//! `cancel_deprovision`, `take_effect`, `ProvisionForm::validate(..).into_resource(..)` each
//! return a `Change` or a `Resource`); a store applies the decision. Here a tiny in-test
//! [`Store`] plays that role for one company: it holds `total` and `allocated`, the resources,
//! and a double-entry journal, writes an allocation only when `available >= tokens` (else
//! `insufficient_tokens` and nothing changes), and, when the clock moves, applies every due
//! `take_effect` in effective-instant order (knowledge bases before their embeddings resource
//! at the same instant), sometimes exactly at the effective instant, sometimes late.
//!
//! Next to it, a [`Model`] written from the SPEC alone (its own price list, the naive calendar
//! of `common`) predicts the outcome of every action, error code included, and the state after
//! it. After every step the two must agree, and:
//! - `available = total − allocated ≥ 0`, `allocated` is the sum of the plan costs of the live
//!   resources, and the journal balances (grants − allocations + releases = available);
//! - `pending_release` is the sum of `Resource::pending_release` and what the model expects;
//! - per resource, allocations − releases = its cost while live and 0 once deprovisioned, and
//!   the number and amount of releases equal what the model says should have been released:
//!   every scheduled change is released exactly once, at its effective instant;
//! - a scheduled change never takes effect before its effective instant (`take_effect` one
//!   millisecond earlier answers `None`) and is gone once applied; a downgrade (and the
//!   deprovisioning of anything but an embeddings resource held open by its knowledge bases)
//!   takes effect on a bundle-month boundary of the resource's own anchor, which never moves;
//! - a knowledge base is never live once its embeddings resource is deprovisioned, and while
//!   that resource's deprovisioning is scheduled every live knowledge base linked to it is
//!   scheduled to go no later;
//! - `status == derive_status()`.
//!
//! Knowledge bases are linked only to live embeddings resources of the same region that are not
//! scheduled for deprovisioning (SPEC §5 says "an active embeddings resource"): that check lives
//! in the application layer, and the domain relies on it.
//!
//! `generators_reach_the_interesting_paths` replays 100 fixed-seed sequences and fails if some
//! path (each action succeeding, each refusal code, downgrades and deprovisionings taking effect,
//! an embeddings resource held open by its knowledge bases, …) is reached fewer than 20 times,
//! so a generator that stops reaching a path cannot go unnoticed.
//!
//! Two tests at the end pin a bug these properties found: an action taken after a scheduled
//! change's effective instant but before the scheduler had applied it (`cancel_downgrade`,
//! `cancel_deprovision`) used to undo a change that SPEC §5 says has already taken effect. The
//! domain now refuses (`scheduled_change_due`) and the application applies due changes first.

mod common;

use chrono::Duration;
use common::{naive_boundary, naive_index, naive_next_boundary};
use genai_core::calendar::{bundle_month_at, format_day};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::ledger::{Balance, TransactionKind};
use genai_core::resource::{Change, Environment, Resource, Scheduled, Status};
use genai_core::validation::ProvisionForm;
use genai_core::{Catalog, CloudTokens, CompanyId, Instant, ResourceId};
use proptest::prelude::*;
use std::collections::BTreeMap;

type Outcome = Result<(), &'static str>;

/// SPEC §1's price list, written down independently of the catalog.
fn price(t: ResourceType, p: PlanSize) -> i64 {
    match (t, p) {
        (ResourceType::TextGeneration, PlanSize::Small) => 30,
        (ResourceType::TextGeneration, PlanSize::Medium) => 60,
        (ResourceType::TextGeneration, PlanSize::Large) => 120,
        (ResourceType::EmbeddingsGeneration, PlanSize::Small) => 6,
        (ResourceType::EmbeddingsGeneration, PlanSize::Medium) => 12,
        (ResourceType::EmbeddingsGeneration, PlanSize::Large) => 24,
        (ResourceType::KnowledgeBase, PlanSize::Standard) => 48,
        _ => panic!("no {p} plan for {t}"),
    }
}

fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

/// Whether `at` is one of the bundle-month boundaries of `anchor` (by the naive calendar).
fn is_boundary(anchor: Instant, at: Instant) -> bool {
    at >= anchor && naive_boundary(anchor, naive_index(anchor, at)) == at
}

// ---------------------------------------------------------------------------------------------
// Operations

/// Text models and where they run: (region, cross-region inference, model).
const TEXT: [(&str, bool, &str); 7] = [
    ("eu-central-1", true, "claude-sonnet-4.6"),
    ("eu-central-1", true, "claude-sonnet-4.5"),
    ("eu-central-1", true, "claude-sonnet-4"),
    ("eu-central-1", true, "claude-haiku-4.5"),
    ("ca-central-1", false, "claude-sonnet-3"),
    ("eu-central-1", false, "smollm2-135m-instruct"),
    ("ca-central-1", true, "smollm2-135m-instruct"),
];
/// Embeddings models and where they run.
const EMBEDDINGS: [(&str, bool, &str); 7] = [
    ("eu-central-1", true, "cohere-embed-v4"),
    ("eu-central-1", false, "cohere-embed-english-v3"),
    ("eu-central-1", false, "cohere-embed-multilingual-v3"),
    ("ca-central-1", false, "cohere-embed-english-v3"),
    ("ca-central-1", false, "cohere-embed-multilingual-v3"),
    ("eu-central-1", true, "all-minilm-l6-v2"),
    ("ca-central-1", false, "all-minilm-l6-v2"),
];

#[derive(Debug, Clone)]
enum Op {
    /// The operator grants tokens.
    Grant(i64),
    /// Provision a text generation resource (`TEXT[variant]`).
    ProvisionText { variant: usize, size: PlanSize },
    /// Provision an embeddings resource (`EMBEDDINGS[variant]`).
    ProvisionEmbeddings { variant: usize, size: PlanSize },
    /// Provision a knowledge base linked to one of the linkable embeddings resources.
    ProvisionKb { pick: usize },
    /// A form the catalog refuses (a model where it is not offered): nothing may change.
    ProvisionInvalid { variant: usize },
    /// Ask resource `pick` for plan `size` (upgrade or downgrade, or an error).
    ChangePlan { pick: Pick, size: PlanSize },
    /// Cancel a scheduled downgrade.
    CancelDowngrade { pick: Pick },
    /// Deprovision (an embeddings resource gets its live knowledge bases passed in).
    Deprovision { pick: Pick },
    /// Deprovision every live knowledge base linked to `pick`, then `pick` itself.
    DeprovisionWithKbs { pick: Pick },
    /// Cancel a scheduled deprovisioning (a knowledge base gets its embeddings resource).
    CancelDeprovision { pick: Pick },
    /// Move the clock forward; `late`: the scheduler applies due changes at the new time
    /// rather than at their effective instant.
    Advance { millis: i64, late: bool },
    /// Move the clock to the next effective instant plus `delta` milliseconds.
    AdvanceToNextDue { delta: i64, late: bool },
}

/// Which resource an action is aimed at: the `n`-th (modulo) of a group of resources.
#[derive(Debug, Clone, Copy)]
struct Pick {
    group: Group,
    n: usize,
}

#[derive(Debug, Clone, Copy)]
enum Group {
    /// Any resource, deprovisioned ones included (mostly refusals).
    Any,
    /// Live resources.
    Live,
    /// Resources the action is allowed for (falls back to any when there are none).
    Fitting,
}

fn pick() -> impl Strategy<Value = Pick> {
    let group = prop_oneof![1 => Just(Group::Any), 2 => Just(Group::Live), 3 => Just(Group::Fitting)];
    (group, 0usize..64).prop_map(|(group, n)| Pick { group, n })
}

fn size() -> impl Strategy<Value = PlanSize> {
    prop_oneof![
        3 => Just(PlanSize::Small),
        3 => Just(PlanSize::Medium),
        3 => Just(PlanSize::Large),
        1 => Just(PlanSize::Standard),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..=300).prop_map(Op::Grant),
        4 => (0..TEXT.len(), prop_oneof![Just(PlanSize::Small), Just(PlanSize::Medium), Just(PlanSize::Large)])
            .prop_map(|(variant, size)| Op::ProvisionText { variant, size }),
        4 => (0..EMBEDDINGS.len(), prop_oneof![Just(PlanSize::Small), Just(PlanSize::Medium), Just(PlanSize::Large)])
            .prop_map(|(variant, size)| Op::ProvisionEmbeddings { variant, size }),
        4 => (0usize..64).prop_map(|pick| Op::ProvisionKb { pick }),
        1 => (0usize..4).prop_map(|variant| Op::ProvisionInvalid { variant }),
        8 => (pick(), size()).prop_map(|(pick, size)| Op::ChangePlan { pick, size }),
        3 => pick().prop_map(|pick| Op::CancelDowngrade { pick }),
        4 => pick().prop_map(|pick| Op::Deprovision { pick }),
        2 => pick().prop_map(|pick| Op::DeprovisionWithKbs { pick }),
        3 => pick().prop_map(|pick| Op::CancelDeprovision { pick }),
        3 => (60_000i64..3_600_000, any::<bool>()).prop_map(|(millis, late)| Op::Advance { millis, late }),
        4 => (3_600_000i64..5 * 86_400_000, any::<bool>()).prop_map(|(millis, late)| Op::Advance { millis, late }),
        4 => (5 * 86_400_000i64..70 * 86_400_000, any::<bool>()).prop_map(|(millis, late)| Op::Advance { millis, late }),
        4 => (-1i64..=1, any::<bool>()).prop_map(|(delta, late)| Op::AdvanceToNextDue { delta, late }),
    ]
}

/// The first instant: anywhere in 2023–2029 to the millisecond, or late in a month.
fn start() -> impl Strategy<Value = Instant> {
    let lo = chrono::NaiveDate::from_ymd_opt(2023, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or_else(|| panic!("date"));
    let span = 7 * 365 * 86_400_000i64;
    prop_oneof![
        (lo..lo + span).prop_map(from_millis),
        (0i32..84, 27i64..31, 0i64..86_400_000).prop_map(|(month, day, t)| {
            // Day 28–31 (clamped to the month's length) of the `month`-th month from Jan 2023.
            let (y, m) = (2023 + month / 12, 1 + (month % 12) as u32);
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap_or_else(|| panic!("{y}-{m}"))
                .and_utc();
            first + Duration::days(day.min(i64::from(common::month_len(y, m)) - 1)) + ms(t)
        }),
    ]
}

fn from_millis(n: i64) -> Instant {
    chrono::DateTime::from_timestamp_millis(n).unwrap_or_else(|| panic!("instant {n}"))
}

// ---------------------------------------------------------------------------------------------
// The store: applies the domain's decisions

/// Per-resource ledger account (double entry: what flowed in and out of `resource:<id>`).
#[derive(Debug, Clone, Default)]
struct Account {
    allocated: i64,
    released: i64,
    releases: u32,
}

struct Store {
    catalog: Catalog,
    company: CompanyId,
    now: Instant,
    total: i64,
    allocated: i64,
    resources: Vec<Resource>,
    accounts: Vec<Account>,
    /// Sums of the journal by kind: (grants, allocations, releases).
    journal: (i64, i64, i64),
}

impl Store {
    fn available(&self) -> i64 {
        self.total - self.allocated
    }

    /// Writes a decision about resource `i`, with its ledger movement, or nothing at all.
    fn apply(&mut self, i: usize, change: Change) -> Outcome {
        let current = &self.resources[i];
        assert_eq!(change.next.id, current.id, "a change for another resource");
        assert_eq!(change.next.version, current.version, "a change must keep the version");
        assert_eq!(change.next.created_at, current.created_at, "the anchor never moves");
        if let Some(m) = change.movement {
            let tokens = m.tokens.get();
            assert!(tokens > 0, "a movement of {tokens} tokens");
            match m.kind {
                TransactionKind::Allocate => {
                    if self.available() < tokens {
                        return Err("insufficient_tokens");
                    }
                    self.allocated += tokens;
                    self.journal.1 += tokens;
                    self.accounts[i].allocated += tokens;
                }
                TransactionKind::Release => {
                    self.allocated -= tokens;
                    self.journal.2 += tokens;
                    self.accounts[i].released += tokens;
                    self.accounts[i].releases += 1;
                }
                TransactionKind::Grant => panic!("a resource change never grants"),
            }
        }
        let mut next = change.next;
        next.version += 1;
        self.resources[i] = next;
        Ok(())
    }

    fn provision(&mut self, form: &ProvisionForm) -> Outcome {
        let valid = form.validate(&self.catalog).map_err(|_| "validation_failed")?;
        let id = ResourceId(format!("res-{}", self.resources.len()));
        let r = valid.into_resource(id, self.company.clone(), self.now);
        assert_eq!((r.status, r.created_at, r.scheduled, r.deprovisioned_at), (Status::Active, self.now, None, None));
        let tokens = r.cloud_tokens.get();
        if self.available() < tokens {
            return Err("insufficient_tokens");
        }
        self.allocated += tokens;
        self.journal.1 += tokens;
        self.resources.push(r);
        self.accounts.push(Account { allocated: tokens, ..Account::default() });
        Ok(())
    }

    /// The live knowledge bases linked to resource `i`.
    fn linked_kbs(&self, i: usize) -> Vec<Resource> {
        let id = &self.resources[i].id;
        self.resources
            .iter()
            .filter(|r| r.is_live() && r.embeddings_resource_id.as_ref() == Some(id))
            .cloned()
            .collect()
    }

    fn index_of(&self, id: &ResourceId) -> usize {
        self.resources.iter().position(|r| &r.id == id).unwrap_or_else(|| panic!("no resource {id}"))
    }

    /// The earliest effective instant of a live resource's scheduled change, and who has it:
    /// knowledge bases first at the same instant, so none outlives its embeddings even briefly.
    fn next_due(&self) -> Option<(Instant, usize)> {
        self.resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .filter_map(|(i, r)| {
                r.scheduled.map(|s| (s.effective_at(), r.resource_type != ResourceType::KnowledgeBase, i))
            })
            .min()
            .map(|(at, _, i)| (at, i))
    }

    /// Moves the clock to `to`, applying every change that falls due on the way, in order.
    fn advance(&mut self, to: Instant, late: bool) {
        assert!(to >= self.now);
        while let Some((at, i)) = self.next_due().filter(|(at, _)| *at <= to) {
            let r = self.resources[i].clone();
            assert!(at > self.now, "{} was overdue before the clock moved", r.id);
            assert_eq!(r.take_effect(at - ms(1)), None, "{} took effect before {at}", r.id);
            let when = if late { to } else { at };
            let change = r.take_effect(when).unwrap_or_else(|| panic!("{} not due at {when}", r.id));
            assert_eq!(change.at, at, "recorded at the effective instant");
            if let Some(m) = change.movement {
                assert_eq!((m.kind, m.at), (TransactionKind::Release, at));
            }
            let expected_action = match r.scheduled {
                Some(Scheduled::Downgrade { .. }) => "resource.downgraded",
                _ => "resource.deprovisioned",
            };
            assert_eq!(change.action, expected_action);
            assert_eq!(self.apply(i, change), Ok(()), "a release never fails");
            assert_eq!(self.resources[i].take_effect(to), None, "applied twice");
            check_kb_links(&self.resources);
        }
        self.now = to;
    }
}

/// Whether the resource's deprovisioning is scheduled.
fn deprovisioning(r: &Resource) -> bool {
    matches!(r.scheduled, Some(Scheduled::Deprovision { .. }))
}

/// A knowledge base never outlives its embeddings resource.
fn check_kb_links(resources: &[Resource]) {
    for kb in resources.iter().filter(|r| r.resource_type == ResourceType::KnowledgeBase && r.is_live()) {
        let emb_id = kb.embeddings_resource_id.as_ref().unwrap_or_else(|| panic!("{} has no embeddings", kb.id));
        let emb = resources.iter().find(|r| &r.id == emb_id).unwrap_or_else(|| panic!("{emb_id} missing"));
        assert!(emb.is_live(), "knowledge base {} is live but its embeddings {} is deprovisioned", kb.id, emb.id);
        if let Some(Scheduled::Deprovision { effective_at: e }) = emb.scheduled {
            match kb.scheduled {
                Some(Scheduled::Deprovision { effective_at: k }) => {
                    assert!(k <= e, "knowledge base {} goes at {k}, after its embeddings {} at {e}", kb.id, emb.id)
                }
                other => panic!("embeddings {} goes at {e} but knowledge base {} has {other:?}", emb.id, kb.id),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model: what SPEC §3–§5 say should happen

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sched {
    Down { plan: PlanSize, cost: i64, at: Instant },
    Deprov { at: Instant },
}

#[derive(Debug, Clone)]
struct ModelRes {
    kind: ResourceType,
    region: &'static str,
    anchor: Instant,
    plan: PlanSize,
    cost: i64,
    deprovisioned_at: Option<Instant>,
    sched: Option<Sched>,
    embeddings: Option<usize>,
    allocated: i64,
    released: i64,
    releases: u32,
}

impl ModelRes {
    fn live(&self) -> bool {
        self.deprovisioned_at.is_none()
    }

    fn status(&self) -> Status {
        match (self.live(), self.sched) {
            (false, _) => Status::Deprovisioned,
            (true, Some(Sched::Down { .. })) => Status::PlanDowngradeScheduled,
            (true, Some(Sched::Deprov { .. })) => Status::DeprovisioningScheduled,
            (true, None) => Status::Active,
        }
    }

    fn pending(&self) -> i64 {
        match self.sched {
            Some(Sched::Down { cost, .. }) => self.cost - cost,
            Some(Sched::Deprov { .. }) => self.cost,
            None => 0,
        }
    }

    /// The common refusals of every change but cancelling a deprovisioning.
    fn changeable(&self) -> Outcome {
        if !self.live() {
            Err("already_deprovisioned")
        } else if matches!(self.sched, Some(Sched::Deprov { .. })) {
            Err("deprovisioning_scheduled")
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Default)]
struct Model {
    now: Option<Instant>,
    total: i64,
    resources: Vec<ModelRes>,
}

impl Model {
    fn now(&self) -> Instant {
        self.now.unwrap_or_else(|| panic!("clock not set"))
    }

    fn allocated(&self) -> i64 {
        self.resources.iter().filter(|r| r.live()).map(|r| r.cost).sum()
    }

    fn available(&self) -> i64 {
        self.total - self.allocated()
    }

    /// Embeddings resources a new knowledge base in any region may be linked to.
    fn linkable(&self) -> Vec<usize> {
        (0..self.resources.len())
            .filter(|&i| {
                let r = &self.resources[i];
                r.kind == ResourceType::EmbeddingsGeneration
                    && r.live()
                    && !matches!(r.sched, Some(Sched::Deprov { .. }))
            })
            .collect()
    }

    fn provision(
        &mut self,
        kind: ResourceType,
        region: &'static str,
        plan: PlanSize,
        embeddings: Option<usize>,
    ) -> Outcome {
        let cost = price(kind, plan);
        if self.available() < cost {
            return Err("insufficient_tokens");
        }
        self.resources.push(ModelRes {
            kind,
            region,
            anchor: self.now(),
            plan,
            cost,
            deprovisioned_at: None,
            sched: None,
            embeddings,
            allocated: cost,
            released: 0,
            releases: 0,
        });
        Ok(())
    }

    fn change_plan(&mut self, i: usize, target: PlanSize) -> Outcome {
        let now = self.now();
        let available = self.available();
        let r = &mut self.resources[i];
        r.changeable()?;
        if r.kind == ResourceType::KnowledgeBase {
            return Err("plan_change_not_supported");
        }
        if target == PlanSize::Standard {
            return Err("validation_failed");
        }
        if target == r.plan {
            return Err("plan_unchanged");
        }
        let cost = price(r.kind, target);
        if cost > r.cost {
            if available < cost - r.cost {
                return Err("insufficient_tokens");
            }
            r.allocated += cost - r.cost;
            r.plan = target;
            r.cost = cost;
            r.sched = None;
        } else {
            r.sched = Some(Sched::Down { plan: target, cost, at: naive_next_boundary(r.anchor, now) });
        }
        Ok(())
    }

    fn cancel_downgrade(&mut self, i: usize) -> Outcome {
        let r = &mut self.resources[i];
        r.changeable()?;
        if !matches!(r.sched, Some(Sched::Down { .. })) {
            return Err("no_downgrade_scheduled");
        }
        r.sched = None;
        Ok(())
    }

    fn deprovision(&mut self, i: usize) -> Outcome {
        let now = self.now();
        self.resources[i].changeable()?;
        let kbs: Vec<&ModelRes> = self.resources.iter().filter(|kb| kb.live() && kb.embeddings == Some(i)).collect();
        if kbs.iter().any(|kb| !matches!(kb.sched, Some(Sched::Deprov { .. }))) {
            return Err("embeddings_in_use");
        }
        let own = naive_next_boundary(self.resources[i].anchor, now);
        let at = kbs
            .iter()
            .filter_map(|kb| match kb.sched {
                Some(Sched::Deprov { at }) => Some(at),
                _ => None,
            })
            .fold(own, Instant::max);
        self.resources[i].sched = Some(Sched::Deprov { at });
        Ok(())
    }

    fn cancel_deprovision(&mut self, i: usize) -> Outcome {
        let r = &self.resources[i];
        if !r.live() {
            return Err("already_deprovisioned");
        }
        if !matches!(r.sched, Some(Sched::Deprov { .. })) {
            return Err("no_deprovisioning_scheduled");
        }
        if let Some(e) = r.embeddings {
            if matches!(self.resources[e].sched, Some(Sched::Deprov { .. })) {
                return Err("deprovisioning_scheduled");
            }
        }
        self.resources[i].sched = None;
        Ok(())
    }

    /// Applies every scheduled change with an effective instant up to `to`.
    fn advance(&mut self, to: Instant) {
        for r in self.resources.iter_mut().filter(|r| r.live()) {
            match r.sched {
                Some(Sched::Down { plan, cost, at }) if at <= to => {
                    r.released += r.cost - cost;
                    r.releases += 1;
                    r.plan = plan;
                    r.cost = cost;
                    r.sched = None;
                }
                Some(Sched::Deprov { at }) if at <= to => {
                    r.released += r.cost;
                    r.releases += 1;
                    r.deprovisioned_at = Some(at);
                    r.sched = None;
                }
                _ => {}
            }
        }
        self.now = Some(to);
    }
}

// ---------------------------------------------------------------------------------------------
// Running a sequence

fn form(
    kind: ResourceType,
    name: String,
    (region, cri, model): (&str, bool, Option<&str>),
    plan: PlanSize,
    embeddings: Option<&ResourceId>,
) -> ProvisionForm {
    ProvisionForm {
        resource_type: Some(kind),
        display_name: Some(name),
        environment: Some(Environment::Test),
        region: Some(region.into()),
        cross_region_inference: Some(cri),
        model: model.map(str::to_string),
        plan: Some(plan),
        embeddings_resource_id: embeddings.map(|id| id.0.clone()),
        user_name: Some("Ada Lovelace".into()),
        user_email: Some("ada@example.com".into()),
    }
}

/// Tallies of what a run exercised (`ok:<op>`, `err:<code>`, events), to see that the
/// generators reach the interesting paths.
type Tally = BTreeMap<String, usize>;

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Grant(_) => "grant",
        Op::ProvisionText { .. } => "provision_text",
        Op::ProvisionEmbeddings { .. } => "provision_embeddings",
        Op::ProvisionKb { .. } => "provision_kb",
        Op::ProvisionInvalid { .. } => "provision_invalid",
        Op::ChangePlan { .. } => "change_plan",
        Op::CancelDowngrade { .. } => "cancel_downgrade",
        Op::Deprovision { .. } => "deprovision",
        Op::DeprovisionWithKbs { .. } => "deprovision_with_kbs",
        Op::CancelDeprovision { .. } => "cancel_deprovision",
        Op::Advance { .. } => "advance",
        Op::AdvanceToNextDue { .. } => "advance_to_next_due",
    }
}

struct Run {
    store: Store,
    model: Model,
    tally: Tally,
}

impl Run {
    fn new(start: Instant) -> Run {
        Run {
            store: Store {
                catalog: Catalog::builtin(),
                company: CompanyId("co-1".into()),
                now: start,
                total: 0,
                allocated: 0,
                resources: Vec::new(),
                accounts: Vec::new(),
                journal: (0, 0, 0),
            },
            model: Model { now: Some(start), ..Model::default() },
            tally: Tally::default(),
        }
    }

    /// The resource `pick` aims at; `fits` tells the resources the action is allowed for.
    fn pick(&self, pick: Pick, fits: impl Fn(&Resource) -> bool) -> Option<usize> {
        let group: Vec<usize> = (0..self.store.resources.len())
            .filter(|&i| {
                let r = &self.store.resources[i];
                match pick.group {
                    Group::Any => true,
                    Group::Live => r.is_live(),
                    Group::Fitting => fits(r),
                }
            })
            .collect();
        match group.len() {
            0 if self.store.resources.is_empty() => None,
            0 => Some(pick.n % self.store.resources.len()),
            n => Some(group[pick.n % n]),
        }
    }

    fn step(&mut self, op: &Op) {
        let now = self.store.now;
        let (expected, actual): (Outcome, Outcome) = match *op {
            Op::Grant(n) => {
                self.model.total += n;
                self.store.total += n;
                self.store.journal.0 += n;
                (Ok(()), Ok(()))
            }
            Op::ProvisionText { variant, size } => {
                let (region, cri, model) = TEXT[variant];
                let f = form(ResourceType::TextGeneration, self.name(), (region, cri, Some(model)), size, None);
                (self.model.provision(ResourceType::TextGeneration, region, size, None), self.store.provision(&f))
            }
            Op::ProvisionEmbeddings { variant, size } => {
                let (region, cri, model) = EMBEDDINGS[variant];
                let f = form(ResourceType::EmbeddingsGeneration, self.name(), (region, cri, Some(model)), size, None);
                (self.model.provision(ResourceType::EmbeddingsGeneration, region, size, None), self.store.provision(&f))
            }
            Op::ProvisionKb { pick } => {
                let candidates = self.model.linkable();
                if candidates.is_empty() {
                    return;
                }
                let e = candidates[pick % candidates.len()];
                let region = self.model.resources[e].region;
                let emb_id = self.store.resources[e].id.clone();
                let f = form(
                    ResourceType::KnowledgeBase,
                    self.name(),
                    (region, false, None),
                    PlanSize::Standard,
                    Some(&emb_id),
                );
                (
                    self.model.provision(ResourceType::KnowledgeBase, region, PlanSize::Standard, Some(e)),
                    self.store.provision(&f),
                )
            }
            Op::ProvisionInvalid { variant } => {
                let f = match variant {
                    0 => form(
                        ResourceType::TextGeneration,
                        self.name(),
                        ("ca-central-1", true, Some("claude-sonnet-3")),
                        PlanSize::Small,
                        None,
                    ),
                    1 => form(
                        ResourceType::TextGeneration,
                        self.name(),
                        ("ca-central-1", true, Some("claude-sonnet-4.6")),
                        PlanSize::Small,
                        None,
                    ),
                    2 => form(
                        ResourceType::EmbeddingsGeneration,
                        self.name(),
                        ("eu-central-1", false, Some("cohere-embed-v4")),
                        PlanSize::Small,
                        None,
                    ),
                    _ => form(
                        ResourceType::KnowledgeBase,
                        self.name(),
                        ("eu-central-1", false, None),
                        PlanSize::Standard,
                        None,
                    ),
                };
                (Err("validation_failed"), self.store.provision(&f))
            }
            Op::ChangePlan { pick, size } => {
                let fits =
                    |r: &Resource| r.is_live() && !deprovisioning(r) && r.resource_type != ResourceType::KnowledgeBase;
                let Some(i) = self.pick(pick, fits) else { return };
                let expected = self.model.change_plan(i, size);
                let r = self.store.resources[i].clone();
                if expected.is_ok() && r.status == Status::PlanDowngradeScheduled {
                    *self.tally.entry("change_plan_over_downgrade".into()).or_default() += 1;
                }
                let actual = match r.change_plan(size, &self.store.catalog, now) {
                    Err(e) => Err(e.code()),
                    Ok(c) => {
                        let action = c.action;
                        let upgrade = c.movement.is_some();
                        assert_eq!(c.at, now);
                        if upgrade {
                            assert_eq!(action, "resource.upgraded");
                            assert_eq!(c.movement.map(|m| (m.kind, m.at)), Some((TransactionKind::Allocate, now)));
                        } else {
                            assert_eq!(action, "resource.downgrade_scheduled");
                        }
                        let written = self.store.apply(i, c);
                        if upgrade && written.is_ok() {
                            *self.tally.entry("upgraded".into()).or_default() += 1;
                        }
                        written
                    }
                };
                (expected, actual)
            }
            Op::CancelDowngrade { pick } => {
                let Some(i) = self.pick(pick, |r| r.status == Status::PlanDowngradeScheduled) else { return };
                let expected = self.model.cancel_downgrade(i);
                let r = self.store.resources[i].clone();
                let actual = match r.cancel_downgrade(now) {
                    Err(e) => Err(e.code()),
                    Ok(c) => {
                        assert_eq!((c.movement, c.action), (None, "resource.downgrade_cancelled"));
                        self.store.apply(i, c)
                    }
                };
                (expected, actual)
            }
            Op::Deprovision { pick } => {
                let Some(i) = self.pick(pick, |r| r.is_live() && !deprovisioning(r)) else { return };
                self.deprovision(i)
            }
            Op::DeprovisionWithKbs { pick } => {
                let fits = |r: &Resource| {
                    r.is_live() && !deprovisioning(r) && r.resource_type == ResourceType::EmbeddingsGeneration
                };
                let Some(i) = self.pick(pick, fits) else { return };
                let kbs: Vec<usize> = self.store.linked_kbs(i).iter().map(|kb| self.store.index_of(&kb.id)).collect();
                for kb in kbs {
                    let (expected, actual) = self.deprovision(kb);
                    self.settle(op, expected, actual);
                }
                self.deprovision(i)
            }
            Op::CancelDeprovision { pick } => {
                let Some(i) = self.pick(pick, |r| r.is_live() && deprovisioning(r)) else { return };
                let expected = self.model.cancel_deprovision(i);
                if expected == Err("deprovisioning_scheduled") {
                    *self.tally.entry("kb_cancel_blocked".into()).or_default() += 1;
                }
                let r = self.store.resources[i].clone();
                let emb =
                    r.embeddings_resource_id.as_ref().map(|id| self.store.resources[self.store.index_of(id)].clone());
                let actual = match r.cancel_deprovision(emb.as_ref(), now) {
                    Err(e) => Err(e.code()),
                    Ok(c) => {
                        assert_eq!((c.movement, c.action), (None, "resource.deprovision_cancelled"));
                        self.store.apply(i, c)
                    }
                };
                (expected, actual)
            }
            Op::Advance { millis, late } => {
                self.advance(now + ms(millis), late);
                (Ok(()), Ok(()))
            }
            Op::AdvanceToNextDue { delta, late } => {
                let Some((at, _)) = self.store.next_due() else { return };
                let to = at + ms(delta);
                if to < now {
                    return;
                }
                self.advance(to, late);
                (Ok(()), Ok(()))
            }
        };
        self.settle(op, expected, actual);
    }

    fn name(&self) -> String {
        format!("Resource {}", self.store.resources.len())
    }

    fn deprovision(&mut self, i: usize) -> (Outcome, Outcome) {
        let now = self.store.now;
        let expected = self.model.deprovision(i);
        let r = self.store.resources[i].clone();
        if expected.is_ok() && r.status == Status::PlanDowngradeScheduled {
            *self.tally.entry("deprovision_over_downgrade".into()).or_default() += 1;
        }
        let linked = self.store.linked_kbs(i);
        let actual = match r.deprovision(&linked, now) {
            Err(e) => Err(e.code()),
            Ok(c) => {
                assert_eq!((c.movement, c.action), (None, "resource.deprovision_scheduled"));
                let own = naive_next_boundary(r.created_at, now);
                if c.next.scheduled.map(Scheduled::effective_at) != Some(own) {
                    *self.tally.entry("deprovision_held_by_kb".into()).or_default() += 1;
                }
                self.store.apply(i, c)
            }
        };
        (expected, actual)
    }

    fn advance(&mut self, to: Instant, late: bool) {
        let before: Vec<Status> = self.store.resources.iter().map(|r| r.status).collect();
        self.store.advance(to, late);
        self.model.advance(to);
        for (r, was) in self.store.resources.iter().zip(before) {
            match (was, r.status) {
                (Status::PlanDowngradeScheduled, Status::Active) => {
                    *self.tally.entry("downgrade_applied".into()).or_default() += 1
                }
                (Status::DeprovisioningScheduled, Status::Deprovisioned) => {
                    let key = format!("deprovisioned_{}", r.resource_type);
                    *self.tally.entry(key).or_default() += 1;
                }
                _ => {}
            }
        }
    }

    fn settle(&mut self, op: &Op, expected: Outcome, actual: Outcome) {
        assert_eq!(actual, expected, "outcome of {op:?} at {}", self.store.now);
        let key = match actual {
            Ok(()) => format!("ok:{}", op_name(op)),
            Err(code) => format!("err:{code}"),
        };
        *self.tally.entry(key).or_default() += 1;
        self.check();
    }

    /// Every invariant, and the store against the model.
    fn check(&self) {
        let (s, m) = (&self.store, &self.model);
        assert_eq!(s.resources.len(), m.resources.len());
        assert_eq!(s.now, m.now());

        // The company's balance.
        let live_sum: i64 = s.resources.iter().filter(|r| r.is_live()).map(|r| r.cloud_tokens.get()).sum();
        let pending: i64 = s.resources.iter().map(|r| r.pending_release().map_or(-1, CloudTokens::get)).sum();
        let model_pending: i64 = m.resources.iter().filter(|r| r.live()).map(ModelRes::pending).sum();
        let Some(balance) = Balance::new(CloudTokens(s.total), CloudTokens(s.allocated), CloudTokens(pending)) else {
            panic!("the balance cannot be computed: {} - {}", s.total, s.allocated);
        };
        assert!(balance.available.get() >= 0, "available < 0: {balance:?}");
        assert_eq!(balance.available.get() + balance.allocated.get(), balance.total.get());
        assert_eq!(s.allocated, live_sum, "allocated is not the sum of the live resources' plan costs");
        assert_eq!((s.total, s.allocated), (m.total, m.allocated()), "balance differs from the model");
        assert_eq!(pending, model_pending, "pending release differs from the model");
        assert!(pending <= s.allocated, "more pending release than allocated");
        let (grants, allocations, releases) = s.journal;
        assert_eq!(grants, s.total, "journal grants");
        assert_eq!(grants - allocations + releases, balance.available.get(), "journal does not balance");

        for (i, (r, mr)) in s.resources.iter().zip(&m.resources).enumerate() {
            let ctx = format!("resource {i} ({:?}) at {}", r.resource_type, s.now);
            assert_eq!(r.resource_type, mr.kind, "{ctx}");
            assert_eq!(r.region, mr.region, "{ctx}");
            assert_eq!(r.created_at, mr.anchor, "{ctx}: the anchor moved");
            assert_eq!((r.plan, r.cloud_tokens.get()), (mr.plan, mr.cost), "{ctx}: plan");
            assert_eq!(r.cloud_tokens.get(), price(r.resource_type, r.plan), "{ctx}: cost is not the plan's");
            assert_eq!(r.deprovisioned_at, mr.deprovisioned_at, "{ctx}: deprovisioned_at");
            assert_eq!(r.status, r.derive_status(), "{ctx}: stored status is not the derived one");
            assert_eq!(r.status, mr.status(), "{ctx}: status");
            assert_eq!(r.is_live(), mr.live(), "{ctx}");
            let sched = r.scheduled.map(|sc| match sc {
                Scheduled::Downgrade { plan, cloud_tokens, effective_at } => {
                    Sched::Down { plan, cost: cloud_tokens.get(), at: effective_at }
                }
                Scheduled::Deprovision { effective_at } => Sched::Deprov { at: effective_at },
            });
            assert_eq!(sched, mr.sched, "{ctx}: scheduled change");
            let linked = r.embeddings_resource_id.as_ref().map(|id| s.index_of(id));
            assert_eq!(linked, mr.embeddings, "{ctx}: embeddings link");

            // The resource's ledger account.
            let acc = &s.accounts[i];
            let holds = if r.is_live() { r.cloud_tokens.get() } else { 0 };
            assert_eq!(acc.allocated - acc.released, holds, "{ctx}: account balance");
            assert_eq!(
                (acc.allocated, acc.released, acc.releases),
                (mr.allocated, mr.released, mr.releases),
                "{ctx}: movements"
            );

            // Scheduled changes: in the future, on the right instant, not applicable yet.
            if let Some(sc) = r.scheduled {
                let at = sc.effective_at();
                assert!(r.is_live(), "{ctx}: a deprovisioned resource with a scheduled change");
                assert!(at > s.now, "{ctx}: {at} is overdue");
                assert_eq!(r.take_effect(s.now), None, "{ctx}: takes effect early");
                assert_eq!(r.take_effect(at - ms(1)), None, "{ctx}: takes effect before {at}");
                let own_boundary = is_boundary(r.created_at, at);
                let month = bundle_month_at(r.created_at, at).unwrap_or_else(|| panic!("{ctx}: month at {at}"));
                match sc {
                    Scheduled::Downgrade { cloud_tokens, .. } => {
                        assert!(own_boundary && month.start == at, "{ctx}: downgrade at {at} is not a boundary");
                        assert!(cloud_tokens < r.cloud_tokens, "{ctx}: a downgrade that costs more");
                        assert_eq!(r.status_label(), "PLAN DOWNGRADE SCHEDULED");
                    }
                    Scheduled::Deprovision { .. } => {
                        let held_by_kb = s.resources.iter().any(|kb| {
                            kb.embeddings_resource_id.as_ref() == Some(&r.id)
                                && (kb.deprovisioned_at == Some(at)
                                    || kb.scheduled == Some(Scheduled::Deprovision { effective_at: at }))
                        });
                        assert!(
                            own_boundary || held_by_kb,
                            "{ctx}: deprovisioning at {at} is neither a boundary nor a KB's"
                        );
                        assert_eq!(r.status_label(), format!("DEPROVISIONING SCHEDULED · {}", format_day(at)));
                    }
                }
            }
            if let Some(d) = r.deprovisioned_at {
                assert_eq!(r.take_effect(s.now + Duration::days(400)), None, "{ctx}: deprovisioned twice");
                let last = r.bundle_month(s.now).unwrap_or_else(|| panic!("{ctx}: last bundle month"));
                assert!(last.start < d && d <= last.end, "{ctx}: last month {last:?} vs {d}");
            } else {
                let month = r.bundle_month(s.now).unwrap_or_else(|| panic!("{ctx}: bundle month"));
                assert!(month.start <= s.now && s.now < month.end, "{ctx}: {month:?}");
                assert_eq!(month.index, naive_index(r.created_at, s.now), "{ctx}: bundle month index");
            }
        }
        check_kb_links(&s.resources);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_model(start in start(), ops in prop::collection::vec(op(), 50..=200)) {
        let mut run = Run::new(start);
        for op in &ops {
            run.step(op);
        }
        // Finally let a long time pass: everything scheduled takes effect, exactly once.
        let end = run.store.now + Duration::days(800);
        run.advance(end, true);
        run.check();
        prop_assert!(run.store.resources.iter().all(|r| r.scheduled.is_none()));
    }
}

/// The generators reach every interesting path: upgrades, downgrades and deprovisionings that
/// take effect, refusals of every kind. A fixed number of runs, so a weak generator shows up.
#[test]
fn generators_reach_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = (start(), prop::collection::vec(op(), 50..=200));
    let mut total = Tally::new();
    for _ in 0..100 {
        let (start, ops) = strategy.new_tree(&mut runner).unwrap_or_else(|e| panic!("{e}")).current();
        let mut run = Run::new(start);
        for op in &ops {
            run.step(op);
        }
        for (k, v) in run.tally {
            *total.entry(k).or_default() += v;
        }
    }
    eprintln!("{total:#?}");
    let expected = [
        "ok:grant",
        "ok:provision_text",
        "ok:provision_embeddings",
        "ok:provision_kb",
        "ok:change_plan",
        "ok:cancel_downgrade",
        "ok:deprovision",
        "ok:deprovision_with_kbs",
        "ok:cancel_deprovision",
        "ok:advance",
        "ok:advance_to_next_due",
        "upgraded",
        "downgrade_applied",
        "deprovisioned_text_generation",
        "deprovisioned_embeddings_generation",
        "deprovisioned_knowledge_base",
        "deprovision_held_by_kb",
        "kb_cancel_blocked",
        "change_plan_over_downgrade",
        "deprovision_over_downgrade",
        "err:validation_failed",
        "err:insufficient_tokens",
        "err:already_deprovisioned",
        "err:deprovisioning_scheduled",
        "err:plan_unchanged",
        "err:plan_change_not_supported",
        "err:no_downgrade_scheduled",
        "err:no_deprovisioning_scheduled",
        "err:embeddings_in_use",
    ];
    for key in expected {
        assert!(total.get(key).copied().unwrap_or(0) >= 20, "{key} reached fewer than 20 times: {total:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Found bug (fixed): actions ignored a scheduled change that was already due

/// A text generation resource on the medium plan, provisioned at `anchor`.
fn medium_text(anchor: Instant) -> Resource {
    let f = form(
        ResourceType::TextGeneration,
        "Overdue".into(),
        ("eu-central-1", true, Some("claude-sonnet-4.6")),
        PlanSize::Medium,
        None,
    );
    let valid = f.validate(&Catalog::builtin()).unwrap_or_else(|e| panic!("{e:?}"));
    valid.into_resource(ResourceId("res-overdue".into()), CompanyId("co-1".into()), anchor)
}

fn instant(s: &str) -> Instant {
    genai_core::calendar::parse_instant(s).unwrap_or_else(|| panic!("bad instant {s}"))
}

/// SPEC §5: a scheduled change takes effect at its exact effective instant; after it, the
/// resource is no longer `plan_downgrade_scheduled`, so "cancel plan downgrade" no longer
/// applies, and neither does any other decision taken on the pre-downgrade state. Before the
/// fix, when the scheduler had not run yet, a due downgrade could still be cancelled: the
/// resource stayed on the larger plan and the release never happened.
#[test]
fn an_overdue_downgrade_cannot_be_cancelled() {
    let catalog = Catalog::builtin();
    let r = medium_text(instant("2026-02-12T08:00:00Z"));
    let c = r.change_plan(PlanSize::Small, &catalog, instant("2026-02-20T00:00:00Z")).unwrap_or_else(|e| panic!("{e}"));
    let r = Resource { version: 1, ..c.next };
    assert_eq!(r.scheduled.map(Scheduled::effective_at), Some(instant("2026-03-12T08:00:00Z")));
    // A day after the effective instant, before the scheduler has applied it.
    let late = instant("2026-03-13T08:00:00Z");
    assert!(r.take_effect(late).is_some(), "the downgrade is due");
    for refused in [r.change_plan(PlanSize::Large, &catalog, late).err(), r.deprovision(&[], late).err()] {
        assert_eq!(refused.map(|e| e.code()), Some("scheduled_change_due"));
    }
    match r.cancel_downgrade(late) {
        Err(e) => assert!(["no_downgrade_scheduled", "scheduled_change_due"].contains(&e.code()), "{e}"),
        Ok(c) => assert_eq!(
            (c.next.plan, c.next.cloud_tokens),
            (PlanSize::Small, CloudTokens(30)),
            "cancelled a downgrade that had already taken effect: still {:?} for {} tokens",
            c.next.plan,
            c.next.cloud_tokens
        ),
    }
}

/// The same for deprovisioning: once the effective instant has passed, the resource is
/// deprovisioned (terminal) whether or not the scheduler has written it yet; cancelling must not
/// bring it back.
#[test]
fn an_overdue_deprovisioning_cannot_be_cancelled() {
    let r = medium_text(instant("2026-02-12T08:00:00Z"));
    let c = r.deprovision(&[], instant("2026-02-20T00:00:00Z")).unwrap_or_else(|e| panic!("{e}"));
    let r = Resource { version: 1, ..c.next };
    let late = instant("2026-03-12T08:00:00.001Z");
    assert!(r.take_effect(late).is_some(), "the deprovisioning is due");
    match r.cancel_deprovision(None, late) {
        Err(e) => assert!(["already_deprovisioned", "scheduled_change_due"].contains(&e.code()), "{e}"),
        Ok(c) => {
            panic!("a resource due for deprovisioning at 2026-03-12T08:00Z came back at {late}: {:?}", c.next.status)
        }
    }
}
