//! Conformance suites: the same tests against each implementation of a storage or limiter
//! trait — SQLite and PostgreSQL stores, in-memory and Redis limiters.

use std::collections::BTreeSet;
use std::sync::Arc;

use common::ErrorCode;
use common::access::{Grant, KeyTeams, Role, Scope};
use common::bus::{Change, ChangeBus, MemoryBus, Notice, RedisBus};
use common::db::Backend;
use common::redis_link::Target;
use gateway::apikey::ApiKeySecret;
use identity::service::NewApiKey;
use policy::limiter::{
    Budget, Exceeded, Limiter, ManualClock, MemoryLimiter, RateDecision, RedisLimiter, ResilientLimiter, Takes,
    WINDOW_MS,
};
use policy::plans::{ApiKeyPolicy, Overrides, Plan};

use crate::harness::{RedisCluster, TestDatabase, TestRedis, asked_period, on_each_backend};

#[tokio::test]
async fn identity_store_conforms() {
    on_each_backend(|backend| async move {
        let hasher = identity::KeyHasher::parse("1:conformance-secret-0123456789abcdef").unwrap();
        let identity = identity::Identity::open(&backend, hasher, None).await.unwrap();
        let (user, token) = identity.signup(" Ann@Example.COM ", "long enough", "Ann").await.unwrap();
        assert_eq!(user.email, "ann@example.com");
        let dup = identity.signup("ann@example.com", "long enough", "Ann").await.unwrap_err();
        assert_eq!(dup.code, ErrorCode::Conflict);
        assert_eq!(identity.authenticate_session(&token).await.unwrap(), user);
        identity.logout(&token).await.unwrap();
        assert_eq!(identity.authenticate_session(&token).await.unwrap_err().code, ErrorCode::Unauthorized);

        let personal = identity.list_teams(&user.id).await.unwrap();
        assert_eq!(personal.len(), 1);
        assert_eq!(personal[0].role, Role::Owner);
        let acme = identity.create_team(&user.id, "Acme").await.unwrap();
        assert_eq!(identity.list_teams(&user.id).await.unwrap().len(), 2);
        assert_eq!(identity.get_team(&acme.team.id).await.unwrap(), acme.team);

        let secret = ApiKeySecret::generate();
        let key = identity
            .create_api_key(NewApiKey {
                user_id: user.id.clone(),
                name: "ci".into(),
                grant: Grant::scopes([Scope::Read, Scope::Admin]).unwrap(),
                teams: KeyTeams::Only(BTreeSet::from([acme.team.id.clone()])),
                digest: secret.digest(),
                hint: secret.hint(),
                expires_at: None,
                allowed_ips: vec![],
            })
            .await
            .unwrap();
        let (found, teams) = identity.verify_api_key(&secret.digest()).await.unwrap();
        assert_eq!(
            (found.id.as_str(), found.grant.clone(), found.teams.clone()),
            (key.id.as_str(), key.grant.clone(), key.teams.clone())
        );
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0].team_id, acme.team.id);
        assert_eq!(identity.list_api_keys(&user.id).await.unwrap().len(), 1);

        let other = ApiKeySecret::generate();
        assert_eq!(identity.verify_api_key(&other.digest()).await.unwrap_err().code, ErrorCode::Unauthorized);
        let revoked = identity.revoke_api_key(&user.id, &key.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(revoked.revoked_reason.as_deref(), Some("user"));
        assert_eq!(identity.verify_api_key(&secret.digest()).await.unwrap_err().code, ErrorCode::Unauthorized);
        assert_eq!(identity.revoke_api_key("someone-else", &key.id).await.unwrap_err().code, ErrorCode::NotFound);
    })
    .await;
}

#[tokio::test]
async fn policy_store_conforms() {
    on_each_backend(|backend| async move {
        let policy =
            policy::Policy::open(&backend, Default::default(), Arc::new(MemoryLimiter::default()), None).await.unwrap();
        let ids = vec!["t1".to_owned(), "t2".to_owned()];
        let defaults = policy.settings(&ids).await.unwrap();
        assert_eq!(
            defaults.iter().map(|s| (s.plan, s.api_key_policy)).collect::<Vec<_>>(),
            [(Plan::Free, ApiKeyPolicy::AllMembers); 2]
        );

        let overrides = Overrides { requests_per_minute: Some(7), ..Overrides::default() };
        policy.set_plan("t1", Plan::Scale, overrides).await.unwrap();
        let set = policy.set_api_key_policy("t1", ApiKeyPolicy::AdminsOnly).await.unwrap();
        assert_eq!((set.plan, set.api_key_policy, set.overrides), (Plan::Scale, ApiKeyPolicy::AdminsOnly, overrides));
        assert_eq!(policy.limits(&set).requests_per_minute, 7);
        assert_eq!(policy.limits(&set).requests_per_month, 100_000);
        let set = policy.set_plan("t1", Plan::Pro, Overrides::default()).await.unwrap();
        assert_eq!(
            (set.plan, set.api_key_policy),
            (Plan::Pro, ApiKeyPolicy::AdminsOnly),
            "a plan change keeps the key policy"
        );
        let both = policy.settings(&ids).await.unwrap();
        assert_eq!((both[0].plan, both[1].plan), (Plan::Pro, Plan::Free));
        let twice = policy.settings(&["t1".to_owned(), "t1".to_owned()]).await.unwrap();
        assert_eq!((twice[0].plan, twice[1].plan), (Plan::Pro, Plan::Pro), "an id asked twice");
    })
    .await;
}

/// What a gateway asks policy for key `k1` of user `u1`, full access, owner of `team`: a read.
fn owner_read(team: &str) -> proto::policy::v1::AuthorizeRequest {
    use proto::identity::v1 as idpb;
    proto::policy::v1::AuthorizeRequest {
        key_id: "k1".into(),
        grant: Some(idpb::KeyGrant { full: true, scopes: vec![] }),
        teams: vec![idpb::TeamRole { team_id: team.into(), role: idpb::Role::Owner as i32 }],
        required_scope: idpb::Scope::Read as i32,
        resource_team_id: None,
        user_id: "u1".into(),
        address_refused: false,
        takes_nothing: false,
    }
}

/// A decision made on team settings policy kept says how long ago it read them, so that a
/// gateway repeating its refusal stops within a second of that read; a change read afresh
/// starts again from nothing.
#[tokio::test]
async fn a_decision_says_how_old_the_team_settings_it_used_are() {
    use proto::policy::v1::policy_service_server::PolicyService;

    on_each_backend(|backend| async move {
        let bus: Arc<dyn ChangeBus> = Arc::new(MemoryBus::default());
        let limiter = Arc::new(MemoryLimiter::default());
        let policy = policy::Policy::open(&backend, Default::default(), limiter, Some(bus)).await.unwrap();
        policy.set_plan("t1", Plan::Pro, Overrides::default()).await.unwrap();
        let age = || async {
            PolicyService::authorize(&policy, tonic::Request::new(owner_read("t1")))
                .await
                .unwrap()
                .into_inner()
                .settings_age_ms
        };
        // The cache trusts the bus once its subscription is confirmed.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        age().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let kept = age().await;
        assert!((300..1000).contains(&kept), "settings kept 300 ms and more: {kept} ms");
        policy.set_plan("t1", Plan::Scale, Overrides::default()).await.unwrap();
        assert!(age().await < 300, "read again after the change");
    })
    .await;
}

/// `AuthorizeMany` makes each decision as `Authorize` does and answers them in the order asked:
/// a per-minute limit of 2 lets the first two of three calls of one key through, as it would
/// three calls one after another (the calls of one user's keys take together), beside
/// another key of the user and a call refused by a rule; a call that cannot be decided fails alone,
/// with the error table's code; more than 256 calls are refused whole. With the in-process
/// limiter and with Redis.
#[tokio::test]
async fn many_decisions_in_one_call_are_each_made_as_one_alone() {
    on_each_backend(|backend| async move {
        let redis = TestRedis::create().await;
        let shared =
            RedisLimiter::new(&Target::Single(redis.url.clone()), &redis.prefix, std::time::Duration::from_secs(2));
        let limiters: [Arc<dyn Limiter>; 2] = [Arc::new(MemoryLimiter::default()), Arc::new(shared.unwrap())];
        for limiter in limiters {
            many_decisions_in_one_call(&backend, limiter).await;
        }
    })
    .await;
}

/// A request from outside its key's allowlist is refused by policy with `IP_NOT_ALLOWED`, takes
/// nothing, and its answer carries the key's budget as it stands: on a paid plan and on a team
/// without API access alike.
#[tokio::test]
async fn a_request_from_a_refused_address_takes_nothing_and_reads_the_budget() {
    use proto::policy::v1 as popb;
    use proto::policy::v1::policy_service_server::PolicyService;

    on_each_backend(|backend| async move {
        let limiter = Arc::new(MemoryLimiter::default());
        let policy = policy::Policy::open(&backend, Default::default(), limiter, None).await.unwrap();
        policy.set_plan("t1", Plan::Pro, Overrides::default()).await.unwrap();
        let request = |team: &str| popb::AuthorizeRequest { address_refused: true, ..owner_read(team) };
        for team in ["t1", "t1", "free-team"] {
            let answer = PolicyService::authorize(&policy, tonic::Request::new(request(team))).await.unwrap();
            let answer = answer.into_inner();
            let decision = answer.decision.unwrap();
            assert_eq!((decision.allowed, decision.reason), (false, popb::DenyReason::IpNotAllowed as i32), "{team}");
            let rate = answer.rate_limit.unwrap();
            let expected = if team == "t1" { 30 } else { 0 };
            assert_eq!((rate.slot.as_str(), rate.remaining, rate.month_used), ("", expected, 0), "{team}");
        }
    })
    .await;
}

/// A request the gateway refuses for its input is decided taking nothing: allowed while the key
/// has a slot, leaving it there; refused for its limit once the key has none, as a take is.
#[tokio::test]
async fn a_decision_that_takes_nothing_leaves_the_slot_and_is_still_refused_by_the_limit() {
    use proto::policy::v1 as popb;
    use proto::policy::v1::policy_service_server::PolicyService;

    on_each_backend(|backend| async move {
        let limiter = Arc::new(MemoryLimiter::default());
        let policy = policy::Policy::open(&backend, Default::default(), limiter, None).await.unwrap();
        let one = Overrides { requests_per_minute: Some(1), ..Overrides::default() };
        policy.set_plan("t1", Plan::Pro, one).await.unwrap();
        let request = |takes_nothing: bool| popb::AuthorizeRequest { takes_nothing, ..owner_read("t1") };
        let policy = &policy;
        let decide = |takes_nothing| async move {
            let answer = PolicyService::authorize(policy, tonic::Request::new(request(takes_nothing))).await.unwrap();
            let answer = answer.into_inner();
            let (decision, rate) = (answer.decision.unwrap(), answer.rate_limit.unwrap());
            (decision.allowed, decision.reason, rate.remaining, rate.slot.is_empty())
        };
        let refused = popb::DenyReason::RateLimitExceeded as i32;
        assert_eq!(decide(true).await, (true, 0, 1, true), "allowed, the slot left");
        assert_eq!(decide(true).await, (true, 0, 1, true), "and again");
        assert_eq!(decide(false).await, (true, 0, 0, false), "the slot taken by a request that proceeds");
        assert_eq!(decide(true).await, (false, refused, 0, true), "refused for the limit, as a take is");
    })
    .await;
}

async fn many_decisions_in_one_call(backend: &Backend, limiter: Arc<dyn Limiter>) {
    use proto::identity::v1 as idpb;
    use proto::policy::v1 as popb;
    use proto::policy::v1::policy_service_server::PolicyService;

    let policy = policy::Policy::open(backend, Default::default(), limiter, None).await.unwrap();
    let two = Overrides { requests_per_minute: Some(2), ..Overrides::default() };
    policy.set_plan("t1", Plan::Pro, two).await.unwrap();
    let request = |key: &str, scope: idpb::Scope| popb::AuthorizeRequest {
        key_id: key.into(),
        required_scope: scope as i32,
        ..owner_read("t1")
    };
    let alone = PolicyService::authorize(&policy, tonic::Request::new(request("k0", idpb::Scope::Read))).await.unwrap();
    let elsewhere = popb::AuthorizeRequest { resource_team_id: Some("t9".into()), ..request("k1", idpb::Scope::Read) };
    let calls = [
        request("k1", idpb::Scope::Read),
        request("k1", idpb::Scope::Unspecified),
        request("k3", idpb::Scope::Read),
        elsewhere,
        request("k1", idpb::Scope::Read),
        request("k1", idpb::Scope::Read),
    ]
    .into_iter()
    .map(|request| popb::AuthorizeCall { request: Some(request), ..Default::default() })
    .collect();
    let outcomes = policy
        .authorize_many(tonic::Request::new(popb::AuthorizeManyRequest { calls }))
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    let decided: Vec<Option<(bool, i32)>> = outcomes
        .iter()
        .map(|o| o.response.as_ref().and_then(|r| r.decision.as_ref()).map(|d| (d.allowed, d.reason)))
        .collect();
    let refused = |reason: popb::DenyReason| Some((false, reason as i32));
    let allowed = Some((true, popb::DenyReason::Unspecified as i32));
    assert_eq!(
        decided,
        [
            allowed,
            None,
            allowed,
            refused(popb::DenyReason::Forbidden),
            allowed,
            refused(popb::DenyReason::RateLimitExceeded)
        ],
        "{outcomes:?}"
    );
    assert_eq!(
        (outcomes[1].error_code.as_str(), outcomes[1].error_message.as_str()),
        ("VALIDATION_ERROR", "scope is missing or unknown")
    );
    let remaining: Vec<Option<u32>> =
        outcomes.iter().map(|o| o.response.as_ref()?.rate_limit.as_ref().map(|l| l.remaining)).collect();
    assert_eq!([remaining[0], remaining[2], remaining[4], remaining[5]], [Some(1), Some(1), Some(0), Some(0)]);
    assert!(remaining[3].is_some(), "a refusal by a rule carries the budget's state");
    // A refusal by a rule (the fourth) reads the budget beside the takes of its call, so what it
    // sees of them is not in any order.
    let month_used: Vec<Option<u64>> =
        outcomes.iter().map(|o| o.response.as_ref()?.rate_limit.as_ref().map(|l| l.month_used)).collect();
    assert_eq!(
        [month_used[0], month_used[1], month_used[2], month_used[4], month_used[5]],
        [Some(2), None, Some(3), Some(4), Some(4)],
        "the user's month counts the calls of both keys in order, after the first call made alone"
    );
    let first_alone = alone.get_ref().rate_limit.as_ref().map(|l| (l.limit, l.remaining));
    assert_eq!(first_alone, Some((2, 1)), "another key's first request, made alone");

    let many =
        (0..257).map(|_| popb::AuthorizeCall { request: Some(request("k2", idpb::Scope::Read)), ..Default::default() });
    let refused =
        policy.authorize_many(tonic::Request::new(popb::AuthorizeManyRequest { calls: many.collect() })).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn analytics_store_conforms() {
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "Example.com", "Example", None).await.unwrap();
        assert_eq!((site.domain.as_str(), site.timezone.as_str()), ("example.com", "UTC"));
        let dup = analytics.create_website("t2", "http://example.com/", "Again", None).await.unwrap_err();
        assert_eq!(dup.code, ErrorCode::Conflict);
        analytics.create_website("t2", "other.example", "Other", Some("Asia/Tokyo")).await.unwrap();
        assert_eq!(analytics.list_websites(&["t1".into()]).await.unwrap(), vec![site.clone()]);
        assert_eq!(analytics.list_websites(&["t1".into(), "t2".into()]).await.unwrap().len(), 2);
        let changes =
            analytics::service::WebsiteChanges { name: Some("Renamed".into()), timezone: Some("Europe/Paris".into()) };
        let updated = analytics.update_website(&site.id, changes).await.unwrap();
        assert_eq!(analytics.get_website(&site.id).await.unwrap(), updated);
        analytics.delete_website(&site.id).await.unwrap();
        assert_eq!(analytics.get_website(&site.id).await.unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(analytics.delete_website(&site.id).await.unwrap_err().code, ErrorCode::NotFound);
    })
    .await;
}

