//! The whole-system test suite: every scenario runs through the gateway, in the all-in-one mode
//! and in the split mode (separate processes, PostgreSQL, Redis).

/// Runs each named scenario `async fn(&TestEnv)` once per mode: `all_in_one::<name>` and
/// `split::<name>`.
macro_rules! both_modes {
    ($($scenario:ident),*) => {
        mod all_in_one {
            $(#[tokio::test] async fn $scenario() { super::$scenario(&crate::harness::TestEnv::all_in_one().await).await; })*
        }
        mod split {
            $(#[tokio::test] async fn $scenario() { super::$scenario(&crate::harness::TestEnv::split(1).await).await; })*
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
mod postgres_pair;
mod propagation;
mod properties;
mod redis_cluster;
mod replicas;
mod secret_scanning;
mod tracing;
