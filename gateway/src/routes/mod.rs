pub mod account;
pub mod external;
pub mod teams;