fn budget(key: &str, per_minute: u32, per_month: u64) -> Budget<'_> {
    Budget { key, per_minute, user: "user-of-the-key", per_month }
}

/// `n` requests of one budget, to decide together.
fn times(budget: Budget<'_>, n: usize) -> Takes<'_> {
    in_one_call(&vec![budget; n])
}

/// Requests of one user's month, to decide together in this order.
fn in_one_call<'a>(budgets: &[Budget<'a>]) -> Takes<'a> {
    let mut takes = Takes::of(budgets[0]);
    for budget in &budgets[1..] {
        takes.push(*budget).expect("the same user's month");
    }
    takes
}

/// What every limiter must do, whatever its clock.
async fn limiter_conforms(limiter: Arc<dyn Limiter>) {
    for expected_remaining in (0..5).rev() {
        let d = limiter.acquire(&budget("k1", 5, 1000)).await.unwrap();
        assert!(d.allowed());
        assert_eq!((d.limit, d.remaining), (5, expected_remaining));
        assert!(d.reset_at_ms > d.now_ms && d.reset_at_ms <= d.now_ms + WINDOW_MS);
        assert!(d.slot.is_some());
    }
    let denied = limiter.acquire(&budget("k1", 5, 1000)).await.unwrap();
    assert_eq!(denied.exceeded, Some(Exceeded::Minute));
    assert_eq!((denied.remaining, denied.slot.as_ref()), (0, None));
    assert!(denied.retry_after_ms() > 0 && denied.retry_after_ms() <= WINDOW_MS as u64);
    let peeked = limiter.peek(&budget("k1", 5, 1000)).await.unwrap();
    assert_eq!((peeked.remaining, peeked.month_used), (0, 5), "a peek takes nothing and sees everything");

    // Keys are independent; a lower limit applies to the next call.
    assert!(limiter.acquire(&budget("k2", 5, 1000)).await.unwrap().allowed());
    assert!(limiter.acquire(&budget("k2", 5, 1000)).await.unwrap().allowed());
    assert!(!limiter.acquire(&budget("k2", 2, 1000)).await.unwrap().allowed());
    let third = limiter.acquire(&budget("k2", 3, 1000)).await.unwrap();
    assert!(third.allowed());

    // A released slot is as if never taken, in the window and in the month.
    let before = limiter.peek(&budget("k2", 3, 1000)).await.unwrap();
    limiter.release(&budget("k2", 3, 1000), third.slot.as_deref().unwrap()).await.unwrap();
    let after = limiter.peek(&budget("k2", 3, 1000)).await.unwrap();
    assert_eq!((after.remaining, after.month_used), (before.remaining + 1, before.month_used - 1));

    // The monthly quota is per user, across keys, and checked first.
    let month = |key| Budget { key, per_minute: 100, user: "frugal", per_month: 3 };
    for key in ["m1", "m2", "m3"] {
        assert!(limiter.acquire(&month(key)).await.unwrap().allowed());
    }
    let spent = limiter.acquire(&month("m4")).await.unwrap();
    assert_eq!(spent.exceeded, Some(Exceeded::Month));
    assert_eq!((spent.month_used, spent.month_limit), (3, 3));
    assert!(spent.retry_after_ms() > 0, "until the next month");
    assert_eq!(limiter.peek(&month("m4")).await.unwrap().remaining, 100, "a refusal takes no slot");

    // Requests of one budget decided in one call are decided as one after another: the first
    // take while the window has room, each its own slot, and the rest are refused.
    let together = limiter.acquire_many(&times(budget("k4", 3, 1000), 5)).await.unwrap();
    let seen: Vec<(bool, u32, bool)> = together.iter().map(|d| (d.allowed(), d.remaining, d.slot.is_some())).collect();
    assert_eq!(seen, [(true, 2, true), (true, 1, true), (true, 0, true), (false, 0, false), (false, 0, false)]);
    let slots: BTreeSet<&str> = together.iter().filter_map(|d| d.slot.as_deref()).collect();
    assert_eq!(slots.len(), 3, "{together:?}");
    let month_used: Vec<u64> = together.iter().map(|d| d.month_used - together[0].month_used).collect();
    assert_eq!(month_used, [0, 1, 2, 2, 2]);
    assert_eq!(together[3].exceeded, Some(Exceeded::Minute));
    let kept = limiter.peek(&budget("k4", 3, 1000)).await.unwrap();
    assert_eq!((kept.remaining, kept.month_used), (0, together[2].month_used), "the limiter kept what it answered");
    limiter.release(&budget("k4", 3, 1000), together[1].slot.as_deref().unwrap()).await.unwrap();
    let given_back = limiter.peek(&budget("k4", 3, 1000)).await.unwrap();
    assert_eq!(
        (given_back.remaining, given_back.month_used),
        (1, kept.month_used - 1),
        "a slot taken together gives back alone"
    );
    // The month runs out within a call: the window's room is not taken.
    let month = |key| Budget { key, per_minute: 100, user: "thrifty", per_month: 2 };
    let together = limiter.acquire_many(&times(month("m5"), 3)).await.unwrap();
    let seen: Vec<(Option<Exceeded>, u64)> = together.iter().map(|d| (d.exceeded, d.month_used)).collect();
    assert_eq!(seen, [(None, 1), (None, 2), (Some(Exceeded::Month), 2)]);
    let kept = limiter.peek(&month("m5")).await.unwrap();
    assert_eq!((kept.remaining, kept.month_used), (98, 2));
    // A call that finds the window partly filled: each decision's reset is the oldest slot's.
    let first = limiter.acquire(&budget("k6", 5, 1000)).await.unwrap();
    let after = limiter.acquire_many(&times(budget("k6", 5, 1000), 3)).await.unwrap();
    let seen: Vec<(u32, i64)> = after.iter().map(|d| (d.remaining, d.reset_at_ms)).collect();
    assert_eq!(seen, [(3, first.reset_at_ms), (2, first.reset_at_ms), (1, first.reset_at_ms)]);
    let busy = Budget { key: "k5", per_minute: 300, user: "busy", per_month: 1000 };
    let most = limiter.acquire_many(&times(busy, proto::policy::v1::MAX_AUTHORIZE_CALLS)).await.unwrap();
    let slots: BTreeSet<&str> = most.iter().filter_map(|d| d.slot.as_deref()).collect();
    assert_eq!((slots.len(), most.last().map(|d| d.remaining)), (256, Some(44)), "the most one call asks at once");
    let kept = limiter.peek(&busy).await.unwrap();
    assert_eq!((kept.remaining, kept.month_used), (44, 256));
    // Requests through several keys of one user, in one call: each key's window is its own,
    // the month is theirs together, and the month runs out within the call.
    let of = |key, per_minute| Budget { key, per_minute, user: "several", per_month: 5 };
    let asked = [of("s1", 2), of("s2", 9), of("s1", 2), of("s1", 2), of("s2", 9), of("s3", 9), of("s2", 9)];
    let decided = limiter.acquire_many(&in_one_call(&asked)).await.unwrap();
    let seen: Vec<(Option<Exceeded>, u32, u64)> =
        decided.iter().map(|d| (d.exceeded, d.remaining, d.month_used)).collect();
    let (minute, month) = (Some(Exceeded::Minute), Some(Exceeded::Month));
    assert_eq!(
        seen,
        [(None, 1, 1), (None, 8, 2), (None, 0, 3), (minute, 0, 3), (None, 7, 4), (None, 8, 5), (month, 7, 5)]
    );
    let slots: BTreeSet<&str> = decided.iter().filter_map(|d| d.slot.as_deref()).collect();
    assert_eq!(slots.len(), 5, "{decided:?}");
    let mut kept = Vec::new();
    for b in [of("s1", 2), of("s2", 9), of("s3", 9)] {
        let d = limiter.peek(&b).await.unwrap();
        kept.push((d.remaining, d.month_used));
    }
    assert_eq!(kept, [(0, 5), (7, 5), (8, 5)], "the limiter kept what it answered");
    limiter.release(&of("s2", 9), decided[4].slot.as_deref().unwrap()).await.unwrap();
    let given_back = limiter.peek(&of("s2", 9)).await.unwrap();
    assert_eq!((given_back.remaining, given_back.month_used), (8, 4), "one key's slot gives back alone");
    // One key under two limits in one call (its plan changed in between): each request is
    // decided under its own.
    let of = |per_minute| Budget { key: "s4", per_minute, user: "changed", per_month: 100 };
    let decided = limiter.acquire_many(&in_one_call(&[of(3), of(3), of(1)])).await.unwrap();
    let seen: Vec<(bool, u32, u32, u64)> =
        decided.iter().map(|d| (d.allowed(), d.limit, d.remaining, d.month_used)).collect();
    assert_eq!(seen, [(true, 3, 2, 1), (true, 3, 1, 2), (false, 1, 0, 2)]);
    // Any mix decided together answers as the same requests one after another, here on another
    // user whose counters start alike: windows partly filled, a month partly used that runs out,
    // a limit that rises and one that falls within the call.
    // (Key ids are unique to their user, as in the product: each user has keys of their own.)
    let names = |user: &str| ["x", "y", "z"].map(|key| format!("{user}-{key}"));
    let (alone_keys, together_keys) = (names("one-by-one"), names("in-one-call"));
    fn request<'a>(user: &'a str, keys: &'a [String; 3], (key, per_minute): (usize, u32)) -> Budget<'a> {
        Budget { key: &keys[key], per_minute, user, per_month: 8 }
    }
    for (user, keys) in [("one-by-one", &alone_keys), ("in-one-call", &together_keys)] {
        limiter.acquire(&request(user, keys, (0, 2))).await.unwrap();
        limiter.acquire(&request(user, keys, (1, 3))).await.unwrap();
    }
    let mix = [(0, 2), (1, 3), (0, 2), (0, 3), (2, 1), (1, 1), (0, 3), (2, 2), (1, 3), (0, 9)];
    let mut one_by_one = Vec::new();
    for asked in mix {
        one_by_one.push(limiter.acquire(&request("one-by-one", &alone_keys, asked)).await.unwrap());
    }
    let asked: Vec<Budget<'_>> = mix.iter().map(|asked| request("in-one-call", &together_keys, *asked)).collect();
    let in_one = limiter.acquire_many(&in_one_call(&asked)).await.unwrap();
    let answer = |d: &RateDecision| (d.exceeded, d.limit, d.remaining, d.month_used, d.slot.is_some());
    let expected: Vec<_> = one_by_one.iter().map(answer).collect();
    assert_eq!(in_one.iter().map(answer).collect::<Vec<_>>(), expected);
    let refusals: BTreeSet<String> = one_by_one.iter().filter_map(|d| d.exceeded).map(|e| format!("{e:?}")).collect();
    assert_eq!(refusals.len(), 2, "the mix meets both limits: {expected:?}");

    // The MCP daily quota: per user, counted until spent.
    for used in 1..=3 {
        let d = limiter.take_daily("mcp-user", 3).await.unwrap();
        assert_eq!((d.allowed, d.used, d.limit), (true, used, 3));
        assert!(d.reset_at_ms > common::time::now_ms());
    }
    let spent = limiter.take_daily("mcp-user", 3).await.unwrap();
    assert_eq!((spent.allowed, spent.used), (false, 3));
    assert!(limiter.take_daily("another-user", 3).await.unwrap().allowed);

    // Concurrent callers never get more than the limit together.
    let calls = (0..60).map(|_| {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.acquire(&budget("k3", 25, 1000)).await.unwrap().allowed() })
    });
    let allowed = futures::future::join_all(calls).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(allowed, 25);
}

#[tokio::test]
async fn memory_limiter_conforms() {
    limiter_conforms(Arc::new(MemoryLimiter::default())).await;
}

#[tokio::test]
async fn redis_limiter_conforms() {
    let redis = TestRedis::create().await;
    limiter_conforms(Arc::new(
        RedisLimiter::new(&Target::Single(redis.url.clone()), &redis.prefix, std::time::Duration::from_secs(2))
            .unwrap(),
    ))
    .await;
}

/// A month's count under the name releases before the user hash tag gave it is added to the
/// count under today's name, once however often it is carried over, and the old name goes.
#[tokio::test]
async fn a_months_count_kept_under_an_older_releases_name_is_carried_over_once() {
    let redis = TestRedis::create().await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (p, old_ann, old_bob) = (&redis.prefix, format!("mq:ann:{month}"), format!("mq:bob:{month}"));
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!("{p}{old_ann}"))
        .arg(15)
        .arg("PX")
        .arg(3_600_000)
        .ignore()
        .cmd("SET")
        .arg(format!("{p}{old_bob}"))
        .arg(3)
        .ignore()
        // Bob's count under today's name began when the new release started.
        .cmd("SET")
        .arg(format!("{p}mq:{{bob}}:{month}"))
        .arg(2)
        .arg("PX")
        .arg(7_200_000)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let limiter =
        RedisLimiter::new(&Target::Single(redis.url.clone()), &redis.prefix, std::time::Duration::from_secs(2))
            .unwrap();
    assert_eq!(limiter.fold_untagged_months().await.unwrap(), 2);
    assert_eq!(limiter.fold_untagged_months().await.unwrap(), 0, "carried over once");
    for (user, used) in [("ann", 15), ("bob", 5)] {
        let decision = limiter.peek(&Budget { key: "k", per_minute: 10, user, per_month: 20 }).await.unwrap();
        assert_eq!(decision.month_used, used, "{user}");
    }
    for old in [old_ann, old_bob] {
        let exists: bool = redis::cmd("EXISTS").arg(format!("{p}{old}")).query_async(&mut conn).await.unwrap();
        assert!(!exists, "{old} is gone");
    }
    let ttl = |user: &str| {
        let key = format!("{p}mq:{{{user}}}:{month}");
        let mut conn = conn.clone();
        async move { redis::cmd("PTTL").arg(key).query_async::<i64>(&mut conn).await.unwrap() }
    };
    assert!((3_000_000..=3_600_000).contains(&ttl("ann").await), "Ann's count keeps its old expiry");
    assert!(ttl("bob").await > 3_600_000, "Bob's keeps the expiry it had");
}

#[tokio::test]
async fn resilient_limiter_conforms() {
    let redis = TestRedis::create().await;
    let shared =
        RedisLimiter::new(&Target::Single(redis.url.clone()), &redis.prefix, std::time::Duration::from_secs(2))
            .unwrap();
    limiter_conforms(ResilientLimiter::new(shared)).await;
}

