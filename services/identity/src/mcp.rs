//! OAuth 2.1 for MCP clients (docs/behaviour.md#mcp): dynamically registered public clients, connections
//! (the user's consent: one client, one team, some tool categories), one-time authorization
//! codes bound to a PKCE S256 challenge, and access and refresh tokens. Codes and tokens are
//! stored as SHA-256 digests; revoking a connection deletes its tokens, so the next request with
//! one fails. A used code or refresh token is kept, marked used: presented again, it is a replay
//! (someone else holds a copy), and the whole connection is revoked (RFC 6749 §4.1.2, RFC 9700
//! §4.14).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::access::Role;
use common::secret::{Digest, random_token, to_hex};
use common::time::now_ms;
use common::{Error, Result};
use sha2::Digest as _;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::login::{ClientAddress, Refusal};
use crate::service::{Identity, new_id};
use crate::store::Store;

/// Tool categories a user can grant.
pub const MCP_SCOPES: [&str; 3] = ["analytics:read", "management:read", "management:write"];
const CODE_TTL_MS: i64 = 10 * 60_000;
pub const ACCESS_TTL_MS: i64 = 60 * 60_000;
const REFRESH_TTL_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpConnection {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub team_id: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_seconds: i64,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpGrant {
    pub connection_id: String,
    pub user_id: String,
    pub team_id: String,
    pub scopes: Vec<String>,
    pub role: Role,
    /// The resource (RFC 8707) the tokens were asked for; empty when the client named none.
    pub resource: String,
}

/// The user's consent, as the consent page posts it.
#[derive(Debug, Clone, Copy)]
pub struct McpConsent<'a> {
    pub user_id: &'a str,
    pub client_id: &'a str,
    pub team_id: &'a str,
    pub scopes: &'a [String],
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    /// This server's resource URL when the client asked for it; empty otherwise.
    pub resource: &'a str,
}

/// What became of a code or refresh token presented for use.
enum Taken<T> {
    /// Its first use.
    Fresh(T),
    /// Already used: the connection it belonged to.
    Replayed(String),
    Unknown,
}

/// An authorization code as stored.
struct StoredCode {
    connection_id: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    expires_at: i64,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::validation(message)
}

/// The one answer to every failed exchange, so that a caller learns nothing about which part
/// was wrong.
fn invalid_grant() -> Error {
    Error::unauthorized("the authorization code or token is invalid, expired or revoked")
}

fn digest_hex(secret: &str) -> String {
    Digest::of(secret).to_hex()
}

/// A redirect URI a public client may register: https, http on loopback only (RFC 8252), or an
/// app's own scheme; never a fragment, nor user information. It is sent to as registered, so it
/// must be a URI as written (RFC 3986: no space or other character a URI cannot hold), and an
/// http(s) one must name its host where it is written: the URL parser reads `https:///cb` as
/// `https://cb/`, which is not the string registered.
fn valid_redirect(uri: &str) -> bool {
    let uri_chars = |b: u8| b.is_ascii_graphic() && !b"<>\"{}|\\^`".contains(&b);
    if !uri.bytes().all(uri_chars) || uri.len() > 2000 {
        return false;
    }
    let Ok(url) = url::Url::parse(uri) else { return false };
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let names_its_host = || {
        let authority = &uri[url.scheme().len()..];
        authority.starts_with("://") && !authority[3..].starts_with('/')
    };
    match url.scheme() {
        "https" => url.host_str().is_some() && names_its_host(),
        "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) && names_its_host(),
        // Schemes of the web and of the browser itself, which no app registers as its own.
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" | "filesystem" | "ws" | "wss" | "ftp"
        | "view-source" | "chrome" | "mailto" => false,
        _ => true,
    }
}

