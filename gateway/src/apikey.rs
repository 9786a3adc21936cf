//! The personal API key format: `zv_` + 32 random base62 characters (190 bits) + a 6-character
//! base62 CRC32 of those characters, as GitHub tokens do. A mistyped or truncated key is refused
//! without any lookup, and secret scanners can recognise a Zenovay key offline.

use std::fmt;

use rand::{Rng, distributions::Alphanumeric};

use common::secret::Digest;

pub const PREFIX: &str = common::secret::KEY_PREFIX;
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Length of every well-formed key.
pub const LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// A key secret. Its `Debug` and `Display` never show it; only [`ApiKeySecret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    pub fn generate() -> Self {
        let random: String = rand::thread_rng().sample_iter(Alphanumeric).take(RANDOM_LEN).map(char::from).collect();
        let checksum = checksum(&random);
        ApiKeySecret(format!("{PREFIX}{random}{checksum}"))
    }

    /// Accepts only a well-formed key whose checksum matches.
    pub fn parse(candidate: &str) -> Option<Self> {
        let body = candidate.strip_prefix(PREFIX)?;
        if candidate.len() != LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        (checksum(random) == sum).then(|| ApiKeySecret(candidate.to_owned()))
    }

    /// The one-way digest stored and looked up in place of the secret.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.0)
    }

    /// What the user sees in listings: `zv_Ab12…wxyz`.
    pub fn hint(&self) -> String {
        let body = &self.0[PREFIX.len()..];
        format!("{PREFIX}{}…{}", &body[..4], &body[body.len() - 4..])
    }

    /// The secret itself, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

fn checksum(random: &str) -> String {
    let crc = crc32fast::hash(random.as_bytes());
    // u32::MAX < 62^6, so six characters always suffice; pad for a fixed length.
    format!("{:0>width$}", base62::encode(crc), width = CHECKSUM_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), LEN);
        assert_eq!(ApiKeySecret::parse(a.expose()), Some(a.clone()));
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn a_single_typo_is_refused_offline() {
        let key = ApiKeySecret::generate();
        let s = key.expose();
        for i in PREFIX.len()..s.len() {
            let mut bytes = s.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            assert_eq!(ApiKeySecret::parse(&typo), None, "typo at {i} accepted");
        }
        assert_eq!(ApiKeySecret::parse(&s[..s.len() - 1]), None);
        assert_eq!(ApiKeySecret::parse(&format!("{s}x")), None);
        assert_eq!(ApiKeySecret::parse(&s.replacen("zv_", "zx_", 1)), None);
        assert_eq!(ApiKeySecret::parse(""), None);
    }

    #[test]
    fn hint_and_debug_hide_the_secret() {
        let key = ApiKeySecret::generate();
        let hint = key.hint();
        assert!(hint.starts_with("zv_") && hint.contains('…'));
        assert_eq!(hint.chars().count(), 3 + 4 + 1 + 4);
        assert!(!format!("{key:?}").contains(&key.expose()[3..]));
    }
}