#[tokio::test]
async fn without_redis_decisions_made_together_are_made_in_process_one_after_another() {
    let limiter = without_redis();
    let b = budget("k", 2, 1000);
    open_the_breaker(&limiter, &b).await;
    let decisions = limiter.acquire_many(&times(b, 3)).await.unwrap();
    let local = |d: &policy::limiter::RateDecision| d.slot.as_deref().is_some_and(|s| s.starts_with("local:"));
    let seen: Vec<(bool, bool, bool)> = decisions.iter().map(|d| (d.allowed(), d.degraded, local(d))).collect();
    assert_eq!(seen, [(true, true, true), (true, true, true), (false, true, false)]);
    limiter.release(&b, decisions[0].slot.as_deref().unwrap()).await.unwrap();
    assert_eq!(limiter.peek(&b).await.unwrap().remaining, 1, "given back to the in-process limiter");
}

/// A resilient limiter whose Redis no one answers at.
fn without_redis() -> Arc<ResilientLimiter> {
    let nowhere = Target::Single("redis://127.0.0.1:1".into());
    ResilientLimiter::new(RedisLimiter::new(&nowhere, "zvtest:", std::time::Duration::from_millis(200)).unwrap())
}

/// Three calls in a row fail before the breaker opens, each refused as unavailable: a failed
/// call may have been a moment's delay, which no window but Redis's may answer.
async fn open_the_breaker(limiter: &ResilientLimiter, b: &Budget<'_>) {
    for _ in 0..3 {
        assert!(!limiter.is_degraded());
        let failed = limiter.acquire(b).await.unwrap_err();
        assert_eq!(failed.code, ErrorCode::ServiceUnavailable);
    }
    assert!(limiter.is_degraded());
}

#[tokio::test]
async fn a_failed_redis_call_before_the_breaker_opens_is_unavailable_and_takes_nothing() {
    let limiter = without_redis();
    let b = budget("k", 2, 1000);
    open_the_breaker(&limiter, &b).await;
    assert_eq!(limiter.peek(&b).await.unwrap().remaining, 2, "nothing was taken in-process before");
}

#[tokio::test]
async fn redis_limiter_conforms_on_a_redis_cluster() {
    let cluster = RedisCluster::start(0);
    limiter_conforms(Arc::new(
        RedisLimiter::new(&cluster_target(&cluster), "zvtest:", std::time::Duration::from_secs(2)).unwrap(),
    ))
    .await;
}

fn cluster_target(cluster: &RedisCluster) -> Target {
    Target::Cluster(cluster.seeds().split(',').map(str::to_owned).collect())
}

#[tokio::test]
async fn sliding_window_admits_at_most_the_limit_in_any_window() {
    let clock = ManualClock::at(1_000_000);
    let limiter = MemoryLimiter::with_clock(clock.clone());
    let b = budget("k", 3, 1_000_000);
    for _ in 0..3 {
        assert!(limiter.acquire(&b).await.unwrap().allowed());
        clock.advance(10_000);
    }
    // t = 30 s after the first: the window still holds three.
    let denied = limiter.acquire(&b).await.unwrap();
    assert!(!denied.allowed());
    assert_eq!(denied.retry_after_ms(), 30_000);
    clock.advance(29_999);
    assert!(!limiter.acquire(&b).await.unwrap().allowed(), "one millisecond early");
    clock.advance(1);
    assert!(limiter.acquire(&b).await.unwrap().allowed(), "the first request has left the window");
    assert!(!limiter.acquire(&b).await.unwrap().allowed());
    // A plan change applies to the next call: more room at once, less room at once.
    assert!(limiter.acquire(&budget("k", 4, 1_000_000)).await.unwrap().allowed());
    assert!(!limiter.acquire(&budget("k", 2, 1_000_000)).await.unwrap().allowed());

    // Across a boundary a fixed window would admit 2N; the log never does.
    let clock = ManualClock::at(0);
    let limiter = MemoryLimiter::with_clock(clock.clone());
    let mut admitted = Vec::new();
    for step in 0..240 {
        if limiter.acquire(&budget("k", 10, 1_000_000)).await.unwrap().allowed() {
            admitted.push(step * 1_000);
        }
        clock.advance(1_000);
    }
    for (i, start) in admitted.iter().enumerate() {
        let in_window = admitted[i..].iter().take_while(|&&t| t < start + WINDOW_MS).count();
        assert!(in_window <= 10, "{in_window} requests in the window starting at {start}");
    }
    assert_eq!(admitted.len(), 40);
}

#[tokio::test]
async fn the_mcp_daily_quota_resets_at_utc_midnight() {
    // 2026-11-30 23:59:00 UTC
    let clock = ManualClock::at(1_796_083_140_000);
    let limiter = MemoryLimiter::with_clock(clock.clone());
    assert!(limiter.take_daily("u", 1).await.unwrap().allowed);
    let spent = limiter.take_daily("u", 1).await.unwrap();
    assert_eq!((spent.allowed, spent.reset_at_ms - 1_796_083_140_000), (false, 60_000));
    clock.advance(60_000);
    assert!(limiter.take_daily("u", 1).await.unwrap().allowed);
}

#[tokio::test]
async fn the_monthly_quota_resets_at_the_start_of_the_utc_month() {
    // 2026-11-30 23:59:00 UTC
    let clock = ManualClock::at(1_796_083_140_000);
    let limiter = MemoryLimiter::with_clock(clock.clone());
    let b = budget("k", 100, 2);
    assert!(limiter.acquire(&b).await.unwrap().allowed());
    assert!(limiter.acquire(&b).await.unwrap().allowed());
    let spent = limiter.acquire(&b).await.unwrap();
    assert_eq!(spent.exceeded, Some(Exceeded::Month));
    assert_eq!(spent.retry_after_ms(), 60_000, "one minute to midnight");
    clock.advance(60_000);
    let fresh = limiter.acquire(&b).await.unwrap();
    assert!(fresh.allowed());
    assert_eq!(fresh.month_used, 1);
}

#[tokio::test]
async fn a_slot_given_back_in_the_next_month_leaves_the_new_month_s_count_alone() {
    // 2026-11-30 23:59:30 UTC
    let clock = ManualClock::at(1_796_083_170_000);
    let limiter = MemoryLimiter::with_clock(clock.clone());
    let b = budget("k", 100, 1_000);
    let november = limiter.acquire(&b).await.unwrap();
    clock.advance(60_000);
    assert_eq!(limiter.acquire(&b).await.unwrap().month_used, 1, "December starts from nothing");
    limiter.release(&b, november.slot.as_deref().unwrap()).await.unwrap();
    assert_eq!(limiter.peek(&b).await.unwrap().month_used, 1, "November's slot is not December's");
    assert_eq!(limiter.peek(&b).await.unwrap().remaining, 99, "it left the window all the same");
}

/// What every change bus must do.
async fn bus_conforms(bus: Arc<dyn ChangeBus>) {
    let mut first = bus.subscribe();
    let mut second = bus.subscribe();
    for subscriber in [&mut first, &mut second] {
        assert_eq!(subscriber.recv().await, Some(Notice::Connected), "a subscriber hears Connected first");
    }
    let changes = [Change::Key("k1".into()), Change::User("u1".into()), Change::Key("k2".into())];
    for change in &changes {
        bus.publish(change.clone()).await.unwrap();
    }
    for subscriber in [&mut first, &mut second] {
        for change in &changes {
            let notice = tokio::time::timeout(std::time::Duration::from_secs(5), subscriber.recv()).await;
            assert_eq!(notice.unwrap(), Some(Notice::Change(change.clone())), "every subscriber, in order");
        }
    }
}

#[tokio::test]
async fn memory_bus_conforms() {
    bus_conforms(Arc::new(MemoryBus::default())).await;
}

#[tokio::test]
async fn redis_bus_conforms() {
    let redis = TestRedis::create().await;
    bus_conforms(Arc::new(RedisBus::new(&Target::Single(redis.url.clone()), &redis.prefix).unwrap())).await;
}

#[tokio::test]
async fn redis_bus_conforms_on_a_redis_cluster() {
    let cluster = RedisCluster::start(0);
    bus_conforms(Arc::new(RedisBus::new(&cluster_target(&cluster), "zvtest:").unwrap())).await;
}

#[tokio::test]
async fn key_hash_secrets_rotate_without_breaking_keys() {
    on_each_backend(|backend| async move {
        let old = "1:the-old-key-hash-secret-0123456789abcdef";
        let new = "2:the-new-key-hash-secret-0123456789abcdef";
        let open = |spec: String| {
            let backend = backend.clone();
            async move {
                identity::Identity::open(&backend, identity::KeyHasher::parse(&spec).unwrap(), None).await.unwrap()
            }
        };
        let before = open(old.into()).await;
        let (user, _) = before.signup("rot@example.com", "long enough", "Rot").await.unwrap();
        let secret = ApiKeySecret::generate();
        before
            .create_api_key(NewApiKey {
                user_id: user.id.clone(),
                name: "k".into(),
                grant: Grant::Full,
                teams: KeyTeams::All,
                digest: secret.digest(),
                hint: secret.hint(),
                expires_at: None,
                allowed_ips: vec![],
            })
            .await
            .unwrap();
        // The new secret leads; the old one still finds the key, which is re-keyed on use.
        let rotating = open(format!("{new},{old}")).await;
        rotating.verify_api_key(&secret.digest()).await.unwrap();
        // With the old secret gone the key still works: it was re-keyed.
        let after = open(new.into()).await;
        after.verify_api_key(&secret.digest()).await.unwrap();
        // A server with another secret cannot match stored digests at all.
        let stranger = open("3:a-completely-different-secret-0123456789".into()).await;
        assert_eq!(stranger.verify_api_key(&secret.digest()).await.unwrap_err().code, ErrorCode::Unauthorized);
    })
    .await;
}

