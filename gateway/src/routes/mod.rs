pub mod account;
pub mod events;
pub mod external;
pub mod mcp;
pub mod oauth;
pub mod stats;
pub mod teams;
pub mod websites;
