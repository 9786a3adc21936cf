//! The application layer (ARCHITECTURE.md, "Code map"): one use case per function, owning the
//! calls across services and returning typed results. The HTTP faces under `routes/` (REST, the
//! Plausible drop-in, MCP, the console's session routes) parse, call a flow and render.

pub mod access;
pub mod goals;
pub mod keys;
pub mod stats;
pub mod teams;
pub mod websites;