/// Hand-computed statistics over a fixed set of events, on each backend (metrics: README.md#events-and-statistics).
#[tokio::test]
async fn analytics_queries_conform() {
    use analytics::events::Incoming;
    use analytics::service::QueryRequest;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis();
    let event = |ts: &str, ua: &str, ip: &str, country: &str, name: &str, path: &str, referrer: &str| {
        let incoming = Incoming {
            domain: "fixture.example".into(),
            name: name.into(),
            url: format!("https://fixture.example{path}"),
            referrer: referrer.into(),
            props_json: String::new(),
            revenue_json: String::new(),
            user_agent: ua.into(),
            client_ip: ip.into(),
            country: country.into(),
            hash_mode: false,
            scroll_depth: None,
            engagement_ms: None,
            non_interactive: false,
        };
        (at(ts), incoming)
    };
    // Visits: A1 (/ → /pricing, Signup; 180 s, from Google), A2 (/blog, 57 min later: a bounce),
    // B1 (/blog from Hacker News, 23:50), B2 (/ at 00:05: the visitor hash is salted per UTC day,
    // so a new day is a new visitor and visit), C1 (a newsletter bounce). A bot is dropped.
    let fixture = || {
        vec![
            event("2026-01-10T10:00:00Z", CHROME, "1.1.1.1", "US", "pageview", "/", "https://www.google.com/"),
            event("2026-01-10T10:02:00Z", CHROME, "1.1.1.1", "US", "pageview", "/pricing", ""),
            event("2026-01-10T10:03:00Z", CHROME, "1.1.1.1", "US", "Signup", "/pricing", ""),
            event("2026-01-10T11:00:00Z", CHROME, "1.1.1.1", "US", "pageview", "/blog", ""),
            event(
                "2026-01-10T23:50:00Z",
                IPHONE,
                "2.2.2.2",
                "DE",
                "pageview",
                "/blog",
                "https://news.ycombinator.com/",
            ),
            event("2026-01-11T00:05:00Z", IPHONE, "2.2.2.2", "DE", "pageview", "/", ""),
            event(
                "2026-01-11T09:00:00Z",
                FIREFOX,
                "3.3.3.3",
                "us",
                "pageview",
                "/?utm_source=newsletter&utm_medium=email&utm_content=header&utm_term=stats",
                "",
            ),
            event("2026-01-11T09:00:00Z", GOOGLEBOT, "4.4.4.4", "US", "pageview", "/", ""),
        ]
    };
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "fixture.example", "Fixture", None).await.unwrap();
        assert_eq!(analytics.import(fixture()).await.unwrap(), 7, "the bot is not stored");
        // A query of `meaning`; a filter's values are separated by `|`.
        let asked =
            |meaning, metrics: &str, dims: &[&str], filters: Vec<(&str, &str, &str)>, (period, date): (&str, &str)| {
                let (period, end_day) = asked_period(period, date);
                let request = QueryRequest {
                    website_id: site.id.clone(),
                    metrics: metrics.split(',').map(str::to_owned).collect(),
                    dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
                    filters: filters
                        .into_iter()
                        .map(|(op, dim, value)| {
                            (op.to_owned(), dim.to_owned(), value.split('|').map(str::to_owned).collect())
                        })
                        .collect(),
                    period,
                    end_day,
                    meaning,
                    fill_time: true,
                    ..Default::default()
                };
                let analytics = analytics.clone();
                async move {
                    let (answer, _) = analytics.query(request).await.unwrap();
                    answer.rows.into_iter().map(|(dims, values)| (dims.join("/"), values)).collect::<Vec<_>>()
                }
            };
        let query = |metrics: &str, dims: &[&str], filters: Vec<(&str, &str, &str)>, period: &str, date: &str| {
            asked(analytics::period::Meaning::Ours, metrics, dims, filters, (period, date))
        };
        // Plausible's v1 meaning, over both days: conversion rates of each row's group, bounce
        // rates of the visits that entered on a filtered page.
        analytics.create_goal(&site.id, analytics::model::GoalTarget::Event("Signup".into()), None).await.unwrap();
        let plausible = |meaning, metrics: &str, dims: &[&str], filters: Vec<(&str, &str, &str)>| {
            asked(meaning, metrics, dims, filters, ("custom", "2026-01-10,2026-01-11"))
        };
        // Every answer twice: from raw events, then from the days' rollups (and raw events for
        // what rollups cannot answer): they must be the same.
        for rolled_up in [false, true] {
            let utc = analytics::service::WebsiteChanges { name: None, timezone: Some("UTC".into()) };
            analytics.update_website(&site.id, utc).await.unwrap();
            if rolled_up {
                assert_eq!(analytics.roll_up(at("2026-01-12T00:00:00Z")).await.unwrap(), 2, "two closed days");
            }
            let all = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
            let both_days = ("custom", "2026-01-10,2026-01-11");
            // 4 visitors (B twice), 5 visits, 6 pageviews, 7 events; 4 of 5 visits bounce; 180 s / 5.
            assert_eq!(
                query(all, &[], vec![], both_days.0, both_days.1).await,
                [(String::new(), vec![4.0, 5.0, 6.0, 1.2, 80.0, 36.0, 7.0])]
            );
            assert_eq!(
                query(all, &[], vec![], "day", "2026-01-10").await,
                [(String::new(), vec![2.0, 3.0, 4.0, 1.33, 67.0, 60.0, 5.0])]
            );
            assert_eq!(
                query("visitors,pageviews", &["time:day"], vec![], both_days.0, both_days.1).await,
                [("2026-01-10".to_owned(), vec![2.0, 4.0]), ("2026-01-11".to_owned(), vec![2.0, 2.0])]
            );
            let hours = query("pageviews", &["time:hour"], vec![], "day", "2026-01-10").await;
            assert_eq!(hours.len(), 24, "zero-filled");
            assert_eq!(hours[10], ("2026-01-10 10:00:00".to_owned(), vec![2.0]));
            assert_eq!(
                query("visitors,pageviews,visits,bounce_rate", &["event:page"], vec![], both_days.0, both_days.1).await,
                [
                    ("/".to_owned(), vec![3.0, 3.0, 3.0, 67.0]),
                    ("/blog".to_owned(), vec![2.0, 2.0, 2.0, 100.0]),
                    ("/pricing".to_owned(), vec![1.0, 1.0, 1.0, 0.0]),
                ]
            );
            assert_eq!(
                query("visitors,visits,bounce_rate", &["visit:source"], vec![], both_days.0, both_days.1).await,
                [
                    ("Direct / None".to_owned(), vec![2.0, 2.0, 100.0]),
                    ("Google".to_owned(), vec![1.0, 1.0, 0.0]),
                    ("Hacker News".to_owned(), vec![1.0, 1.0, 100.0]),
                    ("newsletter".to_owned(), vec![1.0, 1.0, 100.0]),
                ]
            );
            assert_eq!(
                query("visits", &["visit:entry_page"], vec![], both_days.0, both_days.1).await,
                [("/".to_owned(), vec![3.0]), ("/blog".to_owned(), vec![2.0])]
            );
            assert_eq!(
                query("visitors", &["visit:browser", "visit:device"], vec![], both_days.0, both_days.1).await,
                [
                    ("Safari/Mobile".to_owned(), vec![2.0]),
                    ("Chrome/Desktop".to_owned(), vec![1.0]),
                    ("Firefox/Desktop".to_owned(), vec![1.0]),
                ]
            );
            assert_eq!(
                query(
                    "visitors",
                    &["visit:utm_medium", "visit:country"],
                    vec![("is", "visit:country", "US")],
                    both_days.0,
                    both_days.1
                )
                .await,
                [("/US".to_owned(), vec![1.0]), ("email/US".to_owned(), vec![1.0])]
            );
            // Channels by Plausible's rules; referrers as host and path; the page's host.
            assert_eq!(
                query("visits", &["visit:channel"], vec![], both_days.0, both_days.1).await,
                [
                    ("Direct".to_owned(), vec![2.0]),
                    ("Email".to_owned(), vec![1.0]),
                    ("Organic Search".to_owned(), vec![1.0]),
                    ("Organic Social".to_owned(), vec![1.0]),
                ]
            );
            assert_eq!(
                query("visits,percentage", &["visit:referrer"], vec![], both_days.0, both_days.1).await,
                [
                    ("Direct / None".to_owned(), vec![3.0, 75.0]),
                    ("google.com".to_owned(), vec![1.0, 25.0]),
                    ("news.ycombinator.com".to_owned(), vec![1.0, 25.0]),
                ]
            );
            assert_eq!(
                query("pageviews", &["event:hostname"], vec![], both_days.0, both_days.1).await,
                [("fixture.example".to_owned(), vec![6.0])]
            );
            assert_eq!(
                query("visits", &["visit:utm_content", "visit:utm_term"], vec![], both_days.0, both_days.1).await,
                [("/".to_owned(), vec![4.0]), ("header/stats".to_owned(), vec![1.0])]
            );
            let windows = vec![("is", "visit:os_version", "10"), ("is", "visit:browser_version", "126.0")];
            assert_eq!(
                query("visitors,visits", &[], windows, both_days.0, both_days.1).await,
                [(String::new(), vec![1.0, 2.0])]
            );
            // Filters: an event filter narrows events and the visits that include them.
            let pricing = vec![("is", "event:page", "/pricing")];
            assert_eq!(
                query("visitors,pageviews,events,visits,visit_duration", &[], pricing, both_days.0, both_days.1).await,
                [(String::new(), vec![1.0, 1.0, 2.0, 1.0, 180.0])]
            );
            let contains = vec![("contains", "event:page", "PRIC")];
            assert_eq!(query("events", &[], contains, both_days.0, both_days.1).await, [(String::new(), vec![2.0])]);
            let wildcard = vec![("matches", "event:page", "/b*")];
            assert_eq!(query("pageviews", &[], wildcard, both_days.0, both_days.1).await, [(String::new(), vec![2.0])]);
            let exit = vec![("is", "visit:exit_page", "/pricing")];
            assert_eq!(
                query("visitors,pageviews,visits", &[], exit, both_days.0, both_days.1).await,
                [(String::new(), vec![1.0, 2.0, 1.0])]
            );
            let not_de = vec![("is_not", "visit:country", "DE"), ("is", "visit:source", "Google|newsletter")];
            assert_eq!(
                query("visitors,visits", &[], not_de, both_days.0, both_days.1).await,
                [(String::new(), vec![2.0, 2.0])]
            );
            use analytics::period::Meaning::{PlausibleV1, PlausibleV2};
            let v1 = |metrics, dims, filters| plausible(PlausibleV1, metrics, dims, filters);
            // A converted on the 10th: 1 of the 2 US visitors (A, C) and of the 10th's 2 (A, B).
            let signup = || vec![("is", "event:goal", "Signup")];
            assert_eq!(
                v1("visitors,conversion_rate", &["visit:country"], signup()).await,
                [("US".to_owned(), vec![1.0, 50.0])]
            );
            assert_eq!(
                v1("visitors,conversion_rate", &["time:day"], signup()).await,
                [("2026-01-10".to_owned(), vec![1.0, 50.0]), ("2026-01-11".to_owned(), vec![0.0, 0.0])]
            );
            // A1 includes `/pricing` but entered on `/`: no visit is left to bounce. All three
            // visits that include `/` entered there, and two bounced.
            let pricing = vec![("is", "event:page", "/pricing")];
            assert_eq!(v1("visits,bounce_rate", &[], pricing).await, [(String::new(), vec![1.0, 0.0])]);
            let home = vec![("is", "event:page", "/")];
            assert_eq!(
                v1("visits,bounce_rate", &["visit:country"], home).await,
                [("US".to_owned(), vec![2.0, 50.0]), ("DE".to_owned(), vec![1.0, 100.0])]
            );
            // Empty UTM values: `(not set)` in v2, left out of v1's breakdowns, picked by their label.
            assert_eq!(
                plausible(PlausibleV2, "visitors", &["visit:utm_medium"], vec![]).await,
                [("(not set)".to_owned(), vec![3.0]), ("email".to_owned(), vec![1.0])]
            );
            assert_eq!(v1("visitors", &["visit:utm_medium"], vec![]).await, [("email".to_owned(), vec![1.0])]);
            let not_set = vec![("is", "visit:utm_medium", "(not set)")];
            assert_eq!(
                plausible(PlausibleV2, "visitors", &["visit:source"], not_set).await,
                [
                    ("Direct / None".to_owned(), vec![2.0]),
                    ("Google".to_owned(), vec![1.0]),
                    ("Hacker News".to_owned(), vec![1.0])
                ]
            );
            // Plausible's filters respect case.
            assert_eq!(v1("events", &[], vec![("contains", "event:page", "PRIC")]).await, [(String::new(), vec![0.0])]);
            // The site's time zone decides the days: in New York, both of B's visits fall on the 10th
            // (and rollups, whose UTC days straddle New York's, step aside).
            let changes = analytics::service::WebsiteChanges { name: None, timezone: Some("America/New_York".into()) };
            analytics.update_website(&site.id, changes).await.unwrap();
            assert_eq!(
                query("visitors,pageviews", &["time:day"], vec![], both_days.0, both_days.1).await,
                [("2026-01-10".to_owned(), vec![3.0, 5.0]), ("2026-01-11".to_owned(), vec![1.0, 1.0])]
            );
        }
        // A late event for a rolled-up day is counted at once, and in the next rollup.
        let late = vec![event("2026-01-10T12:00:00Z", FIREFOX, "5.5.5.5", "FR", "pageview", "/late", "")];
        assert_eq!(analytics.import(late).await.unwrap(), 1);
        let both_days = ("custom", "2026-01-10,2026-01-11");
        let utc = analytics::service::WebsiteChanges { name: None, timezone: Some("UTC".into()) };
        analytics.update_website(&site.id, utc).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                query("visitors,pageviews", &[], vec![], both_days.0, both_days.1).await,
                [(String::new(), vec![5.0, 7.0])]
            );
            analytics.roll_up(at("2026-01-12T00:00:00Z")).await.unwrap();
        }
        assert_eq!(analytics.roll_up(at("2026-01-12T00:00:00Z")).await.unwrap(), 0, "nothing left to roll up");
        // Bad names are refused, naming the field.
        for (metrics, dims) in
            [("sessions", vec![]), ("visitors", vec!["visit:planet"]), ("visitors", vec!["time:day", "time:hour"])]
        {
            let request = QueryRequest {
                website_id: site.id.clone(),
                metrics: vec![metrics.into()],
                dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
                period: asked_period("day", "").0,
                ..Default::default()
            };
            let error = analytics.query(request).await.err().unwrap();
            assert_eq!(error.code, ErrorCode::Validation, "{metrics} {dims:?}");
        }
    })
    .await;
}

/// A pageview of one visitor `minutes` after 2026-01-10 10:00 UTC, as the writers take it.
pub(crate) fn pageview(website_id: &str, minutes: i64, path: &str) -> analytics::store::NewEvent {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-10T10:00:00Z").unwrap().timestamp_millis();
    analytics::store::NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        website_id: website_id.into(),
        ts: start + minutes * 60_000,
        name: "pageview".into(),
        pathname: path.into(),
        referrer_host: String::new(),
        visitor_id: "0123456789abcdef0123456789abcdef".into(),
        props: "{}".into(),
        revenue_amount: None,
        revenue_currency: None,
        scroll_depth: None,
        engagement_ms: 0,
        hostname: String::new(),
        non_interactive: false,
        visit_id: String::new(),
        visit: analytics::store::VisitAttributes { source: "Direct / None".into(), ..Default::default() },
    }
}

/// A time of `day` (UTC) given as `HH:MM`, `-1 HH:MM` for the day before or `+1 HH:MM` for the
/// day after, in unix ms.
fn time_of(day: chrono::NaiveDate, at: &str) -> i64 {
    let (days, time) = match at.split_once(' ') {
        Some((days, time)) => (days.parse::<i64>().unwrap(), time),
        None => (0, at),
    };
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M").unwrap();
    (day + chrono::Duration::days(days)).and_time(time).and_utc().timestamp_millis()
}

/// Today's events, which no rollup holds yet, are counted from the day's visits where a query
/// needs no event's own dimension, and visitors alone from the visits with an event since the
/// period's start: every shape over today and over the days up to it equals raw events', in
/// UTC, America/New_York and Asia/Kolkata (whose days are parts of two UTC days).
#[tokio::test]
async fn todays_figures_read_from_visits_equal_raw_events() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let today = chrono::Utc::now().date_naive();
        let sites = sites_in_three_zones(&analytics, time_of(today, "+1 00:00")).await;
        let day = |n: i64| (today + chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
        let all = "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events";
        let google = vec![("is".to_owned(), "visit:source".to_owned(), vec!["Google".to_owned()])];
        let mut shapes = Vec::new();
        for site in &sites {
            for (dims, filters) in [
                (vec![], vec![]),
                (vec!["time:day"], vec![]),
                (vec!["time:hour"], vec![]),
                (vec!["visit:country"], vec![]),
                (vec!["visit:exit_page"], vec![]),
                (vec![], google.clone()),
                (vec!["time:day", "visit:device"], google.clone()),
            ] {
                for date in [format!("{},{}", day(0), day(0)), format!("{},{}", day(-3), day(0))] {
                    // Visitors alone are read from visits from any point of a day on.
                    for metrics in [all, "visitors,visits,bounce_rate"] {
                        let shape = shape(site, metrics, &dims, asked_period("custom", &date).0);
                        shapes.push(QueryRequest { filters: filters.clone(), ..shape });
                    }
                }
            }
        }
        answers_equal_raw(&analytics, &shapes).await;
        analytics.roll_up(time_of(today, "+1 00:00")).await.unwrap();
        answers_equal_raw(&analytics, &shapes).await;
    })
    .await;
}

/// A statistics statement that runs past its bound is stopped by PostgreSQL, and the query is
/// answered unavailable (503) saying so, instead of going on with no one waiting for it. Here
/// the statement waits on a lock that another connection holds on the events.
#[tokio::test]
async fn a_statistics_statement_past_its_bound_is_stopped_and_answered_unavailable() {
    use analytics::service::QueryRequest;

    let database = TestDatabase::create().await;
    let backend = Backend::Postgres { url: database.url.clone() };
    let storage =
        analytics::Storage { statistics_timeout: std::time::Duration::from_millis(300), ..Default::default() };
    let analytics = analytics::Analytics::open_with(&backend, &storage).await.unwrap();
    let site = analytics.create_website("t1", "bound.example", "B", Some("UTC")).await.unwrap();
    let now = common::time::now_ms();
    analytics.import(analytics::generate::traffic("bound.example", now, 1, 50, 3)).await.unwrap();
    let query = QueryRequest {
        website_id: site.id.clone(),
        metrics: vec!["visitors".into()],
        dimensions: vec!["event:page".into()],
        period: asked_period("day", "").0,
        ..Default::default()
    };
    assert!(analytics.query(query.clone()).await.is_ok(), "answered while nothing holds the events");

    let mut holder = holding_the_events(&database.url).await;
    let error = analytics.query(query.clone()).await.map(drop).unwrap_err();
    assert_eq!(error.code, ErrorCode::ServiceUnavailable, "{error:?}");
    assert!(error.message.contains("time bound"), "{error:?}");
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut holder)
    .await
    .unwrap();
    assert_eq!(waiting, 0, "the stopped statement is no longer waiting");
    release(&mut holder).await;
    assert!(analytics.query(query).await.is_ok(), "answered again once the lock is gone");
}

