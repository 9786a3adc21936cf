pub mod account;
pub mod events;
pub mod external;
pub mod teams;
