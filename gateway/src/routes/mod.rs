pub mod account;
pub mod external;