/// A connection of its own that holds the events and visits locked until [`release`]d: every
/// statement reading them waits.
async fn holding_the_events(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;

    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE analytics.events, analytics.visits IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

async fn release(holder: &mut sqlx::PgConnection) {
    sqlx::query("ROLLBACK").execute(holder).await.unwrap();
}

/// More statistics statements at once than the pool has connections (a console's view asks a
/// dozen questions, each of up to four statements) wait for a connection for as long as they
/// take: here every statement waits 4 s on a lock that another connection holds on the events,
/// behind those of 8 queries whose callers left (their connections stay busy until their
/// statements end), and all 24 queries asked after them are answered once the lock is gone.
#[tokio::test]
async fn statistics_queries_beyond_the_pools_connections_wait_their_turn_rather_than_fail() {
    use analytics::service::QueryRequest;

    let database = TestDatabase::create().await;
    let backend = Backend::Postgres { url: database.url.clone() };
    let analytics = Arc::new(analytics::Analytics::open(&backend).await.unwrap());
    let site = analytics.create_website("t1", "turns.example", "T", Some("UTC")).await.unwrap();
    let now = common::time::now_ms();
    analytics.import(analytics::generate::traffic("turns.example", now, 1, 50, 3)).await.unwrap();
    let query = |i: usize| QueryRequest {
        website_id: site.id.clone(),
        metrics: vec!["visitors".into(), "visits".into(), "visit_duration".into()],
        dimensions: vec![["event:page", "visit:source", "visit:country"][i % 3].into()],
        // Raw events, visits and engagement: no rollup answers an exclusion.
        filters: vec![("is_not".into(), "event:name".into(), vec![format!("zz{i}")])],
        period: asked_period("day", "").0,
        ..Default::default()
    };
    let mut holder = holding_the_events(&database.url).await;
    let ask = |i: usize| {
        let (analytics, query) = (analytics.clone(), query(i));
        tokio::spawn(async move { analytics.query(query).await.map(drop) })
    };
    let left: Vec<_> = (100..108).map(ask).collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    left.iter().for_each(tokio::task::JoinHandle::abort);
    let queries: Vec<_> = (0..24).map(ask).collect();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    release(&mut holder).await;
    for (i, answered) in futures::future::join_all(queries).await.into_iter().enumerate() {
        assert!(answered.unwrap().is_ok(), "query {i}");
    }
}

/// Today's totals are read from its visits, not its events, where a query needs no event's own
/// dimension: a change made to the visits behind the service's back shows in them, and not in
/// the same question filtered by an event name.
#[tokio::test]
async fn todays_totals_are_read_from_its_visits() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "z.example", "Z", Some("UTC")).await.unwrap();
        let today = chrono::Utc::now().date_naive();
        analytics
            .import(analytics::generate::traffic("z.example", time_of(today, "+1 00:00"), 1, 300, 3))
            .await
            .unwrap();
        let day = today.format("%Y-%m-%d").to_string();
        let totals = |filters: Filters| QueryRequest {
            website_id: site.id.clone(),
            metrics: vec!["visitors".into(), "pageviews".into()],
            filters,
            period: asked_period("custom", &format!("{day},{day}")).0,
            ..Default::default()
        };
        let (before, _) = rows_of(&analytics, totals(vec![])).await;
        assert!(before[0].1[1] > 0.0, "today has pageviews");
        let pool = crate::partitions::analytics_migrated_to(&backend, i64::MAX).await;
        let visits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM visits").fetch_one(&pool).await.unwrap();
        sqlx::query("UPDATE visits SET pageviews = pageviews + 1").execute(&pool).await.unwrap();
        let (after, _) = rows_of(&analytics, totals(vec![])).await;
        assert_eq!(after[0].1, [before[0].1[0], before[0].1[1] + visits as f64]);
        let events = vec![("is_not".to_owned(), "event:name".to_owned(), vec!["zz".to_owned()])];
        assert_eq!(rows_of(&analytics, totals(events)).await.0, before);
    })
    .await;
}

/// A local day that starts within a UTC day (New York's today) is counted from the visits that
/// started since its start, and the events since of those that go on across it: a change made
/// to the visits behind the service's back shows in its totals.
#[tokio::test]
async fn a_local_day_starting_within_a_utc_day_is_read_from_its_visits() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "ny.example", "NY", Some("America/New_York")).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        analytics.import(analytics::generate::traffic("ny.example", now, 2, 600, 3)).await.unwrap();
        // Soon after New York's midnight the generated traffic may have no visit started today.
        analytics.import(vec![chrome_pageview("ny.example", now, "9.9.9.9", "/")]).await.unwrap();
        let totals = QueryRequest {
            website_id: site.id.clone(),
            metrics: vec!["visitors".into(), "pageviews".into()],
            period: asked_period("day", "").0,
            ..Default::default()
        };
        answers_equal_raw(&analytics, std::slice::from_ref(&totals)).await;
        let (before, _) = rows_of(&analytics, totals.clone()).await;
        let pool = crate::partitions::analytics_migrated_to(&backend, i64::MAX).await;
        sqlx::query("UPDATE visits SET pageviews = pageviews + 1000").execute(&pool).await.unwrap();
        let (after, _) = rows_of(&analytics, totals).await;
        assert!(after[0].1[1] >= before[0].1[1] + 1000.0, "{before:?} then {after:?}");
    })
    .await;
}

/// A period that ends within a UTC day is counted from events as soon as one of that day's
/// visits goes on past its end: a site in Asia/Kolkata, whose days end at 18:30 UTC, with a
/// visit today from 18:00 to 18:40 UTC, one earlier today and one the evening before (its local
/// day, not its UTC day).
#[tokio::test]
async fn a_visit_going_on_past_the_end_of_a_period_counts_only_its_events_within() {
    use analytics::service::QueryRequest;

    let today = chrono::Utc::now().date_naive();
    let event = |at: &str, ip: &str, path: &str| chrome_pageview("kolkata.example", time_of(today, at), ip, path);
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "kolkata.example", "K", Some("Asia/Kolkata")).await.unwrap();
        let events = vec![
            event("-1 20:00", "3.3.3.3", "/evening"),
            event("10:00", "2.2.2.2", "/"),
            event("18:00", "1.1.1.1", "/"),
            event("18:20", "1.1.1.1", "/a"),
            event("18:40", "1.1.1.1", "/b"),
        ];
        assert_eq!(analytics.import(events).await.unwrap(), 5);
        let query = |day: chrono::NaiveDate, dims: &[&str]| {
            let day = day.format("%Y-%m-%d");
            QueryRequest {
                website_id: site.id.clone(),
                metrics: vec!["visitors".into(), "pageviews".into(), "events".into(), "visits".into()],
                dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
                period: asked_period("custom", &format!("{day},{day}")).0,
                ..Default::default()
            }
        };
        // Kolkata's day of today's UTC date is 18:30 UTC the day before to 18:30 UTC today.
        let (totals, _) = rows_of(&analytics, query(today, &[])).await;
        assert_eq!(totals, [(vec![], vec![3.0, 4.0, 4.0, 3.0])]);
        let (countries, _) = rows_of(&analytics, query(today, &["visit:country"])).await;
        assert_eq!(countries, [(vec!["IN".to_owned()], vec![3.0, 4.0, 4.0, 3.0])]);
        // The next local day holds the visit's last pageview, and the visit.
        let next = query(today + chrono::Duration::days(1), &[]);
        assert_eq!(rows_of(&analytics, next.clone()).await.0, [(vec![], vec![1.0, 1.0, 1.0, 1.0])]);
        // Its visitor, counted from the visits with an event since 18:30 UTC.
        let visitors = QueryRequest { metrics: vec!["visitors".into(), "visits".into()], ..next };
        assert_eq!(rows_of(&analytics, visitors).await.0, [(vec![], vec![1.0, 1.0])]);
    })
    .await;
}

/// Filtered by a page, a visit counts in each time bucket where it viewed the page, so every
/// bucket of a series answers as its own period does: a New York visit that viewed `/pricing`
/// just before local midnight and went on to another page after it counts on the first day
/// only, in a daily series as in each day asked alone, from raw events and from rollups.
#[tokio::test]
async fn a_visit_across_a_bucket_bound_matches_an_event_filter_only_in_the_buckets_where_it_does() {
    use analytics::service::QueryRequest;

    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 14).unwrap();
    let event = |at: &str, ip: &str, path: &str| chrome_pageview("ny.example", time_of(day, at), ip, path);
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "ny.example", "N", Some("America/New_York")).await.unwrap();
        // New York's midnight is 05:00 UTC in January.
        let events = vec![
            event("04:50", "1.1.1.1", "/pricing"),
            event("05:10", "1.1.1.1", "/docs"),
            event("06:00", "2.2.2.2", "/pricing"),
        ];
        assert_eq!(analytics.import(events).await.unwrap(), 3);
        let pricing = vec![("is".to_owned(), "event:page".to_owned(), vec!["/pricing".to_owned()])];
        let query = |dates: &str, dims: &[&str], filters: &Filters| QueryRequest {
            filters: filters.clone(),
            ..shape(&site.id, "visits,visitors,pageviews", dims, asked_period("custom", dates).0)
        };
        let answers = || async {
            let mut answers = Vec::new();
            for (dates, dims, filters) in [
                ("2026-01-13,2026-01-13", &[][..], &pricing),
                ("2026-01-14,2026-01-14", &[], &pricing),
                ("2026-01-13,2026-01-14", &["time:day"], &pricing),
                ("2026-01-14,2026-01-14", &["time:hour"], &pricing),
                ("2026-01-14,2026-01-14", &[], &vec![]),
            ] {
                answers.push(rows_of(&analytics, query(dates, dims, filters)).await);
            }
            answers
        };
        let raw = answers().await;
        let one = vec![1.0, 1.0, 1.0];
        assert_eq!(raw[0].0, [(vec![], one.clone())], "the evening it viewed /pricing");
        assert_eq!(raw[1].0, [(vec![], one.clone())], "the next day: the other visit alone");
        let days: Vec<Vec<f64>> = raw[2].0.iter().map(|(_, values)| values.clone()).collect();
        assert_eq!(days, [one.clone(), one.clone()], "each day of the series as asked alone");
        let hours: Vec<f64> = raw[3].0.iter().map(|(_, values)| values[0]).collect();
        assert_eq!(hours[..2], [0.0, 1.0], "00:00 local holds no /pricing, 01:00 local does");
        assert_eq!(raw[4].0, [(vec![], vec![2.0, 2.0, 2.0])], "unfiltered, the visit counts on both days");
        assert!(raw.iter().all(|(_, served)| *served == 0));

        assert_eq!(analytics.roll_up(time_of(day, "+3 00:00")).await.unwrap(), 1, "one UTC day");
        let rolled = answers().await;
        for (i, ((rows, served), (expected, _))) in rolled.iter().zip(&raw).enumerate() {
            assert_eq!(rows, expected);
            // Hours keep totals alone: the filtered hours are read raw.
            assert_eq!(*served > 0, i != 3, "rollups served {rows:?}");
        }
    })
    .await;
}

/// A pageview at `ts` from a Chrome on Windows at `ip` in India, as a tracker sends it.
fn chrome_pageview(domain: &str, ts: i64, ip: &str, path: &str) -> (i64, analytics::events::Incoming) {
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    let incoming = analytics::events::Incoming {
        domain: domain.into(),
        name: "pageview".into(),
        url: format!("https://{domain}{path}"),
        referrer: String::new(),
        props_json: String::new(),
        revenue_json: String::new(),
        user_agent: CHROME.into(),
        client_ip: ip.into(),
        country: "IN".into(),
        hash_mode: false,
        scroll_depth: None,
        engagement_ms: None,
        non_interactive: false,
    };
    (ts, incoming)
}

/// A query of `metrics` (comma-separated) by `dims` over `period`, every time bucket listed.
fn shape(
    site: &str,
    metrics: &str,
    dims: &[&str],
    period: analytics::period::Asked,
) -> analytics::service::QueryRequest {
    analytics::service::QueryRequest {
        website_id: site.to_owned(),
        metrics: metrics.split(',').map(str::to_owned).collect(),
        dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
        period,
        fill_time: true,
        ..Default::default()
    }
}

/// A query of the site's hours on `day` (`YYYY-MM-DD`), every hour listed.
fn hours_of(site: &str, day: &str, metrics: &str) -> analytics::service::QueryRequest {
    shape(site, metrics, &["time:hour"], asked_period("custom", &format!("{day},{day}")).0)
}

/// The part of today that no more event can enter is rolled up before the day ends: its local
/// hours that ended, and the part before the site's local midnight once no visit of it can go
/// on. Hours, local days and breakdowns that read them answer as raw events do, in New York,
/// Kolkata and UTC, with the rollup's clock at 15:30 UTC; a late event sends the day back to raw
/// events until it is rolled up again.
#[tokio::test]
async fn todays_closed_part_answers_from_rollups_as_raw_events_do() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let sites = sites_in_three_zones(&analytics, end).await;
        let all = EVERY_METRIC;
        let google = vec![("is".to_owned(), "visit:source".to_owned(), vec!["Google".to_owned()])];
        let mut shapes = Vec::new();
        for site in &sites {
            for metrics in ["visitors,pageviews,events", all] {
                for (dims, filters) in [
                    (vec![], vec![]),
                    (vec!["time:hour"], vec![]),
                    (vec!["visit:country"], vec![]),
                    (vec!["event:page"], vec![]),
                    (vec!["time:hour"], google.clone()),
                ] {
                    for date in ["2026-03-19,2026-03-19", "2026-03-20,2026-03-20"] {
                        let shape = shape(site, metrics, &dims, asked_period("custom", date).0);
                        shapes.push(QueryRequest { filters: filters.clone(), ..shape });
                    }
                }
            }
        }
        let (ny, utc) = (&sites[0], &sites[2]);
        let today_hours = hours_of(utc, "2026-03-20", "visitors,pageviews");
        assert_eq!(rows_of(&analytics, today_hours.clone()).await.1, 0, "nothing of today is rolled up yet");

        // Cape Verde's local day (UTC-1) ends at 01:00 UTC, the end of the first UTC hour, which a
        // rollup at 01:10 finds with a visit that goes on: that hour holds its totals alone then.
        let cape = analytics.create_website("t", "cape.example", "C", Some("Atlantic/Cape_Verde")).await.unwrap();
        let at = |time: &str| chrono::DateTime::parse_from_rfc3339(time).unwrap().timestamp_millis();
        let visits = [("2026-03-19T12:00:00Z", "1.1.1.1", "/e"), ("2026-03-20T00:10:00Z", "2.2.2.2", "/a")]
            .into_iter()
            .chain([("2026-03-20T00:40:00Z", "3.3.3.3", "/b"), ("2026-03-20T01:00:00Z", "3.3.3.3", "/c")])
            .chain([("2026-03-20T01:20:00Z", "3.3.3.3", "/d")])
            .map(|(time, ip, path)| chrome_pageview("cape.example", at(time), ip, path));
        assert_eq!(analytics.import(visits).await.unwrap(), 5);
        for (metrics, dims) in [("visitors,pageviews,events", vec!["event:page"]), ("visitors,pageviews", vec![])] {
            let mut shape = hours_of(&cape.id, "2026-03-19", metrics);
            shape.dimensions = dims.into_iter().map(str::to_owned).collect();
            shapes.push(shape);
        }
        analytics.roll_up(at("2026-03-20T01:10:00Z")).await.unwrap();
        answers_equal_raw(&analytics, &shapes).await;

        analytics.roll_up(end).await.unwrap();
        answers_equal_raw(&analytics, &shapes).await;
        assert_eq!(rows_of(&analytics, today_hours.clone()).await.1, 1, "today's closed hours are rolled up");
        // New York's local day of the 19th ends at 04:00 UTC on the 20th.
        let mut pages = hours_of(ny, "2026-03-19", all);
        pages.dimensions = vec!["event:page".into()];
        assert_eq!(rows_of(&analytics, pages).await.1, 2, "the 20th's part before New York's midnight");

        analytics.import([chrome_pageview("z.example", end - 5 * 3_600_000, "9.9.9.9", "/late")]).await.unwrap();
        assert_eq!(rows_of(&analytics, today_hours.clone()).await.1, 0, "a late event: today is read raw");
        answers_equal_raw(&analytics, &shapes).await;
        analytics.roll_up(end).await.unwrap();
        assert_eq!(rows_of(&analytics, today_hours).await.1, 1, "until it is rolled up again");
        answers_equal_raw(&analytics, &shapes).await;
    })
    .await;
}

