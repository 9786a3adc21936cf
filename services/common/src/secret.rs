//! Opaque random tokens and the digests stored in their place.

use std::fmt;

use rand::{Rng, distributions::Alphanumeric};
use sha2::{Digest as _, Sha256};

/// SHA-256 of a secret: what stores keep and look up instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(secret: &str) -> Self {
        Digest(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Digest)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// A fresh random token: `prefix` + 43 base62 characters (over 256 bits).
pub fn random_token(prefix: &str) -> String {
    let body: String = rand::thread_rng().sample_iter(Alphanumeric).take(43).map(char::from).collect();
    format!("{prefix}{body}")
}

pub use telemetry::redact::{KEY_PREFIX, secrets as redact_secrets};

/// Lower-case hex, the form digests are stored in.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stored_as_lower_case_hex_of_sha_256() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(Digest::of("abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
