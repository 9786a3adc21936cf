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

/// What every personal API key starts with.
pub const KEY_PREFIX: &str = "zv_";
/// Characters after the prefix from which a run of them is taken for a key: a whole key has 38,
/// a key missing a few is still most of a secret.
const KEY_LIKE_LEN: usize = 32;

/// `text` with anything shaped like an API key (the prefix and 32 or more letters and digits)
/// cut to its hint, `zv_Ab12…wxyz`: for texts a client wrote that an error message quotes or a
/// log line records (a key sent as a path, a field name or a team id), which must never hold a
/// key (docs/behaviour.md#api-keys).
pub fn redact_keys(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(KEY_PREFIX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY_PREFIX) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let body = &from[KEY_PREFIX.len()..];
        let mut run = body.bytes().take_while(u8::is_ascii_alphanumeric).count();
        // A key written right after another: the next one's prefix starts inside this run.
        if body[run..].starts_with('_') && body[..run].ends_with(&KEY_PREFIX[..KEY_PREFIX.len() - 1]) {
            run -= 2;
        }
        if run >= KEY_LIKE_LEN {
            out.push_str(KEY_PREFIX);
            out.push_str(&body[..4]);
            out.push('…');
            out.push_str(&body[run - 4..run]);
        } else {
            out.push_str(&from[..KEY_PREFIX.len() + run]);
        }
        rest = &body[run..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Lower-case hex, the form digests are stored in.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shaped_texts_are_cut_to_their_hint_and_others_left_alone() {
        let key = format!("zv_{}", "Ab12".repeat(9) + "wx");
        assert_eq!(redact_keys(&format!("no route for /v1/{key}/x")), "no route for /v1/zv_Ab12…12wx/x");
        assert_eq!(redact_keys(&format!("{key}{key}")), "zv_Ab12…12wxzv_Ab12…12wx");
        assert_eq!(redact_keys(&format!("team {key}, team {key}")), "team zv_Ab12…12wx, team zv_Ab12…12wx");
        assert_eq!(redact_keys("zv_short and zv_"), "zv_short and zv_");
        assert_eq!(redact_keys("plain ünïcode text"), "plain ünïcode text");
    }

    #[test]
    fn digests_are_stored_as_lower_case_hex_of_sha_256() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(Digest::of("abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
