//! What identity stores for a key: HMAC-SHA-256, under a versioned server secret, of the SHA-256
//! digest the gateway sends. A stolen database is useless without the secret; the version lets
//! the secret rotate without invalidating keys.

use std::fmt;

use common::secret::{Digest, to_hex};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Server secrets by version, the current one first.
#[derive(Clone)]
pub struct KeyHasher {
    secrets: Vec<(u32, Vec<u8>)>,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<u32> = self.secrets.iter().map(|(v, _)| *v).collect();
        write!(f, "KeyHasher {{ versions: {versions:?} }}")
    }
}

/// The lower-case hex of a stored digest and the secret version that keyed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub version: u32,
    pub hex: String,
}

impl KeyHasher {
    /// `spec` is `version:secret[,version:secret…]`, the current secret first; versions are
    /// positive and distinct, secrets at least 32 characters.
    pub fn parse(spec: &str) -> Result<KeyHasher, String> {
        let mut secrets = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (version, secret) = part.split_once(':').ok_or("each key-hash secret is written version:secret")?;
            let version: u32 = version.parse().map_err(|_| "a key-hash secret version must be a positive number")?;
            if version == 0 || secrets.iter().any(|(v, _)| *v == version) {
                return Err("key-hash secret versions must be positive and distinct".into());
            }
            if secret.len() < 32 {
                return Err("each key-hash secret must be at least 32 characters".into());
            }
            secrets.push((version, secret.as_bytes().to_vec()));
        }
        if secrets.is_empty() {
            return Err("at least one key-hash secret is required".into());
        }
        Ok(KeyHasher { secrets })
    }

    fn keyed(secret: &[u8], digest: &Digest) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(digest.as_bytes());
        to_hex(&mac.finalize().into_bytes())
    }

    /// What to store for a new key.
    pub fn stored(&self, digest: &Digest) -> Stored {
        let (version, secret) = &self.secrets[0];
        Stored { version: *version, hex: Self::keyed(secret, digest) }
    }

    pub fn current_version(&self) -> u32 {
        self.secrets[0].0
    }

    /// Every form a key with this digest may be stored under, current first.
    pub fn candidates(&self, digest: &Digest) -> Vec<Stored> {
        let mut all: Vec<Stored> = self
            .secrets
            .iter()
            .map(|(version, secret)| Stored { version: *version, hex: Self::keyed(secret, digest) })
            .collect();
        all.push(Stored { version: 0, hex: digest.to_hex() });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-secret-of-at-least-thirty-two-chars";
    const B: &str = "another-secret-at-least-thirty-two-chars";

    #[test]
    fn digests_are_keyed_and_versioned() {
        let digest = Digest::of("zv_example");
        let one = KeyHasher::parse(&format!("1:{A}")).unwrap();
        let rotated = KeyHasher::parse(&format!("2:{B},1:{A}")).unwrap();
        assert_ne!(one.stored(&digest).hex, digest.to_hex(), "keyed, not the bare digest");
        assert_eq!(rotated.stored(&digest).version, 2);
        assert!(rotated.candidates(&digest).contains(&one.stored(&digest)), "old keys are still found");
        assert!(!format!("{rotated:?}").contains(A));
    }

    #[test]
    fn bad_specs_are_refused() {
        for spec in ["", "1", "x:{A}", "0:{A}", "1:short", &format!("1:{A},1:{B}")] {
            assert!(KeyHasher::parse(spec).is_err(), "{spec:?} accepted");
        }
    }
}