/// The last 24 hours, which start at a millisecond of now, are read as whole hours from the
/// rollups of yesterday and today's closed part, and their totals and countries from visits: all
/// as raw events answer. The events lie minutes away from the period's ends.
#[tokio::test]
async fn the_last_24_hours_answer_from_rollups_as_raw_events_do() {
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "z.example", "Z", Some("UTC")).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let events = [(30.0, "1.1.1.1"), (23.5, "2.2.2.2"), (20.0, "3.3.3.3"), (12.0, "2.2.2.2"), (6.0, "4.4.4.4")]
            .into_iter()
            .chain([(3.0, "5.5.5.5"), (2.9, "5.5.5.5"), (1.5, "6.6.6.6"), (0.5, "1.1.1.1")])
            .enumerate()
            .map(|(i, (hours, ip))| {
                chrome_pageview("z.example", now - (hours * 3_600_000.0) as i64, ip, &format!("/{}", i % 3))
            });
        assert_eq!(analytics.import(events).await.unwrap(), 9);
        analytics.roll_up(now).await.unwrap();
        let shape = |metrics: &str, dims: &[&str]| shape(&site.id, metrics, dims, asked_period("24h", "").0);
        let series = shape("visitors,pageviews", &["time:hour"]);
        let shapes = [
            series.clone(),
            shape("visitors,visits,pageviews,bounce_rate,visit_duration", &[]),
            shape("visitors", &["visit:country"]),
        ];
        answers_equal_raw(&analytics, &shapes).await;
        // In a day's last minutes today's closed part is not rolled up (see `writer::open_day`), and
        // yesterday's part of the period may be a piece of an hour, which raw events answer.
        let today = now - now.rem_euclid(86_400_000);
        if analytics::writer::open_day(today, now) {
            assert!(rows_of(&analytics, series).await.1 >= 1, "yesterday's hours are read from rollups");
        }
    })
    .await;
}

/// Today's closed hours hold their events at once, and their visits only once no visit that
/// overlaps them can go on: a visit from 14:40 to 15:20 UTC, which a rollup at 15:30 sees as one
/// that may go on, leaves the hour from 14:00 to the events alone. Shown by changing the
/// rolled-up rows behind the service's back: the change shows where the rows are read.
#[tokio::test]
async fn todays_closed_hours_hold_visits_once_none_of_them_can_go_on() {
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let site = analytics.create_website("t1", "z.example", "Z", Some("UTC")).await.unwrap();
        let end = generated_until();
        let at = |time: &str| chrono::DateTime::parse_from_rfc3339(&format!("2026-03-20T{time}:00Z")).unwrap();
        let events = [
            ("09:10", "1.1.1.1"),
            ("12:00", "2.2.2.2"),
            ("14:40", "3.3.3.3"),
            ("15:00", "3.3.3.3"),
            ("15:20", "3.3.3.3"),
        ]
        .map(|(time, ip)| chrome_pageview("z.example", at(time).timestamp_millis(), ip, "/"));
        assert_eq!(analytics.import(events).await.unwrap(), 5);
        analytics.roll_up(end).await.unwrap();
        let pool = crate::partitions::analytics_migrated_to(&backend, i64::MAX).await;
        let (events_until, visits_until): (i64, i64) =
            sqlx::query_as("SELECT events_until, visits_until FROM rollup_open_days").fetch_one(&pool).await.unwrap();
        assert_eq!(events_until, at("15:00").timestamp_millis(), "hours that ended two minutes ago");
        assert_eq!(visits_until, at("14:00").timestamp_millis(), "hours before the visit that may go on");

        let (events, visits) =
            (hours_of(&site.id, "2026-03-20", "pageviews"), hours_of(&site.id, "2026-03-20", "visits"));
        let (events_before, visits_before) =
            (rows_of(&analytics, events.clone()).await, rows_of(&analytics, visits.clone()).await);
        assert_eq!(visits_before.0[14].1, [1.0], "the visit that began at 14:40");
        sqlx::query(
            "UPDATE rollup_pieces SET pageviews = pageviews + 1000, events = events + 1000, visits = visits + 1000",
        )
        .execute(&pool)
        .await
        .unwrap();
        let changed = |before: &[(Vec<String>, Vec<f64>)], after: &[(Vec<String>, Vec<f64>)]| -> Vec<usize> {
            (0..24).filter(|h| after[*h].1[0] == before[*h].1[0] + 1000.0).collect()
        };
        let (events_after, visits_after) =
            (rows_of(&analytics, events.clone()).await, rows_of(&analytics, visits.clone()).await);
        assert_eq!(changed(&events_before.0, &events_after.0), (0..15).collect::<Vec<_>>(), "events: until 15:00");
        assert_eq!(changed(&visits_before.0, &visits_after.0), (0..14).collect::<Vec<_>>(), "visits: until 14:00");

        // 40 minutes later the visit is over: the hours from 14:00 are rolled up again, whole, and
        // the earlier ones are left as they were.
        analytics.roll_up(end + 40 * 60_000).await.unwrap();
        let (events_until, visits_until): (i64, i64) =
            sqlx::query_as("SELECT events_until, visits_until FROM rollup_open_days").fetch_one(&pool).await.unwrap();
        assert_eq!((events_until, visits_until), (at("16:00").timestamp_millis(), at("16:00").timestamp_millis()));
        let (events_later, visits_later) =
            (rows_of(&analytics, events).await, rows_of(&analytics, visits.clone()).await);
        assert_eq!(changed(&events_before.0, &events_later.0), (0..14).collect::<Vec<_>>(), "earlier hours kept");
        assert_eq!(events_later.0[14..], events_before.0[14..], "the hours from 14:00 as raw events count them");
        assert_eq!(visits_later.0[14..], visits_before.0[14..]);
        sqlx::query("UPDATE rollup_pieces SET visits = visits + 1000 WHERE start_ts >= $1")
            .bind(at("14:00").timestamp_millis())
            .execute(&pool)
            .await
            .unwrap();
        let visits_whole = rows_of(&analytics, visits).await;
        assert_eq!(changed(&visits_before.0, &visits_whole.0), (0..16).collect::<Vec<_>>(), "visits: until 16:00");
    })
    .await;
}

/// An analytics service on `backend` with one website (its id), and an event writer of its own.
async fn with_writer(backend: &Backend, domain: &str) -> (analytics::Analytics, String, analytics::writer::Writer) {
    let analytics = analytics::Analytics::open(backend).await.unwrap();
    let site = analytics.create_website("t1", domain, "Site", None).await.unwrap();
    (analytics, site.id, analytics::writer::Writer::spawn(backend).await.unwrap())
}

/// Stores an event through `writer`, returning once it has committed.
async fn store(writer: &analytics::writer::Writer, event: analytics::store::NewEvent) {
    writer.enqueue(event).await.unwrap().await.unwrap().unwrap();
}

/// Visits, pageviews, mean visit duration and bounce rate of 2026-01-10, with `filters`.
async fn visit_figures(
    analytics: &analytics::Analytics,
    website_id: &str,
    filters: Vec<(String, String, Vec<String>)>,
) -> Vec<f64> {
    let (period, end_day) = asked_period("day", "2026-01-10");
    let request = analytics::service::QueryRequest {
        website_id: website_id.into(),
        metrics: ["visits", "pageviews", "visit_duration", "bounce_rate"].map(str::to_owned).to_vec(),
        filters,
        period,
        end_day,
        ..Default::default()
    };
    analytics.query(request).await.unwrap().0.rows[0].1.clone()
}

/// Two replicas' writers extend the same visit, each keeping the visits it wrote in memory:
/// counts add up, an event more than 30 minutes after the visit a writer remembers still joins
/// it when the other replica extended it meanwhile, and the later write's exit page stands.
#[tokio::test]
async fn visits_add_up_across_replicas() {
    use analytics::writer::Writer;

    on_each_backend(|backend| async move {
        let (analytics, site, a) = with_writer(&backend, "replicas.example").await;
        let b = Writer::spawn(&backend).await.unwrap();
        store(&a, pageview(&site, 0, "/")).await;
        store(&b, pageview(&site, 10, "/b")).await;
        // 35 minutes after the last event `a` wrote, but 25 after `b`'s: the same visit.
        store(&a, pageview(&site, 35, "/c")).await;
        // `b` remembers its event at minute 10: 26 minutes, the same visit, from memory.
        store(&b, pageview(&site, 36, "/d")).await;
        assert_eq!(visit_figures(&analytics, &site, vec![]).await, [1.0, 4.0, 2160.0, 0.0]);
        let exit = vec![("is".to_owned(), "visit:exit_page".to_owned(), vec!["/d".to_owned()])];
        assert_eq!(visit_figures(&analytics, &site, exit).await[0], 1.0, "the latest pageview is the exit page");
        // 31 minutes after the visit's last event, known to `b` only: a new visit.
        store(&a, pageview(&site, 67, "/e")).await;
        assert_eq!(visit_figures(&analytics, &site, vec![]).await, [2.0, 5.0, 1080.0, 50.0]);
    })
    .await;
}

/// An event that cannot be stored (its site is gone) fails alone: the events queued with it are
/// stored, and the visit they extend, which the failed transaction had taken from the writer's
/// memory, is read back and extended once, not started again.
#[tokio::test]
async fn a_failed_batch_loses_no_event_and_no_visit() {
    on_each_backend(|backend| async move {
        let (analytics, site, writer) = with_writer(&backend, "failing.example").await;
        store(&writer, pageview(&site, 0, "/")).await;
        // Queued back to back, so that they usually share a transaction.
        let good = writer.enqueue(pageview(&site, 5, "/a")).await.unwrap();
        let orphan = writer.enqueue(pageview("no-such-site", 6, "/x")).await.unwrap();
        let later = writer.enqueue(pageview(&site, 7, "/b")).await.unwrap();
        good.await.unwrap().unwrap();
        assert!(orphan.await.unwrap().is_err(), "an event for a missing site is refused");
        later.await.unwrap().unwrap();
        store(&writer, pageview(&site, 9, "/c")).await;
        assert_eq!(visit_figures(&analytics, &site, vec![]).await, [1.0, 4.0, 540.0, 0.0]);
    })
    .await;
}

/// Today's events, written as they happen (so without bumping the day's pending version), still
/// mark the day pending: it is rolled up whole once it has ended, and only then.
#[tokio::test]
async fn todays_events_are_rolled_up_once_the_day_ends() {
    use analytics::store::DAY_MS;

    on_each_backend(|backend| async move {
        let (analytics, site, writer) = with_writer(&backend, "today.example").await;
        let now = common::time::now_ms();
        for visitor in ["0", "1"] {
            let event = pageview(&site, 0, "/");
            let visitor_id = format!("{visitor}{}", &event.visitor_id[1..]);
            store(&writer, analytics::store::NewEvent { ts: common::time::now_ms(), visitor_id, ..event }).await;
        }
        assert_eq!(analytics.roll_up(now).await.unwrap(), 0, "today is not rolled up");
        assert_eq!(analytics.roll_up(now + DAY_MS).await.unwrap(), 1, "once it has ended, it is");
        assert_eq!(analytics.roll_up(now + DAY_MS).await.unwrap(), 0, "and then it is current");
    })
    .await;
}

/// An event of today stored more than a minute after its instant (an import, a stalled writer)
/// bumps the day's pending version, so that the rolled-up closed part of today stops counting;
/// an event stored as it happens does not, but in the day's last 10 minutes.
#[tokio::test]
async fn an_event_of_today_stored_late_bumps_the_days_version_and_a_live_one_does_not() {
    use analytics::store::{DAY_MS, day_of};

    on_each_backend(|backend| async move {
        let (analytics, site, writer) = with_writer(&backend, "late.example").await;
        let now = common::time::now_ms();
        let day = day_of(now);
        let pool = crate::partitions::analytics_migrated_to(&backend, i64::MAX).await;
        let version = || {
            let query = sqlx::query_scalar::<_, i64>("SELECT version FROM rollup_pending WHERE day = $1").bind(day);
            let pool = pool.clone();
            async move { query.fetch_one(&pool).await.unwrap() }
        };
        let event = |visitor: &str, ts: i64| {
            let event = pageview(&site, 0, "/");
            analytics::store::NewEvent { ts, visitor_id: format!("{visitor}{}", &event.visitor_id[1..]), ..event }
        };
        store(&writer, event("0", now)).await;
        let first = version().await;
        let last_minutes = now >= day + DAY_MS - 10 * 60_000;
        store(&writer, event("1", common::time::now_ms())).await;
        assert_eq!(version().await, first + i64::from(last_minutes), "a live event");
        // Two minutes ago, or the day's first instant when that was yesterday.
        let late = (now - 2 * 60_000).max(day);
        store(&writer, event("2", late)).await;
        let bumped = late < common::time::now_ms() - 60_000 || last_minutes;
        assert_eq!(version().await, first + i64::from(last_minutes) + i64::from(bumped), "a late event");
        drop(analytics);
    })
    .await;
}

/// A pending day that another process (a replica, an import beside the server) claimed is left
/// to it, so that two processes do not compute the same day; an import's rollup waits for it,
/// and rolls the day up once the claim lapses.
#[tokio::test]
async fn a_day_another_process_claimed_is_left_to_it_until_the_claim_lapses() {
    use analytics::store::{DAY_MS, day_of};

    on_each_backend(|backend| async move {
        let (analytics, site, writer) = with_writer(&backend, "claimed.example").await;
        let now = common::time::now_ms();
        let yesterday = day_of(now) - DAY_MS;
        store(&writer, analytics::store::NewEvent { ts: yesterday + DAY_MS / 2, ..pageview(&site, 0, "/") }).await;
        let other = analytics::store::Store::open(&backend, &analytics::Storage::default()).await.unwrap();
        let [(_, day, version)] = other.pending_days(day_of(now)).await.unwrap()[..] else { panic!("one pending day") };
        assert_eq!(day, yesterday);
        assert!(other.claim_day(&site, day, version, now + 1_000).await.unwrap(), "the other process claims it");
        assert_eq!(analytics.roll_up(now).await.unwrap(), 0, "left to the other process");
        // An import command's rollup waits for the other process, here until its claim lapses.
        assert_eq!(analytics.roll_up_closed(now).await.unwrap(), 1, "the claim lapsed");
    })
    .await;
}

