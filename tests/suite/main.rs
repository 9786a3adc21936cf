//! The whole-system test suite: every scenario runs through the gateway, in the all-in-one mode
//! and in the split mode (separate processes, PostgreSQL, Redis).

mod conformance;
mod events;
mod harness;
mod hello;
mod keys;
mod limits;
mod operations;
mod propagation;
mod tracing;
