//! The whole-system test suite: every scenario runs through the gateway, in the all-in-one mode
//! and in the split mode (separate processes, PostgreSQL, Redis).

/// Runs each named scenario `async fn(&TestEnv)` once per mode: `all_in_one::<name>` and
/// `split::<name>`. Scenarios after `; gateway FLAGS =>` run with the gateway's own flags, a
/// `harness::GatewayFlags` constant of the module, given to the all-in-one process and to the
/// split mode's gateway.
macro_rules! both_modes {
    ($($scenario:ident),* $(,)? $(; gateway $flags:ident => $($configured:ident),+ $(,)?)*) => {
        mod all_in_one {
            $(#[tokio::test] async fn $scenario() { super::$scenario(&crate::harness::TestEnv::all_in_one().await).await; })*
            $($(#[tokio::test] async fn $configured() {
                super::$configured(&crate::harness::TestEnv::all_in_one_with_gateway(super::$flags).await).await;
            })+)*
        }
        mod split {
            $(#[tokio::test] async fn $scenario() { super::$scenario(&crate::harness::TestEnv::split(1).await).await; })*
            $($(#[tokio::test] async fn $configured() {
                super::$configured(&crate::harness::TestEnv::split_with_gateway(super::$flags).await).await;
            })+)*
        }
    };
}

mod caches;
mod conformance;
mod console;
mod events;
mod fidelity;
mod goals;
mod hardening;
mod harness;
mod hello;
mod keys;
mod limits;
mod login;
mod mcp;
mod openapi;
mod operations;
mod partitions;
mod plausible_semantics;
mod postgres_pair;
mod propagation;
mod properties;
mod races;
mod redis_cluster;
mod replicas;
mod secret_scanning;
mod tls;
mod tracing;