/// The rows of a goal made after its site's days were rolled up are added to those days by
/// every process's next rollup (replicas, an import beside the server): two at once both succeed,
/// and the days hold the goal's figures once.
#[tokio::test]
async fn two_processes_adding_a_new_goals_rows_at_once_both_succeed() {
    use analytics::store::{DAY_MS, day_of};

    on_each_backend(|backend| async move {
        let (analytics, site, writer) = with_writer(&backend, "goals-at-once.example").await;
        let now = common::time::now_ms();
        for days_ago in 1..=3 {
            let ts = day_of(now) - days_ago * DAY_MS + DAY_MS / 2;
            store(&writer, analytics::store::NewEvent { ts, ..pageview(&site, 0, "/signup") }).await;
        }
        assert_eq!(analytics.roll_up_closed(now).await.unwrap(), 3);
        let other = analytics::Analytics::open(&backend).await.unwrap();
        let patterns = ["/signup", "/signup*", "/sign*", "/sig*", "/si*", "/s*", "/*", "/**"];
        for pattern in patterns {
            let page = analytics::model::GoalTarget::Page(pattern.into());
            analytics.create_goal(&site, page, None).await.unwrap();
            let (one, two) = tokio::join!(analytics.roll_up(now), other.roll_up(now));
            one.unwrap_or_else(|e| panic!("{pattern}: {e}"));
            two.unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
        let days = |day: i64| chrono::DateTime::from_timestamp_millis(day).unwrap().format("%Y-%m-%d").to_string();
        let range = format!("{},{}", days(day_of(now) - 3 * DAY_MS), days(day_of(now) - DAY_MS));
        let ask = |dimension: &str| {
            let (period, end_day) = asked_period("custom", &range);
            let metrics = vec!["visitors".into()];
            let dimensions = vec![dimension.into()];
            let request = analytics::service::QueryRequest {
                website_id: site.clone(),
                metrics,
                dimensions,
                period,
                end_day,
                ..Default::default()
            };
            analytics.query(request)
        };
        let (pages, _) = ask("event:page").await.unwrap();
        let (goals, _) = ask("event:goal").await.unwrap();
        assert_eq!(goals.rolled_up_days, 3, "read from the rolled-up days");
        let mut names: Vec<&str> = goals.rows.iter().map(|(dims, _)| dims[0].as_str()).collect();
        names.sort_unstable();
        let mut expected: Vec<String> = patterns.iter().map(|p| format!("Visit {p}")).collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
        for (goal, figures) in &goals.rows {
            assert_eq!(figures, &pages.rows[0].1, "{goal:?} counts the page's visitors once");
        }
    })
    .await;
}

/// Rollups answer exactly as raw events do, for generated traffic (engagement events and custom
/// events after pageviews included), every query shape rollups serve, every metric (time on page
/// and scroll depth too), and a site in UTC and sites in other zones, whose local days visits
/// straddle, on each backend.
#[tokio::test]
async fn rollups_answer_as_raw_events_do() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let mut shapes = Vec::new();
        for (domain, tz) in
            [("utc.example", "UTC"), ("tokyo.example", "Asia/Tokyo"), ("newyork.example", "America/New_York")]
        {
            let site = analytics.create_website("t", domain, "G", Some(tz)).await.unwrap();
            analytics.import(analytics::generate::traffic(domain, end, 20, 4_000, 3)).await.unwrap();
            let all = EVERY_METRIC;
            for dims in [
                vec![],
                vec!["event:page"],
                vec!["visit:source"],
                vec!["visit:exit_page"],
                vec!["time:day"],
                vec!["time:week", "visit:country"],
                vec!["time:month"],
                vec!["visit:referrer"],
                vec!["visit:channel"],
                vec!["visit:utm_content"],
                vec!["visit:utm_term"],
                vec!["event:hostname"],
                vec!["visit:browser_version"],
                vec!["time:day", "visit:os_version"],
            ] {
                // A share needs a dimension.
                let all = if dims.is_empty() { all.to_owned() } else { format!("{all},percentage") };
                for date in ["2026-03-10,2026-03-19", "2026-03-01,2026-03-20", "2026-03-19,2026-03-19"] {
                    shapes.push(QueryRequest {
                        website_id: site.id.clone(),
                        metrics: all.split(',').map(str::to_owned).collect(),
                        dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
                        period: asked_period("custom", date).0,
                        fill_time: true,
                        ..Default::default()
                    });
                }
            }
        }
        let answers = |analytics: analytics::Analytics, shapes: Vec<QueryRequest>| async move {
            let (mut all, mut rolled_up_days) = (Vec::new(), 0);
            for shape in shapes {
                let what = format!("{:?} {:?}", shape.dimensions, shape.period);
                let (answer, _) = analytics.query(shape).await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                rolled_up_days += answer.rolled_up_days;
                // No value (NaN) compares equal to no value.
                let rows: Vec<_> = answer
                    .rows
                    .into_iter()
                    .map(|(dims, values)| {
                        (dims, values.into_iter().map(|v| if v.is_nan() { -1.0 } else { v }).collect())
                    })
                    .collect::<Vec<(Vec<String>, Vec<f64>)>>();
                all.push(rows);
            }
            (all, rolled_up_days)
        };
        let (raw, none) = answers(analytics.clone(), shapes.clone()).await;
        assert_eq!(none, 0, "nothing is rolled up yet");
        assert!(raw[0][0].1[0] > 100.0, "traffic was generated: {:?}", raw[0]);
        assert!(raw[0][0].1[7] > 0.0 && raw[0][0].1[8] > 0.0, "with engagement: {:?}", raw[0]);
        let rolled = analytics.roll_up(end).await.unwrap();
        assert!(rolled >= 57, "three sites, 20 closed days each: {rolled}");
        let (from_rollups, used) = answers(analytics.clone(), shapes.clone()).await;
        assert!(used > 200, "most shapes read rollups: {used} days");
        for ((shape, raw), rolled) in shapes.iter().zip(&raw).zip(&from_rollups) {
            assert_eq!(raw, rolled, "{:?} {:?}", shape.dimensions, shape.period);
        }
    })
    .await;
}

/// A refusal that may pass (a statement timeout, the server ending the session, a locked SQLite
/// file) is a 503, `SERVICE_UNAVAILABLE`, on both backends; a wrong statement stays a fault.
#[tokio::test]
async fn passing_database_refusals_are_unavailable() {
    use sqlx::{AnyConnection, Connection as _, Executor as _};
    sqlx::any::install_default_drivers();
    let code = |e: sqlx::Error| common::Error::from(e).code;

    let database = TestDatabase::create().await;
    let mut pg = AnyConnection::connect(&database.url).await.unwrap();
    let slow = pg.execute("SET statement_timeout = '10ms'; SELECT pg_sleep(1)").await.unwrap_err();
    assert_eq!(code(slow), ErrorCode::ServiceUnavailable);
    let wrong = pg.execute("SELECT nothing FROM nowhere").await.unwrap_err();
    assert_eq!(code(wrong), ErrorCode::Internal);
    let ended = pg.execute("SELECT pg_terminate_backend(pg_backend_pid())").await.unwrap_err();
    assert_eq!(code(ended), ErrorCode::ServiceUnavailable);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("busy.db").display());
    let mut holder = AnyConnection::connect(&url).await.unwrap();
    holder.execute("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").await.unwrap();
    let mut other = AnyConnection::connect(&url).await.unwrap();
    other.execute("PRAGMA busy_timeout = 0").await.unwrap();
    let busy = other.execute("INSERT INTO t VALUES (2)").await.unwrap_err();
    assert_eq!(code(busy), ErrorCode::ServiceUnavailable);
    let wrong = other.execute("INSERT INTO nowhere VALUES (2)").await.unwrap_err();
    assert_eq!(code(wrong), ErrorCode::Internal);
}

/// A query's rows with NaN (no value) as -1, so that no value compares equal to no value; and
/// how many days rollups served.
async fn rows_of(
    analytics: &analytics::Analytics,
    request: analytics::service::QueryRequest,
) -> (Vec<(Vec<String>, Vec<f64>)>, usize) {
    let what = format!("{:?} {:?} {:?}", request.dimensions, request.filters, request.period);
    let (answer, _) = analytics.query(request).await.unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let rows = answer
        .rows
        .into_iter()
        .map(|(dims, values)| (dims, values.into_iter().map(|v| if v.is_nan() { -1.0 } else { v }).collect()))
        .collect();
    (rows, answer.rolled_up_days)
}

/// Each shape's answer equals raw events' (the same query with a filter on events that excludes
/// nothing, which neither rollups nor visits answer); returns how many days rollups served in all.
async fn answers_equal_raw(analytics: &analytics::Analytics, shapes: &[analytics::service::QueryRequest]) -> usize {
    let mut served = 0;
    for shape in shapes {
        let (rows, days) = rows_of(analytics, shape.clone()).await;
        let mut raw = shape.clone();
        raw.filters.push(("is_not".into(), "event:name".into(), vec!["no such event".into()]));
        let (expected, none) = rows_of(analytics, raw).await;
        assert_eq!(none, 0, "a filter rollups do not keep reads raw events");
        assert_eq!(rows, expected, "{:?} {:?} {:?}", shape.dimensions, shape.filters, shape.period);
        served += days;
    }
    served
}

/// Rollup pieces (a UTC day cut at the site's local midnights and hours) and rows chosen by a
/// filter answer exactly as raw events do: daily and hourly series, totals and breakdowns,
/// filtered by one source or one page, over periods whose first and last local days are parts
/// of UTC days, in America/New_York across its DST change, in Asia/Kolkata (a half-hour zone)
/// and in UTC; after the site changes its time zone, before and after its days are cut again;
/// and after a late event lands in a rolled-up day.
#[tokio::test]
async fn rollup_pieces_and_filters_answer_as_raw_events_do() {
    use analytics::service::{QueryRequest, WebsiteChanges};

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let all = EVERY_METRIC;
        let shapes_of = |site: &str| {
            let mut shapes = Vec::new();
            let filters: [Vec<(String, String, Vec<String>)>; 3] = [
                vec![],
                vec![("is".into(), "visit:source".into(), vec!["Google".into()])],
                vec![("is".into(), "event:page".into(), vec!["/pricing".into()])],
            ];
            for filters in filters {
                for dims in
                    [vec![], vec!["time:day"], vec!["time:hour"], vec!["event:page"], vec!["time:day", "visit:source"]]
                {
                    // US clocks moved forward on 2026-03-08: a 23-hour local day.
                    for date in ["2026-03-08,2026-03-08", "2026-03-07,2026-03-09", "2026-03-10,2026-03-19"] {
                        if dims.len() > 1 && !filters.is_empty() {
                            continue;
                        }
                        shapes.push(QueryRequest {
                            website_id: site.to_owned(),
                            metrics: all.split(',').map(str::to_owned).collect(),
                            dimensions: dims.iter().map(|d| (*d).to_owned()).collect(),
                            filters: filters.clone(),
                            period: asked_period("custom", date).0,
                            fill_time: true,
                            ..Default::default()
                        });
                    }
                }
            }
            shapes
        };
        let sites = sites_in_three_zones(&analytics, end).await;
        let shapes: Vec<QueryRequest> = sites.iter().flat_map(|site| shapes_of(site)).collect();
        assert_eq!(answers_equal_raw(&analytics, &shapes).await, 0, "nothing is rolled up yet");
        assert!(analytics.roll_up(end).await.unwrap() >= 57, "three sites, 20 closed days each");
        for site in &sites {
            let served = answers_equal_raw(&analytics, &shapes_of(site)).await;
            // Rollups keep hours as totals only and one dimension per row: 9 shapes of each
            // period (1, 3 and 10 local days, 14 in all) read them for the closed days.
            assert!(served >= 9 * 14, "rollups served {served} days");
        }

        // New York moves to Kolkata's zone: its pieces no longer fit until cut again.
        let kolkata = WebsiteChanges { name: None, timezone: Some("Asia/Kolkata".into()) };
        analytics.update_website(&sites[0], kolkata).await.unwrap();
        answers_equal_raw(&analytics, &shapes_of(&sites[0])).await;
        assert!(analytics.roll_up(end).await.unwrap() >= 20, "its days are cut again");
        assert!(answers_equal_raw(&analytics, &shapes_of(&sites[0])).await >= 9 * 14);

        // A late event in a rolled-up day: raw events answer for that day until it is rolled up again.
        let late = chrono::DateTime::parse_from_rfc3339("2026-03-12T18:00:00Z").unwrap().timestamp_millis();
        let mut event = analytics::generate::traffic("ny.example", late, 1, 10, 9).last().unwrap();
        event.0 = late;
        assert_eq!(analytics.import(vec![event]).await.unwrap(), 1);
        answers_equal_raw(&analytics, &shapes_of(&sites[0])).await;
        assert_eq!(analytics.roll_up(end).await.unwrap(), 1, "the day written to");
        answers_equal_raw(&analytics, &shapes_of(&sites[0])).await;
    })
    .await;
}

/// A query's filters: (operator, dimension, values).
type Filters = Vec<(String, String, Vec<String>)>;

/// A filter `is` one value of a dimension.
fn is(dim: &str, value: &str) -> (String, String, Vec<String>) {
    ("is".to_owned(), dim.to_owned(), vec![value.to_owned()])
}

/// Pairs of dimensions answer exactly as raw events do once a query has asked for them: two
/// dimensions, one dimension filtered by one value of another (a custom property by event name
/// included), with a daily series, in America/New_York, Asia/Kolkata and UTC. A pair asked for
/// after the days were rolled up is added to them by the next rollup; a late event sends its day
/// back to raw events until it is rolled up again.
#[tokio::test]
async fn pairs_of_dimensions_answer_as_raw_events_do_once_asked_for() {
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let all = EVERY_METRIC;
        let shapes_of = |site: &str| {
            let asked: [(Vec<&str>, Filters); 6] = [
                (vec!["visit:source", "event:page"], vec![]),
                (vec!["event:page", "visit:source"], vec![]),
                (vec!["time:day", "visit:country", "visit:device"], vec![]),
                (vec!["event:page"], vec![is("visit:source", "Google")]),
                (vec!["time:day", "visit:source"], vec![is("event:page", "/pricing")]),
                (vec!["event:props:plan"], vec![is("event:name", "Signup")]),
            ];
            custom_shapes(site, all, &asked)
        };
        let sites = sites_in_three_zones(&analytics, end).await;
        assert!(analytics.roll_up(end).await.unwrap() >= 57, "three sites, 20 closed days each");
        for site in &sites {
            // Asked for the first time: raw events answer, and the pairs are recorded.
            assert_eq!(answers_equal_raw(&analytics, &shapes_of(site)).await, 0, "no pair is rolled up yet");
        }
        assert_eq!(analytics.roll_up(end).await.unwrap(), 0, "no day is pending");
        for site in &sites {
            // Every shape over 1 and 10 local days, 11 UTC days at least; but sources by a
            // page: its bounce rate is of the visits entering on the page, by source, which
            // no pair holds (raw events answer that part, and the days count as raw).
            let served = answers_equal_raw(&analytics, &shapes_of(site)).await;
            assert!(served >= 5 * 11, "pairs served {served} days");
        }
        let (rows, _) = rows_of(&analytics, shapes_of(&sites[2])[11].clone()).await;
        let plans: Vec<&str> = rows.iter().map(|(dims, _)| dims[0].as_str()).collect();
        assert!(plans.contains(&"business") && plans.contains(&"starter"), "a property broken down: {plans:?}");

        let late = chrono::DateTime::parse_from_rfc3339("2026-03-12T18:00:00Z").unwrap().timestamp_millis();
        let mut event = analytics::generate::traffic("ny.example", late, 1, 10, 9).last().unwrap();
        event.0 = late;
        assert_eq!(analytics.import(vec![event]).await.unwrap(), 1);
        answers_equal_raw(&analytics, &shapes_of(&sites[0])).await;
        assert_eq!(analytics.roll_up(end).await.unwrap(), 1, "the day written to, with its pairs");
        assert!(answers_equal_raw(&analytics, &shapes_of(&sites[0])).await >= 5 * 11);
    })
    .await;
}