fn connection(row: &AnyRow) -> Result<McpConnection> {
    let scopes: String = row.try_get("scopes")?;
    Ok(McpConnection {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        client_name: row.try_get("client_name")?,
        team_id: row.try_get("team_id")?,
        scopes: scopes.split(' ').map(str::to_owned).collect(),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Identity {
    /// Registers a public client (RFC 7591); those an address registers are counted (README.md,
    /// "Sign-in protection and sessions"), so that nobody fills the store with them.
    pub async fn register_oauth_client(
        &self,
        from: &ClientAddress,
        name: &str,
        redirect_uris: &[String],
    ) -> std::result::Result<OAuthClient, Refusal> {
        if redirect_uris.is_empty() || redirect_uris.len() > 10 {
            return Err(Error::invalid("redirect_uris", "give 1 to 10 redirect URIs").into());
        }
        if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect(u)) {
            return Err(Error::invalid(
                "redirect_uris",
                format!("{bad:?} must be https, http on localhost, or an app scheme"),
            )
            .into());
        }
        let name = name.trim();
        let name = if name.is_empty() { "MCP client" } else { name };
        if name.chars().count() > 100 {
            return Err(invalid("client_name: at most 100 characters").into());
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("client_name: must not contain control characters").into());
        }
        self.throttle.registration(from, now_ms()).await?;
        let client = OAuthClient {
            id: new_id(),
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            created_at: now_ms(),
        };
        self.store.insert_oauth_client(&client).await?;
        Ok(client)
    }

    pub async fn oauth_client(&self, id: &str) -> Result<OAuthClient> {
        self.store.oauth_client(id).await?.ok_or_else(|| Error::not_found("OAuth client"))
    }

    /// The user's consent, as the consent page posts it; returns the one-time code.
    pub async fn create_mcp_authorization(&self, consent: McpConsent<'_>) -> Result<String> {
        let client = self.oauth_client(consent.client_id).await?;
        if !common::oauth::redirect_uri_registered(&client.redirect_uris, consent.redirect_uri) {
            return Err(invalid("redirect_uri: not registered for this client"));
        }
        let scopes = consent.scopes;
        if scopes.is_empty() || scopes.iter().any(|s| !MCP_SCOPES.contains(&s.as_str())) {
            return Err(invalid(format!("scope: choose among {}", MCP_SCOPES.join(", "))));
        }
        let code_challenge = consent.code_challenge;
        if code_challenge.len() != 43 || URL_SAFE_NO_PAD.decode(code_challenge).is_err() {
            return Err(invalid("code_challenge: a PKCE S256 challenge is required"));
        }
        if consent.resource.chars().any(char::is_control) {
            return Err(invalid("resource: must not contain control characters"));
        }
        let role = self.role_in(consent.team_id, consent.user_id).await?;
        if scopes.iter().any(|s| s == "management:write") && !role.is_admin() {
            return Err(Error::forbidden("management:write needs the owner or admin role in the team"));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let now = now_ms();
        let connection = McpConnection {
            id: new_id(),
            client_id: client.id,
            client_name: client.name,
            team_id: consent.team_id.to_owned(),
            scopes,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        let code = random_token("zvc_");
        self.store.insert_mcp_authorization(&connection, &consent, &digest_hex(&code), now + CODE_TTL_MS).await?;
        Ok(code)
    }

    /// Trades a code for tokens. The code works once, for its client and redirect URI, with the
    /// verifier whose S256 is its challenge; a second use revokes what the first one issued.
    pub async fn exchange_mcp_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<McpTokens> {
        let now = now_ms();
        let code = match self.store.take_mcp_code(&digest_hex(code), now).await? {
            Taken::Fresh(code) => code,
            Taken::Replayed(connection_id) => return Err(self.revoke_on_replay(&connection_id, "code", now).await),
            Taken::Unknown => return Err(invalid_grant()),
        };
        let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if code.expires_at < now
            || code.client_id != client_id
            || code.redirect_uri != redirect_uri
            || !(43..=128).contains(&verifier.len())
            || computed != code.code_challenge
        {
            return Err(invalid_grant());
        }
        self.issue_mcp_tokens(&code.connection_id).await
    }

    /// Trades a refresh token for a new pair; the old one stops working (rotation), and a second
    /// use of it revokes the connection. Scopes asked for beyond the grant are refused before the
    /// token is used, so that the client keeps it (RFC 6749 §6: a refresh never widens a grant).
    pub async fn refresh_mcp_token(&self, refresh_token: &str, client_id: &str, asked: &[String]) -> Result<McpTokens> {
        let now = now_ms();
        let digest = digest_hex(refresh_token);
        if !asked.is_empty()
            && let Some(granted) = self.store.refresh_token_scopes(&digest, client_id, now).await?
            && let Some(beyond) = asked.iter().find(|scope| !granted.contains(scope))
        {
            return Err(Error::validation(format!("scope {beyond} was not granted to this connection")));
        }
        match self.store.take_refresh_token(&digest, client_id, now).await? {
            Taken::Fresh(connection_id) => self.issue_mcp_tokens(&connection_id).await,
            Taken::Replayed(connection_id) => Err(self.revoke_on_replay(&connection_id, "refresh token", now).await),
            Taken::Unknown => Err(invalid_grant()),
        }
    }

    /// A used code or refresh token came again: one of the two parties holding it is not the
    /// client, and which one cannot be told, so the connection and all its tokens go.
    async fn revoke_on_replay(&self, connection_id: &str, what: &str, now: i64) -> Error {
        match self.store.revoke_mcp_family(connection_id, now).await {
            Ok(()) => {
                tracing::warn!(connection_id, "an MCP {what} was used twice; the connection is revoked");
                invalid_grant()
            }
            Err(e) => e,
        }
    }

    async fn issue_mcp_tokens(&self, connection_id: &str) -> Result<McpTokens> {
        let (access, refresh) = (random_token("zvm_"), random_token("zvr_"));
        let now = now_ms();
        let scopes = self
            .store
            .insert_mcp_tokens(
                connection_id,
                (&digest_hex(&access), now + ACCESS_TTL_MS),
                (&digest_hex(&refresh), now + REFRESH_TTL_MS),
                now,
            )
            .await?
            .ok_or_else(invalid_grant)?;
        Ok(McpTokens { access_token: access, refresh_token: refresh, expires_in_seconds: ACCESS_TTL_MS / 1000, scopes })
    }

    /// The grant behind an access token's digest, checked against revocation, expiry and the
    /// user's membership now.
    pub async fn verify_mcp_token(&self, digest: &Digest) -> Result<McpGrant> {
        let now = now_ms();
        let grant = self
            .store
            .mcp_grant(&to_hex(digest.as_bytes()), now)
            .await?
            .ok_or_else(|| Error::unauthorized("the access token is invalid, expired or revoked"))?;
        self.store.touch_mcp_connection(&grant.connection_id, now).await?;
        Ok(grant)
    }

    pub async fn list_mcp_connections(&self, user_id: &str) -> Result<Vec<McpConnection>> {
        self.store.mcp_connections(user_id, None).await
    }

    pub async fn revoke_mcp_connection(&self, user_id: &str, connection_id: &str) -> Result<McpConnection> {
        if !self.store.revoke_mcp_connection(user_id, connection_id, now_ms()).await? {
            return Err(Error::not_found("MCP connection"));
        }
        let mut found = self.store.mcp_connections(user_id, Some(connection_id)).await?;
        found.pop().ok_or_else(|| Error::not_found("MCP connection"))
    }
}

const CONNECTION_COLUMNS: &str = "c.id, c.client_id, o.name AS client_name, c.team_id, c.scopes, c.created_at, \
     c.last_used_at, c.revoked_at";

impl Store {
    async fn insert_oauth_client(&self, client: &OAuthClient) -> Result<()> {
        sqlx::query("INSERT INTO oauth_clients (id, name, redirect_uris, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&client.id)
            .bind(&client.name)
            .bind(client.redirect_uris.join("\n"))
            .bind(client.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>> {
        let row = sqlx::query("SELECT id, name, redirect_uris, created_at FROM oauth_clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let uris: String = row.try_get("redirect_uris")?;
            Ok(OAuthClient {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                redirect_uris: uris.lines().map(str::to_owned).collect(),
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn insert_mcp_authorization(
        &self,
        c: &McpConnection,
        consent: &McpConsent<'_>,
        code_digest: &str,
        expires_at: i64,
    ) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        sqlx::query(
            "INSERT INTO mcp_connections (id, user_id, client_id, team_id, scopes, created_at, resource) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(consent.user_id)
        .bind(&c.client_id)
        .bind(&c.team_id)
        .bind(c.scopes.join(" "))
        .bind(c.created_at)
        .bind(consent.resource)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO mcp_codes (digest, connection_id, client_id, redirect_uri, code_challenge, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code_digest)
        .bind(&c.id)
        .bind(&c.client_id)
        .bind(consent.redirect_uri)
        .bind(consent.code_challenge)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a code used, once, even between racing requests; the row stays (as long as its
    /// connection) so that a second use is recognised.
    async fn take_mcp_code(&self, digest: &str, now: i64) -> Result<Taken<StoredCode>> {
        let fresh = sqlx::query(
            "UPDATE mcp_codes SET used_at = $2 WHERE digest = $1 AND used_at IS NULL \
             RETURNING connection_id, client_id, redirect_uri, code_challenge, expires_at",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = fresh {
            return Ok(Taken::Fresh(StoredCode {
                connection_id: r.try_get("connection_id")?,
                client_id: r.try_get("client_id")?,
                redirect_uri: r.try_get("redirect_uri")?,
                code_challenge: r.try_get("code_challenge")?,
                expires_at: r.try_get("expires_at")?,
            }));
        }
        let used = sqlx::query("SELECT connection_id FROM mcp_codes WHERE digest = $1").bind(digest);
        Ok(match used.fetch_optional(&self.pool).await? {
            Some(row) => Taken::Replayed(row.try_get("connection_id")?),
            None => Taken::Unknown,
        })
    }

    /// The scopes granted to the connection of a refresh token of `client_id` that is still good.
    async fn refresh_token_scopes(&self, digest: &str, client_id: &str, now: i64) -> Result<Option<Vec<String>>> {
        let row = sqlx::query(
            "SELECT c.scopes FROM mcp_tokens t JOIN mcp_connections c ON c.id = t.connection_id \
             WHERE t.digest = $1 AND t.kind = 'refresh' AND t.used_at IS NULL AND t.expires_at > $2 \
             AND c.client_id = $3 AND c.revoked_at IS NULL",
        )
        .bind(digest)
        .bind(now)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let scopes: Option<String> = row.map(|r| r.try_get("scopes")).transpose()?;
        Ok(scopes.map(|s| s.split(' ').map(str::to_owned).collect()))
    }

    /// Marks a valid refresh token of `client_id` used and returns its connection; a token
    /// already used is a replay, whatever client presents it.
    async fn take_refresh_token(&self, digest: &str, client_id: &str, now: i64) -> Result<Taken<String>> {
        let fresh = sqlx::query(
            "UPDATE mcp_tokens SET used_at = $2 WHERE digest = $1 AND kind = 'refresh' AND used_at IS NULL \
             AND expires_at > $2 \
             AND connection_id IN (SELECT id FROM mcp_connections WHERE client_id = $3 AND revoked_at IS NULL) \
             RETURNING connection_id",
        )
        .bind(digest)
        .bind(now)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = fresh {
            return Ok(Taken::Fresh(row.try_get("connection_id")?));
        }
        let used = sqlx::query(
            "SELECT connection_id FROM mcp_tokens WHERE digest = $1 AND kind = 'refresh' AND used_at IS NOT NULL",
        )
        .bind(digest);
        Ok(match used.fetch_optional(&self.pool).await? {
            Some(row) => Taken::Replayed(row.try_get("connection_id")?),
            None => Taken::Unknown,
        })
    }

    /// Stores a token pair for a connection that is not revoked, dropping its expired tokens;
    /// returns its scopes.
    async fn insert_mcp_tokens(
        &self,
        connection_id: &str,
        access: (&str, i64),
        refresh: (&str, i64),
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        // Its user must still be a member of its team: removal revokes the connection, but only
        // at best, and a refresh must not outlive the membership it was granted under.
        let scopes = sqlx::query(
            "SELECT c.scopes FROM mcp_connections c \
             JOIN memberships m ON m.team_id = c.team_id AND m.user_id = c.user_id \
             WHERE c.id = $1 AND c.revoked_at IS NULL",
        )
        .bind(connection_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(scopes) = scopes else { return Ok(None) };
        let scopes: String = scopes.try_get("scopes")?;
        sqlx::query("DELETE FROM mcp_tokens WHERE connection_id = $1 AND expires_at <= $2")
            .bind(connection_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (kind, (digest, expires_at)) in [("access", access), ("refresh", refresh)] {
            sqlx::query("INSERT INTO mcp_tokens (digest, connection_id, kind, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(digest)
                .bind(connection_id)
                .bind(kind)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(scopes.split(' ').map(str::to_owned).collect()))
    }

    async fn mcp_grant(&self, digest: &str, now: i64) -> Result<Option<McpGrant>> {
        let row = sqlx::query(
            "SELECT c.id, c.user_id, c.team_id, c.scopes, c.resource, m.role FROM mcp_tokens t \
             JOIN mcp_connections c ON c.id = t.connection_id \
             JOIN memberships m ON m.team_id = c.team_id AND m.user_id = c.user_id \
             WHERE t.digest = $1 AND t.kind = 'access' AND t.expires_at > $2 AND c.revoked_at IS NULL",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let scopes: String = r.try_get("scopes")?;
            let role: String = r.try_get("role")?;
            Ok(McpGrant {
                connection_id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                team_id: r.try_get("team_id")?,
                scopes: scopes.split(' ').map(str::to_owned).collect(),
                role: role.parse()?,
                resource: r.try_get("resource")?,
            })
        })
        .transpose()
    }

    /// Records use to the minute, writing at most once a minute per connection.
    async fn touch_mcp_connection(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE mcp_connections SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mcp_connections(&self, user_id: &str, only: Option<&str>) -> Result<Vec<McpConnection>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM mcp_connections c JOIN oauth_clients o ON o.id = c.client_id \
             WHERE c.user_id = $1 AND ($2 = '' OR c.id = $2) ORDER BY c.created_at DESC, c.id"
        );
        let rows = sqlx::query(&sql).bind(user_id).bind(only.unwrap_or_default()).fetch_all(&self.pool).await?;
        rows.iter().map(connection).collect()
    }

    /// Revokes the user's connection and deletes its tokens; false when there is none.
    async fn revoke_mcp_connection(&self, user_id: &str, id: &str, now: i64) -> Result<bool> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        let done = sqlx::query(
            "UPDATE mcp_connections SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Not this user's connection: another user's tokens are not theirs to end.
            return Ok(false);
        }
        sqlx::query("DELETE FROM mcp_tokens WHERE connection_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes the user's connections to a team, which they have left, and deletes their tokens.
    pub(crate) async fn revoke_mcp_connections_to_team(&self, user_id: &str, team_id: &str, now: i64) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        sqlx::query(
            "DELETE FROM mcp_tokens WHERE connection_id IN \
             (SELECT id FROM mcp_connections WHERE user_id = $1 AND team_id = $2)",
        )
        .bind(user_id)
        .bind(team_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE mcp_connections SET revoked_at = COALESCE(revoked_at, $1) WHERE user_id = $2 AND team_id = $3",
        )
        .bind(now)
        .bind(user_id)
        .bind(team_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a connection, whoever's it is, and deletes its tokens.
    async fn revoke_mcp_family(&self, id: &str, now: i64) -> Result<()> {
        let mut tx = common::db::begin_write(&self.pool, self.system).await?;
        sqlx::query("UPDATE mcp_connections SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mcp_tokens WHERE connection_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_redirect;

    #[test]
    fn a_client_registers_https_loopback_http_and_app_schemes() {
        for uri in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://localhost:6274/oauth/callback",
            "http://127.0.0.1:33418",
            "http://[::1]/cb?x=1",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            "com.example.app:/cb",
        ] {
            assert!(valid_redirect(uri), "{uri}");
        }
    }

    #[test]
    fn a_redirect_that_would_not_be_sent_to_as_written_is_refused() {
        for uri in [
            "https:///cb",
            "https://claude.ai@evil.example/cb",
            "https://user:pw@app.example/cb",
            "https://app.example/c b",
            "https://app.example/cb#frag",
            "http://app.example/cb",
            "blob:https://a/b",
            "ws://app.example/cb",
            "javascript:alert(1)",
            "https://app.example/\u{7f}",
            "https://app.example/é",
        ] {
            assert!(!valid_redirect(uri), "{uri}");
        }
    }
}
