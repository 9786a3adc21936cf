//! Leaked-key reports (README, "API keys"): GitHub's secret-scanning partner programme posts the
//! Zenovay keys it finds in public, signed with one of the keys it publishes; a live key among
//! them is revoked at once.

use std::path::Path;

use crate::apikey::ApiKeySecret;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use common::Error;
use common::secret::Digest;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use proto::identity::v1 as idpb;
use serde::Deserialize;
use serde_json::json;

use crate::envelope::RawBody;
use crate::error::ApiResult;
use crate::state::AppState;

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
        let text = std::fs::read_to_string(path)?;
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
    fn verify(&self, identifier: &str, signature: &str, body: &[u8]) -> bool {
        let Some((_, key)) = self.0.iter().find(|(id, _)| id == identifier) else { return false };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
        let Ok(signature) = Signature::from_der(&der) else { return false };
        key.verify(body, &signature).is_ok()
    }
}

#[derive(Deserialize)]
struct Report {
    token: String,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: String,
}

/// `POST /api/v1/secret-scanning/reports`: answers, per token, whether it was a live key (now
/// revoked) as GitHub expects; an unverifiable report is a 401 and changes nothing.
pub async fn reports(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> ApiResult<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (identifier, signature) = (header("github-public-key-identifier"), header("github-public-key-signature"));
    let verified = state.report_keys.as_ref().is_some_and(|keys| keys.verify(identifier, signature, &body));
    if !verified {
        return Err(Error::unauthorized("the report's signature could not be verified").into());
    }
    let reports: Vec<Report> = serde_json::from_slice(&body)
        .map_err(|_| Error::validation("body: must be a list of {token, type, url, source}"))?;
    let mut answers = Vec::with_capacity(reports.len());
    for report in reports {
        let revoked = match ApiKeySecret::parse(report.token.trim()) {
            Some(secret) => {
                let request = idpb::ReportLeakedKeyRequest {
                    secret_digest: secret.digest().as_bytes().to_vec(),
                    url: report.url,
                };
                state.identity.clone().report_leaked_key(request).await?.into_inner().revoked
            }
            None => false,
        };
        answers.push(json!({
            "token_hash": Digest::of(&report.token).to_hex(),
            "token_type": report.token_type,
            "label": if revoked { "true_positive" } else { "false_positive" },
        }));
    }
    Ok(Json(answers).into_response())
}
