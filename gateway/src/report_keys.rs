//! The public keys GitHub signs leaked-key reports with (README, "API keys"), read once at start
//! from `ZENOVAY_SECRET_SCANNING_KEYS_FILE`.

use std::path::Path;

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// The public keys reports are signed with, by identifier.
pub struct ReportKeys(Vec<(String, VerifyingKey)>);

/// GitHub's published shape: `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
#[derive(Deserialize)]
struct Published {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl ReportKeys {
    /// Reads the keys file; a file that cannot be read or holds a key that is not a P-256 public
    /// key in PEM stops the gateway at start rather than refusing every report later.
    pub fn load(path: &Path) -> std::io::Result<ReportKeys> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let text = std::fs::read_to_string(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read ZENOVAY_SECRET_SCANNING_KEYS_FILE {}: {e}", path.display()),
            )
        })?;
        let published: Published =
            serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let keys = published
            .public_keys
            .into_iter()
            .map(|k| {
                let key = VerifyingKey::from_public_key_pem(&k.key)
                    .map_err(|e| invalid(format!("{}: key {}: {e}", path.display(), k.key_identifier)))?;
                Ok((k.key_identifier, key))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(ReportKeys(keys))
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) by the key `identifier` is
    /// valid over `body`, hashed with SHA-256.
    pub(crate) fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.0.iter().find(|(id, _)| id == identifier) else { return false };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
        let Ok(signature) = Signature::from_der(&der) else { return false };
        key.verify(body, &signature).is_ok()
    }
}
