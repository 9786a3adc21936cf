pub mod account;
pub mod events;
pub mod external;
pub mod stats;
pub mod teams;
