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

        /// Most events in one `IngestEvents` call.
        pub const MAX_INGEST_EVENTS: usize = 200;
        /// Largest event, encoded, that a gateway forwards: room for the largest one Plausible
        /// takes (30 properties of a 300-byte name and a 2,000-byte value, each character
        /// escaped, 2 KiB URLs) and for properties it drops (past the 30th, lists, objects).
        pub const MAX_EVENT_BYTES: usize = 160 * 1024;
        /// Largest call the analytics server decodes: a full `IngestEvents` batch of the largest
        /// events, with room for each event's framing.
        pub const MAX_CALL_BYTES: usize = MAX_INGEST_EVENTS * (MAX_EVENT_BYTES + 16) + 64 * 1024;
        /// Largest `Query` answer, encoded: a larger one is refused, asking for fewer rows. Ten
        /// thousand rows (the most a page asks) of long values would need hundreds of MiB.
        pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
        /// What a client of analytics decodes: the largest answer, with room for its framing.
        pub const MAX_REPLY_BYTES: usize = MAX_ANSWER_BYTES + 64 * 1024;
    }
}

/// Encoded descriptors of every service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("zenovay_descriptor");

pub mod vocabulary;