/// Rollups answer exactly as raw events do a dimension filtered by one of its own values, a
/// query filtered by one value of each of two dimensions, and a bounce rate under a page filter
/// (that of the visits entering on the page, read from the pair of page and entry page), also
/// grouped by page as Plausible computes it, once the pairs they need are rolled up: over one
/// and ten local days in America/New_York, Asia/Kolkata and UTC.
#[tokio::test]
async fn own_values_two_filters_and_bounces_under_a_page_filter_answer_from_rollups_as_raw_events_do() {
    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let all = EVERY_METRIC;
        let shapes_of = |site: &str| {
            let asked: [(Vec<&str>, Filters); 8] = [
                (vec![], vec![is("event:page", "/pricing")]),
                (vec!["time:day"], vec![is("event:page", "/pricing")]),
                (vec!["event:page"], vec![is("event:page", "/pricing")]),
                (vec!["visit:entry_page"], vec![is("visit:entry_page", "/pricing")]),
                (vec!["time:day"], vec![is("visit:source", "Google"), is("visit:country", "DE")]),
                (vec![], vec![is("visit:country", "DE"), is("visit:device", "Desktop")]),
                // A value JSON escapes, of more bytes than characters, first in the pair (entry
                // page, source) and last in (page, entry page): rows are picked by their text.
                (vec!["visit:source"], vec![is("visit:entry_page", ODD_PAGE)]),
                (vec!["event:page"], vec![is("visit:entry_page", ODD_PAGE)]),
            ];
            let mut shapes = custom_shapes(site, all, &asked);
            // Grouped by page, Plausible's session figures are of the visits entering on it.
            let plausible = custom_shapes(site, all, &[(vec!["event:page"], vec![is("event:page", "/pricing")])]);
            shapes.extend(plausible.into_iter().map(|shape| analytics::service::QueryRequest {
                meaning: analytics::period::Meaning::PlausibleV2,
                ..shape
            }));
            shapes
        };
        let sites = sites_in_three_zones(&analytics, end).await;
        let at = chrono::DateTime::parse_from_rfc3339("2026-03-12T18:00:00Z").unwrap().timestamp_millis();
        for domain in ["ny.example", "kolkata.example", "z.example"] {
            let (_, mut event) = analytics::generate::traffic(domain, at, 1, 10, 9).next().unwrap();
            event.name = "pageview".into();
            event.url = format!("https://{domain}/caf%C3%A9/%22q%22");
            event.client_ip = "203.0.113.77".into();
            assert_eq!(analytics.import(vec![(at, event)]).await.unwrap(), 1);
        }
        for site in &sites {
            // Asked for the first time before any rollup: raw events answer, and the pairs
            // are recorded.
            assert_eq!(answers_equal_raw(&analytics, &shapes_of(site)).await, 0, "nothing is rolled up yet");
        }
        assert!(analytics.roll_up(end).await.unwrap() >= 57, "three sites, 20 closed days each");
        for site in &sites {
            let shapes = shapes_of(site);
            // Over ten days (every second shape) each has visitors.
            for shape in shapes.iter().skip(1).step_by(2) {
                let (rows, _) = rows_of(&analytics, shape.clone()).await;
                let visitors: f64 = rows.iter().map(|(_, values)| values[0]).sum();
                assert!(visitors > 0.0, "the traffic has visitors for {:?} {:?}", shape.dimensions, shape.filters);
            }
            // Every shape, its entering visits included, over 1 and 10 local days: 11 UTC days
            // at least each.
            let served = served_by_each(&analytics, &shapes).await;
            assert!(served >= shapes.len() / 2 * 11, "rollups served {served} days");
        }
    })
    .await;
}

/// A page whose text JSON escapes (`"`) and whose `é` is two bytes.
const ODD_PAGE: &str = "/café/\"q\"";

/// A site keeps at most 32 pairs of dimensions in its rollups; a query of another pair still
/// answers, from raw events.
#[tokio::test]
async fn a_site_keeps_at_most_32_pairs_and_answers_the_others_from_raw_events() {
    use analytics::service::QueryRequest;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let site = analytics.create_website("t", "many.example", "P", Some("UTC")).await.unwrap();
        analytics.import(analytics::generate::traffic("many.example", end, 3, 300, 5)).await.unwrap();
        analytics.roll_up(end).await.unwrap();
        let dims = [
            "event:page",
            "visit:source",
            "visit:country",
            "visit:device",
            "visit:browser",
            "visit:os",
            "visit:entry_page",
        ];
        let props: Vec<String> = (0..4).map(|i| format!("event:props:p{i}")).collect();
        let mut pairs = Vec::new();
        for (i, a) in dims.iter().map(|d| d.to_string()).chain(props).enumerate() {
            for b in &dims[..i.min(dims.len())] {
                pairs.push(vec![a.clone(), b.to_string()]);
            }
        }
        assert!(pairs.len() > 33, "{}", pairs.len());
        let shape = |dims: &Vec<String>| QueryRequest {
            website_id: site.id.clone(),
            metrics: vec!["visitors".into(), "visits".into()],
            dimensions: dims.clone(),
            period: asked_period("custom", "2026-03-18,2026-03-19").0,
            ..Default::default()
        };
        for dims in &pairs {
            rows_of(&analytics, shape(dims)).await;
        }
        analytics.roll_up(end).await.unwrap();
        let mut served = 0;
        for dims in &pairs {
            let shapes = [shape(dims)];
            if answers_equal_raw(&analytics, &shapes).await > 0 {
                served += 1;
            }
        }
        assert_eq!(served, 32, "of {} pairs asked for", pairs.len());
    })
    .await;
}

/// Goals answer from rollups exactly as from raw events: conversions by goal (custom events,
/// a page and a page pattern) with their conversion rates and (no goal having a currency) their
/// revenue metrics of no value, one goal's over days, and the goals filtered by one of them, in
/// America/New_York, Asia/Kolkata and UTC. A goal made after the days were rolled up is added
/// to them by the next rollup; until then its figures come from raw events.
#[tokio::test]
async fn goals_answer_from_rollups_as_raw_events_do() {
    use analytics::model::GoalTarget;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let shapes_of = |site: &str| {
            // Revenue metrics too, as the console asks them: no goal here has a currency.
            let metrics =
                "visitors,visits,events,conversion_rate,bounce_rate,time_on_page,total_revenue,average_revenue";
            let asked: [(Vec<&str>, Filters); 5] = [
                (vec!["event:goal"], vec![]),
                (vec!["time:day", "event:goal"], vec![]),
                (vec!["time:day"], vec![is("event:goal", "Visit /pricing")]),
                // The goals card filtered by a goal: no other goal completes its events, until
                // a page pattern beside the page's goal might.
                (vec!["event:goal"], vec![is("event:goal", "Signup")]),
                (vec!["event:goal"], vec![is("event:goal", "Visit /pricing")]),
            ];
            custom_shapes(site, metrics, &asked)
        };
        let sites = sites_in_three_zones(&analytics, end).await;
        for site in &sites {
            for target in [GoalTarget::Event("Signup".into()), GoalTarget::Page("/pricing".into())] {
                analytics.create_goal(site, target, None).await.unwrap();
            }
        }
        assert!(analytics.roll_up(end).await.unwrap() >= 57, "three sites, 20 closed days each");
        for site in &sites {
            // Five shapes over 1 and 10 local days, 11 UTC days at least.
            let served = served_by_each(&analytics, &shapes_of(site)).await;
            assert!(served >= 5 * 11, "goals served {served} days");
        }
        let (rows, _) = rows_of(&analytics, shapes_of(&sites[2])[1].clone()).await;
        assert_eq!(rows.len(), 2, "both goals converted: {rows:?}");
        let (rows, _) = rows_of(&analytics, shapes_of(&sites[2])[7].clone()).await;
        let goals: Vec<&str> = rows.iter().map(|(values, _)| values[0].as_str()).collect();
        assert_eq!(goals, ["Signup"], "the goal filtered by alone");

        // A goal made now: raw events answer for it until the next rollup adds it.
        for site in &sites {
            analytics.create_goal(site, GoalTarget::Page("/blog*".into()), None).await.unwrap();
            assert_eq!(answers_equal_raw(&analytics, &shapes_of(site)[..2]).await, 0, "not rolled up with it yet");
            assert_eq!(answers_equal_raw(&analytics, &shapes_of(site)[8..]).await, 0, "a pattern may overlap");
        }
        assert_eq!(analytics.roll_up(end).await.unwrap(), 0, "no day is pending");
        for site in &sites {
            assert!(answers_equal_raw(&analytics, &shapes_of(site)).await >= 4 * 11);
        }
        let (rows, _) = rows_of(&analytics, shapes_of(&sites[2])[1].clone()).await;
        assert_eq!(rows.len(), 3, "the new goal converted too: {rows:?}");
    })
    .await;
}

/// A site's goals by another dimension answer from rollups exactly as from raw events once a
/// query has asked for them: goals filtered by a source or a page, sources filtered by a goal,
/// goals by source, and one goal filtered by a country, with conversion rates, in
/// America/New_York, Asia/Kolkata and UTC. A goal made later reads raw events for these shapes
/// until the next rollup adds its rows.
#[tokio::test]
async fn goals_by_another_dimension_answer_from_rollups_as_raw_events_do_once_asked_for() {
    use analytics::model::GoalTarget;

    on_each_backend(|backend| async move {
        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let end = generated_until();
        let shapes_of = |site: &str| {
            // Not `bounce_rate`: under a page filter it is of the visits entering on the page,
            // which no goal's rows hold.
            let metrics = "visitors,visits,events,conversion_rate,visit_duration,time_on_page,total_revenue";
            let asked: [(Vec<&str>, Filters); 5] = [
                (vec!["event:goal"], vec![is("visit:source", "Google")]),
                (vec!["time:day", "event:goal"], vec![is("event:page", "/pricing")]),
                (vec!["visit:source"], vec![is("event:goal", "Signup")]),
                (vec!["visit:source", "event:goal"], vec![]),
                (vec![], vec![is("visit:country", "DE"), is("event:goal", "Visit /pricing")]),
            ];
            custom_shapes(site, metrics, &asked)
        };
        let sites = sites_in_three_zones(&analytics, end).await;
        for site in &sites {
            for target in [GoalTarget::Event("Signup".into()), GoalTarget::Page("/pricing".into())] {
                analytics.create_goal(site, target, None).await.unwrap();
            }
        }
        assert!(analytics.roll_up(end).await.unwrap() >= 57, "three sites, 20 closed days each");
        for site in &sites {
            assert_eq!(answers_equal_raw(&analytics, &shapes_of(site)).await, 0, "not asked for before");
        }
        assert_eq!(analytics.roll_up(end).await.unwrap(), 0, "no day is pending");
        for site in &sites {
            // Over ten days (every second shape) each has visitors.
            for shape in shapes_of(site).into_iter().skip(1).step_by(2) {
                let (rows, _) = rows_of(&analytics, shape.clone()).await;
                let visitors: f64 = rows.iter().map(|(_, values)| values[0]).sum();
                assert!(visitors > 0.0, "the traffic has visitors for {:?} {:?}", shape.dimensions, shape.filters);
            }
            // Five shapes over 1 and 10 local days, 11 UTC days at least.
            let served = served_by_each(&analytics, &shapes_of(site)).await;
            assert!(served >= 5 * 11, "goals by a dimension served {served} days");
        }

        // A goal made now: the shapes grouped by goal read raw events until the next rollup.
        let by_goal = |site: &str| -> Vec<_> {
            shapes_of(site).into_iter().filter(|s| s.dimensions.iter().any(|d| d == "event:goal")).collect()
        };
        for site in &sites {
            analytics.create_goal(site, GoalTarget::Page("/blog*".into()), None).await.unwrap();
            assert_eq!(answers_equal_raw(&analytics, &by_goal(site)).await, 0, "not rolled up with it yet");
        }
        assert_eq!(analytics.roll_up(end).await.unwrap(), 0, "no day is pending");
        for site in &sites {
            assert!(answers_equal_raw(&analytics, &shapes_of(site)).await >= 5 * 11);
        }
        // Sources by goal over ten days.
        let (rows, _) = rows_of(&analytics, by_goal(&sites[2])[5].clone()).await;
        let goals: std::collections::BTreeSet<&str> = rows.iter().map(|(dims, _)| dims[1].as_str()).collect();
        assert_eq!(goals.len(), 3, "the new goal converted too: {goals:?}");
    })
    .await;
}

/// As [`answers_equal_raw`], and rollups served each shape some days.
async fn served_by_each(analytics: &analytics::Analytics, shapes: &[analytics::service::QueryRequest]) -> usize {
    let mut served = 0;
    for shape in shapes {
        let days = answers_equal_raw(analytics, std::slice::from_ref(shape)).await;
        assert!(days > 0, "read from rollups: {:?} {:?} {:?}", shape.dimensions, shape.filters, shape.period);
        served += days;
    }
    served
}

/// Every metric of a query without goals, as the rollup tests ask them.
const EVERY_METRIC: &str =
    "visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events,time_on_page,scroll_depth";

/// The instant the rollup tests generate their traffic up to: 2026-03-20 15:30 UTC, after New
/// York's DST change.
fn generated_until() -> i64 {
    chrono::DateTime::parse_from_rfc3339("2026-03-20T15:30:00Z").unwrap().timestamp_millis()
}

/// Three sites with 20 days of generated traffic before `end`, in America/New_York (a DST change
/// on 2026-03-08), Asia/Kolkata (a half-hour zone) and UTC: their ids.
async fn sites_in_three_zones(analytics: &analytics::Analytics, end: i64) -> Vec<String> {
    let mut sites = Vec::new();
    for (domain, tz) in [("ny.example", "America/New_York"), ("kolkata.example", "Asia/Kolkata"), ("z.example", "UTC")]
    {
        let site = analytics.create_website("t", domain, "P", Some(tz)).await.unwrap();
        analytics.import(analytics::generate::traffic(domain, end, 20, 3_000, 5)).await.unwrap();
        sites.push(site.id);
    }
    sites
}

/// A query of `metrics` for each (dimensions, filters) asked, over one local day across New
/// York's DST change and over ten days.
fn custom_shapes(site: &str, metrics: &str, asked: &[(Vec<&str>, Filters)]) -> Vec<analytics::service::QueryRequest> {
    let mut shapes = Vec::new();
    for (dims, filters) in asked {
        for date in ["2026-03-08,2026-03-08", "2026-03-10,2026-03-19"] {
            let shape = shape(site, metrics, dims, asked_period("custom", date).0);
            shapes.push(analytics::service::QueryRequest { filters: filters.clone(), ..shape });
        }
    }
    shapes
}

/// A COMMIT that fails after SQLite ended the transaction itself (as it does on a full disk)
/// leaves sqlx counting the connection in a transaction, so that every later BEGIN on it fails:
/// the pool closes such a connection rather than hand it out again.
#[tokio::test]
async fn a_connection_a_failed_commit_left_in_a_transaction_is_not_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite { data_dir: dir.path().to_owned() };
    let pool = common::db::open(&backend, "poisoned", &sqlx::migrate::Migrator::DEFAULT).await.unwrap();
    let mut tx = common::db::begin_write(&pool, "sqlite").await.unwrap();
    // SQLite's transaction ends underneath sqlx, as a full disk's automatic rollback ends it.
    sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    assert!(tx.commit().await.is_err(), "nothing left to commit");
    for _ in 0..20 {
        let tx = common::db::begin_write(&pool, "sqlite").await.unwrap();
        tx.commit().await.unwrap();
    }
}
