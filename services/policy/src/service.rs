//! The authorization decision (docs/behaviour.md#effective-access, #authorization-of-a-request) and team settings.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use common::access::{Grant, Scope, TeamRole};
use common::bus::{Change, ChangeBus, announce};
use common::cache::{Found, LookupResult, NoticeCache};
use common::db::{Backend, OpenError};
use common::{Error, Result};
use futures::future::join_all;
use tracing::Instrument as _;

use crate::limiter::{Budget, Exceeded, Limiter, RateDecision, Takes};
use crate::plans::{ApiKeyPolicy, Catalogue, Limits, Overrides, Plan, TeamSettings};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    ApiPaidPlanRequired,
    InsufficientScope,
    Forbidden,
    KeyPolicyForbids,
    RateLimitExceeded,
    MonthlyLimitExceeded,
    IpNotAllowed,
}

/// A refusal and the rule behind it, in words safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub message: String,
}

fn deny(reason: DenyReason, message: impl Into<String>) -> Denial {
    Denial { reason, message: message.into() }
}

pub struct Request {
    pub key_id: String,
    pub grant: Grant,
    /// The owner's memberships among the key's teams, as identity saw them just now.
    pub teams: Vec<TeamRole>,
    pub scope: Scope,
    pub resource_team: Option<String>,
    /// The key's owner, whose monthly quota the request draws on.
    pub user_id: String,
    /// The client's address is outside the key's allowlist (the gateway knows the address).
    pub address_refused: bool,
    /// Decided as any other, taking nothing (`AuthorizeRequest.takes_nothing`).
    pub takes_nothing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub denial: Option<Denial>,
    pub reachable_team_ids: Vec<String>,
    pub plan: Plan,
    /// The limits that apply, once the plan allows API access.
    pub limits: Option<Limits>,
    pub rate: Option<RateDecision>,
    /// When the read of the team settings the decision used began: a cached read may be up to
    /// a second old, and a refusal repeated from it must not outlive that second.
    pub settings_read: Instant,
}

/// A decision made up to the limiter: what it still has to draw on, and the answer so far.
pub struct Prepared {
    req: Request,
    auth: Authorization,
    draw: Draw,
}

enum Draw {
    /// Refused before the limiter (by a rule, or without API access): the budget's state,
    /// taking nothing.
    Peek(Limits),
    /// Refused by the limits if they are used up, as a take would be, but taking nothing: the
    /// request is refused for its input anyway.
    Check(Limits),
    /// A slot and a request of the month, or a refusal by either.
    Take(Limits),
}

impl Prepared {
    fn budget(&self, limits: Limits) -> Budget<'_> {
        Budget {
            key: &self.req.key_id,
            per_minute: limits.requests_per_minute,
            user: &self.req.user_id,
            per_month: limits.requests_per_month,
        }
    }

    /// The answer, with the limiter's decision.
    fn conclude(self, rate: RateDecision) -> Authorization {
        let mut auth = self.auth;
        if matches!(self.draw, Draw::Take(_) | Draw::Check(_)) {
            let retry_in = rate.retry_after_ms().div_ceil(1000);
            auth.denial = match rate.exceeded {
                None => None,
                Some(Exceeded::Minute) => Some(deny(
                    DenyReason::RateLimitExceeded,
                    format!("rate limit of {} requests per minute exceeded; retry in {retry_in} s", rate.limit),
                )),
                Some(Exceeded::Month) => Some(deny(
                    DenyReason::MonthlyLimitExceeded,
                    format!("monthly quota of {} requests used up; it resets in {retry_in} s", rate.month_limit),
                )),
            };
        }
        auth.rate = Some(rate);
        auth
    }
}

/// One call to the limiter for decisions made together: a peek for one, or the takes of those
/// that draw on one user's month, in the order asked.
struct LimiterCall<'a> {
    draws: Draws<'a>,
    /// The span of the first decision, which the call continues.
    span: &'a tracing::Span,
    /// The decisions it is for, by position.
    members: Vec<usize>,
}

enum Draws<'a> {
    Peek(Budget<'a>),
    Take(Takes<'a>),
}

/// Adds a take to the call of its user's month, or gives it back when there is none yet.
fn join<'c, 'a>(
    calls: &'c mut [LimiterCall<'a>],
    mut budget: Budget<'a>,
) -> Result<&'c mut LimiterCall<'a>, Budget<'a>> {
    for call in calls.iter_mut() {
        if let Draws::Take(takes) = &mut call.draws {
            match takes.push(budget) {
                Ok(()) => return Ok(call),
                Err(other) => budget = other,
            }
        }
    }
    Err(budget)
}

