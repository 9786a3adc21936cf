//! Leaked-key reports (README, "API keys"): GitHub's secret-scanning partner programme posts the
//! Zenovay keys it finds in public, signed with one of the keys it publishes; a live key among
//! them is revoked at once.

use std::collections::HashMap;

use crate::apikey::ApiKeySecret;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use common::Error;
use common::secret::Digest;
use proto::identity::v1 as idpb;
use serde::Deserialize;
use serde_json::json;

use crate::envelope::RawBody;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Deserialize)]
struct Report {
    token: String,
    // GitHub may send null where it knows no value; one item's null must not refuse the batch.
    #[serde(rename = "type", default)]
    token_type: Option<String>,
    #[serde(default)]
    url: Option<String>,
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
    // A token listed again (found at several places) is asked once: its later rows say what the
    // first found, and a report repeating one key thousands of times costs one call.
    let mut asked: HashMap<String, bool> = HashMap::new();
    for report in reports {
        let token = report.token.trim();
        let revoked = match ApiKeySecret::parse(token) {
            Some(_) if asked.contains_key(token) => asked[token],
            Some(secret) => {
                let request = idpb::ReportLeakedKeyRequest {
                    secret_digest: secret.digest().as_bytes().to_vec(),
                    url: web_address(report.url.as_deref().unwrap_or_default()),
                };
                let revoked = state.identity.clone().report_leaked_key(request).await?.into_inner().revoked;
                asked.insert(token.to_owned(), revoked);
                revoked
            }
            None => false,
        };
        answers.push(json!({
            "token_hash": Digest::of(&report.token).to_hex(),
            "token_type": report.token_type.unwrap_or_default(),
            "label": if revoked { "true_positive" } else { "false_positive" },
        }));
    }
    Ok(Json(answers).into_response())
}

/// Where a leak was found, kept only as an `http(s)` address: the console shows it as a link,
/// which another scheme (`javascript:`) must never become, whoever signed the report.
fn web_address(url: &str) -> String {
    // The URL parser would keep one, percent-encoded.
    if url.chars().any(char::is_control) {
        return String::new();
    }
    match url::Url::parse(url.trim()) {
        Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => parsed.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::web_address;

    #[test]
    fn a_leak_is_placed_only_at_a_web_address() {
        let github = "https://github.com/someone/repo/blob/main/.env";
        assert_eq!(web_address(github), github);
        let control = "https://github.com/x\u{1}y";
        for other in ["javascript:alert(1)//https://github.com/x", "data:text/html,x", "github.com/x", "", control] {
            assert_eq!(web_address(other), "", "{other}");
        }
    }
}
