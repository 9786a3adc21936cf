//! Generated gRPC contracts. The `.proto` files under `zenovay/` are the source of truth;
//! every service converts these types to its own domain types at its edge.

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("zenovay.identity.v1");
    }
}

pub mod policy {
    pub mod v1 {
        tonic::include_proto!("zenovay.policy.v1");

        /// The method each decision of `AuthorizeMany` is traced as, as if made alone.
        pub const AUTHORIZE_PATH: &str = "/zenovay.policy.v1.PolicyService/Authorize";
        /// Most decisions in one `AuthorizeMany` call (policy.proto).
        pub const MAX_AUTHORIZE_CALLS: usize = 256;
    }
}

pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("zenovay.analytics.v1");
    }
}

/// Encoded descriptors of every service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("zenovay_descriptor");

pub mod vocabulary;