/// How many users one usage read may name.
const MAX_USAGE_USERS: usize = 1000;

/// What one user has used of the quotas so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUsage {
    pub user_id: String,
    pub requests_this_month: u64,
    pub mcp_calls_today: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub users: Vec<UserUsage>,
    /// Start of the next UTC month and of the next UTC day (unix ms).
    pub month_reset_at_ms: i64,
    pub day_reset_at_ms: i64,
}

#[derive(Clone)]
pub struct Policy {
    store: Store,
    catalogue: Arc<Catalogue>,
    limiter: Arc<dyn Limiter>,
    /// Where plan and key-policy changes are announced (gateways drop cached refusals).
    changes: Option<Arc<dyn ChangeBus>>,
    /// Team settings for decisions, evicted by `Team` notices; none without a bus to hear them.
    settings: Option<Arc<NoticeCache<TeamSettings>>>,
}

/// Teams whose settings one policy replica keeps for its decisions: those of the keys used in
/// the last second (README, "API keys, access and limits"), a few hundred bytes each.
const CACHED_TEAMS: usize = 10_000;

/// Counts a lookup of team settings for a decision by its result, in
/// `zenovay.settings_cache.lookups`; the counter is made on first use, after telemetry is set up.
fn settings_lookup(result: LookupResult) {
    static LOOKUPS: OnceLock<telemetry::Tally> = OnceLock::new();
    LOOKUPS
        .get_or_init(|| {
            let meter = opentelemetry::global::meter("zenovay-policy");
            let counter = meter
                .u64_observable_counter("zenovay.settings_cache.lookups")
                .with_description("Team-settings cache lookups");
            telemetry::Tally::build(counter, "result", LookupResult::NAMES)
        })
        .add(result.name());
}

fn evicts(change: &Change, team_id: &str, _: &TeamSettings) -> bool {
    matches!(change, Change::Team(changed) if changed == team_id)
}

/// How often the in-process limiter's state is kept while it changes: a process killed outright
/// forgets at most this much of it (README, "API keys, access and limits").
const KEEP_LIMITER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes back the in-process limiter's kept state, if any. A state that cannot be read is
/// logged and left: the limiter then starts empty rather than the service not at all.
async fn restore_limiter(store: &Store, limiter: &dyn Limiter) {
    let kept = match store.limiter_state().await {
        Ok(Some(text)) => serde_json::from_str(&text).map_err(|e| e.to_string()),
        Ok(None) => return,
        Err(e) => Err(e.to_string()),
    };
    match kept {
        Ok(kept) => limiter.restore(kept),
        Err(error) => tracing::warn!(%error, "could not read the limiter's kept state; it starts empty"),
    }
}

/// Saves the limiter's state unless it is still `saved`'s generation; the generation saved.
async fn keep_limiter(store: &Store, limiter: &dyn Limiter, saved: u64) -> u64 {
    let Some((generation, kept)) = limiter.kept_since(saved) else { return saved };
    let text = serde_json::to_string(&kept).expect("the kept state is plain data");
    match store.save_limiter_state(&text).await {
        Ok(()) => generation,
        Err(e) => {
            tracing::warn!(error = %e, "could not keep the limiter's state; tried again in a second");
            saved
        }
    }
}

/// Keeps the limiter's state every [`KEEP_LIMITER_EVERY`] while it changes, until the limiter is
/// dropped.
fn spawn_limiter_keeper(store: Store, limiter: &Arc<dyn Limiter>) {
    let limiter = Arc::downgrade(limiter);
    tokio::spawn(async move {
        let mut saved = 0;
        loop {
            tokio::time::sleep(KEEP_LIMITER_EVERY).await;
            let Some(limiter) = limiter.upgrade() else { return };
            saved = keep_limiter(&store, limiter.as_ref(), saved).await;
        }
    });
}

impl Policy {
    pub async fn open(
        backend: &Backend,
        catalogue: Catalogue,
        limiter: Arc<dyn Limiter>,
        changes: Option<Arc<dyn ChangeBus>>,
    ) -> Result<Policy, OpenError> {
        let settings = changes.as_deref().map(|bus| NoticeCache::follow(bus, CACHED_TEAMS, evicts));
        let store = Store::open(backend).await?;
        restore_limiter(&store, limiter.as_ref()).await;
        spawn_limiter_keeper(store.clone(), &limiter);
        Ok(Policy { store, catalogue: Arc::new(catalogue), limiter, changes, settings })
    }

    /// Keeps the in-process limiter's state now, if it changed since the start: at shutdown.
    pub async fn keep_limiter(&self) {
        keep_limiter(&self.store, self.limiter.as_ref(), 0).await;
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn limits(&self, settings: &TeamSettings) -> Limits {
        self.catalogue.limits(settings.plan, &settings.overrides)
    }

    pub async fn settings(&self, team_ids: &[String]) -> Result<Vec<TeamSettings>> {
        self.store.settings(team_ids).await
    }

    pub async fn set_plan(&self, team_id: &str, plan: Plan, overrides: Overrides) -> Result<TeamSettings> {
        self.store.set_plan(team_id, plan, &overrides).await?;
        self.changed(team_id).await;
        self.one(team_id).await
    }

    pub async fn set_api_key_policy(&self, team_id: &str, policy: ApiKeyPolicy) -> Result<TeamSettings> {
        self.store.set_api_key_policy(team_id, policy).await?;
        self.changed(team_id).await;
        self.one(team_id).await
    }

    /// Tells every replica, this one first, that the team's settings changed.
    async fn changed(&self, team_id: &str) {
        if let Some(cache) = &self.settings {
            cache.forget(Change::Team(team_id.to_owned()));
        }
        announce(self.changes.as_ref(), Change::Team(team_id.to_owned())).await;
    }

    /// Settings for a decision, and when their oldest read began: from the cache when it holds
    /// them all, else from the store. Reads that answer people (settings pages, key creation)
    /// go to the store.
    async fn decision_settings(&self, team_ids: &[String]) -> Result<Found<TeamSettings>> {
        let read = |team_ids: Vec<String>| {
            let store = self.store.clone();
            async move { Ok(store.settings(&team_ids).await?.into_iter().map(|s| (s.team_id.clone(), s)).collect()) }
        };
        NoticeCache::read_through(self.settings.as_ref(), team_ids, settings_lookup, read).await
    }

    async fn one(&self, team_id: &str) -> Result<TeamSettings> {
        let mut all = self.store.settings(&[team_id.to_owned()]).await?;
        Ok(all.remove(0))
    }

    /// The teams among `teams` whose key policy admits their member now, with their settings,
    /// and when the read of the oldest of those settings began.
    async fn reachable<'a>(&self, teams: &'a [TeamRole]) -> Result<(Vec<(&'a TeamRole, TeamSettings)>, Instant)> {
        let ids: Vec<String> = teams.iter().map(|t| t.team_id.clone()).collect();
        let Found { values, since } = self.decision_settings(&ids).await?;
        let admitted = teams.iter().zip(values).filter(|(team, settings)| settings.api_key_policy.allows(team.role));
        Ok((admitted.collect(), since))
    }

    /// Whether this user may create a key with this grant over these teams (docs/behaviour.md#api-keys).
    /// `selected` is false for an `all` key, whose teams are every current membership.
    pub async fn check_key_creation(
        &self,
        grant: &Grant,
        teams: &[TeamRole],
        selected: bool,
    ) -> Result<Option<Denial>> {
        if selected
            && grant.names(Scope::Admin)
            && let Some(team) = teams.iter().find(|t| !t.role.is_admin())
        {
            return Ok(Some(deny(
                DenyReason::Forbidden,
                format!(
                    "admin scope can only target teams where you are owner or admin; you are a member of team {}",
                    team.team_id
                ),
            )));
        }
        let ids: Vec<String> = teams.iter().map(|t| t.team_id.clone()).collect();
        let settings = self.store.settings(&ids).await?;
        if selected && let Some((team, s)) = teams.iter().zip(&settings).find(|(t, s)| !s.api_key_policy.allows(t.role))
        {
            return Ok(Some(deny(
                DenyReason::KeyPolicyForbids,
                format!(
                    "the API-key policy of team {} ({}) does not let you create keys for it",
                    team.team_id,
                    s.api_key_policy.as_str()
                ),
            )));
        }
        let paid =
            teams.iter().zip(&settings).any(|(t, s)| s.api_key_policy.allows(t.role) && self.limits(s).api_access);
        if !paid {
            return Ok(Some(deny(
                DenyReason::ApiPaidPlanRequired,
                "API keys need a paid plan (pro, scale or enterprise) on at least one team the key would reach",
            )));
        }
        Ok(None)
    }

    /// The decision for one API request: rules first, then one slot of the per-minute limit and
    /// one request of the monthly quota, so that a refused request costs nothing. Once the plan
    /// is known every decision carries the budget's state, refusals included.
    pub async fn authorize(&self, req: Request) -> Result<Authorization> {
        let prepared = self.prepare(req).await?;
        let rate = match prepared.draw {
            Draw::Peek(limits) | Draw::Check(limits) => self.limiter.peek(&prepared.budget(limits)).await?,
            Draw::Take(limits) => self.limiter.acquire(&prepared.budget(limits)).await?,
        };
        Ok(prepared.conclude(rate))
    }

    /// Decisions for requests asked together, each made as [`Policy::authorize`] makes it alone
    /// and answered in the order asked. Requests that take from one user's month (through any of
    /// their keys, under the same monthly limit) take from the limiter in one call, in the order
    /// asked, as they would one after another. The limiter is asked once every decision is
    /// prepared (team settings read), so that one month's takes are known together. Each
    /// decision comes with its span, which its call to the limiter continues; a call for several
    /// is a child of the first one's.
    pub async fn authorize_together(
        &self,
        decisions: Vec<(Result<Prepared>, tracing::Span)>,
    ) -> Vec<Result<Authorization>> {
        let (prepared, spans): (Vec<Result<Prepared>>, Vec<tracing::Span>) = decisions.into_iter().unzip();
        // What each draws on: a peek alone, takes from one user's month together.
        let mut calls: Vec<LimiterCall<'_>> = Vec::with_capacity(prepared.len());
        for (i, (p, span)) in prepared.iter().zip(&spans).enumerate() {
            let Ok(p) = p else { continue };
            let new_call = |draws| LimiterCall { draws, span, members: vec![i] };
            match p.draw {
                Draw::Peek(limits) | Draw::Check(limits) => calls.push(new_call(Draws::Peek(p.budget(limits)))),
                Draw::Take(limits) => match join(&mut calls, p.budget(limits)) {
                    Ok(call) => call.members.push(i),
                    Err(budget) => calls.push(new_call(Draws::Take(Takes::of(budget)))),
                },
            }
        }
        let drawn = calls.iter().map(|call| {
            let draw = async move {
                match &call.draws {
                    Draws::Take(takes) => self.limiter.acquire_many(takes).await,
                    Draws::Peek(budget) => self.limiter.peek(budget).await.map(|rate| vec![rate]),
                }
            };
            draw.instrument(call.span.clone())
        });
        let mut rates: Vec<Option<Result<RateDecision>>> = (0..prepared.len()).map(|_| None).collect();
        for (call, drawn) in calls.iter().zip(join_all(drawn).await) {
            match drawn {
                Ok(drawn) => call.members.iter().zip(drawn).for_each(|(i, rate)| rates[*i] = Some(Ok(rate))),
                Err(e) => call.members.iter().for_each(|i| rates[*i] = Some(Err(e.clone()))),
            }
        }
        prepared
            .into_iter()
            .zip(rates)
            .map(|(p, rate)| Ok(p?.conclude(rate.ok_or_else(|| Error::internal("a decision drew nothing"))??)))
            .collect()
    }

    /// Everything a decision needs but the limiter: the teams, the plan and the rules.
    pub async fn prepare(&self, req: Request) -> Result<Prepared> {
        let (reachable, settings_read) = self.reachable(&req.teams).await?;
        let plan = reachable.iter().map(|(_, s)| s.plan).max().unwrap_or(Plan::Free);
        let mut auth = Authorization {
            denial: None,
            reachable_team_ids: reachable.iter().map(|(t, _)| t.team_id.clone()).collect(),
            plan,
            limits: None,
            rate: None,
            settings_read,
        };
        // The reachable teams' highest plan applies (docs/behaviour.md#plans-limits-and-quotas), as its team's override
        // sets it; several teams on that plan give the most generous of their limits. A plan
        // catalogue may deny a higher plan API access: the highest plan with it applies then,
        // as key creation asks only for one such team.
        let with_access: Vec<(Plan, Limits)> =
            reachable.iter().map(|(_, s)| (s.plan, self.limits(s))).filter(|(_, l)| l.api_access).collect();
        let top = with_access.iter().map(|(plan, _)| *plan).max();
        let on_plan = with_access.into_iter().filter(|(plan, _)| Some(*plan) == top);
        let limits = on_plan.map(|(_, l)| l).reduce(|a, b| Limits {
            api_access: true,
            requests_per_minute: a.requests_per_minute.max(b.requests_per_minute),
            requests_per_month: a.requests_per_month.max(b.requests_per_month),
            mcp_calls_per_day: a.mcp_calls_per_day.max(b.mcp_calls_per_day),
        });
        let Some(limits) = limits else {
            let excluded_by_policy = reachable.is_empty() && !req.teams.is_empty();
            auth.denial = Some(if req.address_refused {
                address_denial()
            } else if excluded_by_policy {
                deny(DenyReason::Forbidden, "the API-key policy of every team this key selects now excludes you")
            } else {
                deny(
                    DenyReason::ApiPaidPlanRequired,
                    "API access needs a paid plan (pro, scale or enterprise) on a team this key reaches",
                )
            });
            // Answers to verified keys carry a budget (docs/behaviour.md#plans-limits-and-quotas): without API access
            // that is no request at all, beside what the user used this month through others.
            let none =
                Limits { api_access: false, requests_per_minute: 0, requests_per_month: 0, mcp_calls_per_day: 0 };
            return Ok(Prepared { req, auth, draw: Draw::Peek(none) });
        };
        auth.limits = Some(limits);
        if req.scope == Scope::Admin {
            auth.reachable_team_ids =
                reachable.iter().filter(|(t, _)| t.role.is_admin()).map(|(t, _)| t.team_id.clone()).collect();
        }
        auth.denial = if req.address_refused {
            Some(address_denial())
        } else {
            rule_denial(&req, &reachable, &auth.reachable_team_ids)
        };
        let draw = match (&auth.denial, req.takes_nothing) {
            (Some(_), _) => Draw::Peek(limits),
            (None, true) => Draw::Check(limits),
            (None, false) => Draw::Take(limits),
        };
        Ok(Prepared { req, auth, draw })
    }

    /// Counts one MCP tool call of `user_id` against the daily quota of the plan of `team_id`,
    /// the team their MCP connection reaches.
    pub async fn charge_mcp_call(&self, user_id: &str, team_id: &str) -> Result<crate::limiter::DailyDecision> {
        let limits = self.limits(&self.one(team_id).await?);
        self.limiter.take_daily(user_id, limits.mcp_calls_per_day).await
    }

    /// Gives back an MCP tool call counted on the day that resets at `reset_at_ms`.
    pub async fn give_back_mcp_call(&self, user_id: &str, reset_at_ms: i64) -> Result<()> {
        self.limiter.give_back_daily(user_id, reset_at_ms).await
    }

    /// Each user's requests this month and MCP tool calls today, taking nothing: a budget of
    /// none only reads the counters.
    pub async fn usage(&self, user_ids: &[String]) -> Result<Usage> {
        if user_ids.len() > MAX_USAGE_USERS {
            return Err(Error::validation(format!("user_ids: at most {MAX_USAGE_USERS}")));
        }
        let read = user_ids.iter().map(|user| async move {
            let none = Budget { key: "", per_minute: 0, user, per_month: 0 };
            let (month, day) = tokio::try_join!(self.limiter.peek(&none), self.limiter.take_daily(user, 0))?;
            Ok::<_, common::Error>((month, day))
        });
        let read = futures::future::try_join_all(read).await?;
        let now = common::time::now_ms();
        let mut usage = Usage {
            users: Vec::with_capacity(read.len()),
            month_reset_at_ms: crate::limiter::Month::of(now).next_start_ms(),
            day_reset_at_ms: crate::limiter::day_of(now).1,
        };
        for (user, (month, day)) in user_ids.iter().zip(read) {
            usage.users.push(UserUsage {
                user_id: user.clone(),
                requests_this_month: month.month_used,
                mcp_calls_today: day.used,
            });
        }
        Ok(usage)
    }

    /// Gives back a slot taken by a request that was refused after all.
    pub async fn release(&self, key_id: &str, user_id: &str, slot: &str) -> Result<()> {
        // Limits do not matter to a release; the budget only names the counters.
        let budget = Budget { key: key_id, per_minute: 0, user: user_id, per_month: 0 };
        self.limiter.release(&budget, slot).await
    }
}

/// A request from outside its key's allowlist, refused before any other rule
/// (docs/behaviour.md#authorization-of-a-request).
fn address_denial() -> Denial {
    deny(DenyReason::IpNotAllowed, "this API key may not be used from this address")
}

/// Scope and resource rules, once the plan allows API access.
fn rule_denial(req: &Request, reachable: &[(&TeamRole, TeamSettings)], scoped: &[String]) -> Option<Denial> {
    if !req.grant.allows(req.scope) {
        return Some(deny(DenyReason::InsufficientScope, format!("this key lacks the `{}` scope", req.scope)));
    }
    let team_id = req.resource_team.as_ref()?;
    if scoped.contains(team_id) {
        return None;
    }
    let message = if req.scope == Scope::Admin && reachable.iter().any(|(t, _)| &t.team_id == team_id) {
        "admin scope applies only to teams where you are owner or admin"
    } else {
        "this key cannot reach the team that owns this resource"
    };
    Some(deny(DenyReason::Forbidden, message))
}
