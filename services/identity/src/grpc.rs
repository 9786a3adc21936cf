//! The gRPC edge: proto types in, domain calls, proto types out.

use common::Error;
use common::access::{GracePeriod, Grant, KeyTeams};
use common::secret::Digest;
use proto::identity::v1 as pb;
use proto::identity::v1::identity_service_server::{IdentityService, IdentityServiceServer};
use tonic::{Request, Response, Status};

use common::access::Role;

use crate::login::Refusal;
use crate::mcp::{McpConnection, McpConsent, McpTokens, OAuthClient};
use crate::model::{ApiKey, AuditEntry, KeyUsage, Member, Membership, Session, Team, User};
use crate::service::{Client, Identity, KeyEdit, KeyRotation, NewApiKey, PasswordChange};

/// Metadata of a refused sign-in or sign-up: seconds until a retry may succeed.
pub const RETRY_AFTER_METADATA_KEY: &str = "retry-after";

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let mut status = Status::from(refusal.error);
        if let Some(secs) = refusal.retry_after_secs {
            status.metadata_mut().insert(RETRY_AFTER_METADATA_KEY, secs.into());
        }
        status
    }
}

type Reply<T> = Result<Response<T>, Status>;

impl Identity {
    pub fn into_grpc(self) -> IdentityServiceServer<Identity> {
        IdentityServiceServer::new(self)
    }
}

fn user(u: User) -> pb::User {
    pb::User { id: u.id, email: u.email, name: u.name, created_at_unix_ms: u.created_at }
}

fn team(t: Team) -> pb::Team {
    pb::Team { id: t.id, name: t.name, created_at_unix_ms: t.created_at }
}

fn membership(m: Membership) -> pb::Membership {
    pb::Membership { team: Some(team(m.team)), role: pb::Role::from(m.role) as i32 }
}

fn api_key(k: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id,
        user_id: k.user_id,
        name: k.name,
        hint: k.hint,
        grant: Some(k.grant.to_proto()),
        teams: Some(k.teams.to_proto()),
        created_at_unix_ms: k.created_at,
        last_used_at_unix_ms: k.last_used_at,
        revoked_at_unix_ms: k.revoked_at,
        revoked_reason: k.revoked_reason.unwrap_or_default(),
        expires_at_unix_ms: k.expires_at,
        retires_at_unix_ms: k.retires_at,
        rotated_from: k.rotated_from.unwrap_or_default(),
        rotated_to: k.rotated_to.unwrap_or_default(),
        allowed_ips: k.allowed_ips,
        leak_url: k.leak_url.unwrap_or_default(),
    }
}

fn member(m: Member) -> pb::Member {
    pb::Member { user: Some(user(m.user)), role: pb::Role::from(m.role) as i32, joined_at_unix_ms: m.joined_at }
}

fn audit_entry(e: AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        id: e.id,
        team_id: e.team_id,
        actor_user_id: e.actor_id,
        action: e.action,
        target: e.target,
        details_json: e.details,
        created_at_unix_ms: e.created_at,
        actor_email: e.actor_email.unwrap_or_default(),
    }
}

fn session_view(s: Session) -> pb::Session {
    pb::Session {
        id: s.id,
        created_at_unix_ms: s.created_at,
        expires_at_unix_ms: s.expires_at,
        last_used_at_unix_ms: s.last_used_at,
        user_agent: s.user_agent,
        current: s.current,
    }
}

fn session((u, token): (User, String)) -> pb::SessionResponse {
    pb::SessionResponse { user: Some(user(u)), session_token: token }
}

fn digest(bytes: &[u8]) -> Result<Digest, Status> {
    Digest::from_slice(bytes).ok_or_else(|| Error::validation("secret_digest must be 32 bytes").into())
}

#[tonic::async_trait]
impl IdentityService for Identity {
    async fn signup(&self, req: Request<pb::SignupRequest>) -> Reply<pb::SessionResponse> {
        let r = req.into_inner();
        let client = Client::parse(&r.client_address, &r.user_agent)?;
        Ok(Response::new(session(self.signup_from(&client, &r.email, &r.password, &r.name).await?)))
    }

    async fn login(&self, req: Request<pb::LoginRequest>) -> Reply<pb::SessionResponse> {
        let r = req.into_inner();
        let client = Client::parse(&r.client_address, &r.user_agent)?;
        Ok(Response::new(session(Identity::login(self, &client, &r.email, &r.password).await?)))
    }

    async fn logout(&self, req: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        Identity::logout(self, &req.into_inner().session_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn authenticate_session(&self, req: Request<pb::AuthenticateSessionRequest>) -> Reply<pb::User> {
        let u = Identity::authenticate_session(self, &req.into_inner().session_token).await?;
        Ok(Response::new(user(u)))
    }

    async fn list_sessions(&self, req: Request<pb::ListSessionsRequest>) -> Reply<pb::ListSessionsResponse> {
        let r = req.into_inner();
        let sessions = Identity::list_sessions(self, &r.user_id, &r.session_token).await?;
        Ok(Response::new(pb::ListSessionsResponse { sessions: sessions.into_iter().map(session_view).collect() }))
    }

    async fn revoke_session(&self, req: Request<pb::RevokeSessionRequest>) -> Reply<pb::Session> {
        let r = req.into_inner();
        Ok(Response::new(session_view(
            Identity::revoke_session(self, &r.user_id, &r.session_id, &r.session_token).await?,
        )))
    }

    async fn change_password(&self, req: Request<pb::ChangePasswordRequest>) -> Reply<pb::ChangePasswordResponse> {
        let r = req.into_inner();
        let client = Client::parse(&r.client_address, "")?;
        let change = PasswordChange {
            user_id: &r.user_id,
            session_token: &r.session_token,
            current_password: &r.current_password,
            new_password: &r.new_password,
        };
        let ended = Identity::change_password(self, &client, change).await?;
        Ok(Response::new(pb::ChangePasswordResponse { sessions_ended: u32::try_from(ended).unwrap_or(u32::MAX) }))
    }

    async fn list_teams(&self, req: Request<pb::ListTeamsRequest>) -> Reply<pb::ListTeamsResponse> {
        let memberships = Identity::list_teams(self, &req.into_inner().user_id).await?;
        Ok(Response::new(pb::ListTeamsResponse { memberships: memberships.into_iter().map(membership).collect() }))
    }

    async fn create_team(&self, req: Request<pb::CreateTeamRequest>) -> Reply<pb::Membership> {
        let r = req.into_inner();
        Ok(Response::new(membership(Identity::create_team(self, &r.user_id, &r.name).await?)))
    }

    async fn get_team(&self, req: Request<pb::GetTeamRequest>) -> Reply<pb::Team> {
        Ok(Response::new(team(Identity::get_team(self, &req.into_inner().team_id).await?)))
    }

    async fn create_api_key(&self, req: Request<pb::CreateApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        let new = NewApiKey {
            user_id: r.user_id,
            name: r.name,
            grant: Grant::from_proto(r.grant.as_ref())?,
            teams: KeyTeams::from_proto(r.teams.as_ref())?,
            digest: digest(&r.secret_digest)?,
            hint: r.hint,
            expires_at: r.expires_at_unix_ms,
            allowed_ips: r.allowed_ips,
        };
        Ok(Response::new(api_key(Identity::create_api_key(self, new).await?)))
    }

    async fn list_api_keys(&self, req: Request<pb::ListApiKeysRequest>) -> Reply<pb::ListApiKeysResponse> {
        let keys = Identity::list_api_keys(self, &req.into_inner().user_id).await?;
        Ok(Response::new(pb::ListApiKeysResponse { keys: keys.into_iter().map(api_key).collect() }))
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        Ok(Response::new(api_key(Identity::revoke_api_key(self, &r.user_id, &r.key_id).await?)))
    }

    async fn verify_api_key(&self, req: Request<pb::VerifyApiKeyRequest>) -> Reply<pb::VerifyApiKeyResponse> {
        let (key, teams) = Identity::verify_api_key(self, &digest(&req.into_inner().secret_digest)?).await?;
        Ok(Response::new(pb::VerifyApiKeyResponse {
            key: Some(api_key(key)),
            teams: teams.iter().map(|t| t.to_proto()).collect(),
        }))
    }

    async fn record_key_use(&self, req: Request<pb::RecordKeyUseRequest>) -> Reply<pb::RecordKeyUseResponse> {
        self.record_use(&req.into_inner().key_id);
        Ok(Response::new(pb::RecordKeyUseResponse {}))
    }

    async fn update_api_key(&self, req: Request<pb::UpdateApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        let grant = r.grant.as_ref().map(|g| Grant::from_proto(Some(g))).transpose()?;
        let teams = r.teams.as_ref().map(|t| KeyTeams::from_proto(Some(t))).transpose()?;
        let edit = KeyEdit {
            name: r.name,
            grant,
            teams,
            expires_at: r.expiry.map(|e| e.at_unix_ms),
            allowed_ips: r.allowed_ips.map(|a| a.cidrs),
        };
        let key = Identity::update_api_key(self, &r.user_id, &r.key_id, edit).await?;
        Ok(Response::new(api_key(key)))
    }

    async fn rotate_api_key(&self, req: Request<pb::RotateApiKeyRequest>) -> Reply<pb::ApiKey> {
        let r = req.into_inner();
        let rotation = KeyRotation {
            user_id: r.user_id,
            key_id: r.key_id,
            grace: GracePeriod::from_seconds(r.grace_period_seconds)?,
            digest: digest(&r.secret_digest)?,
            hint: r.hint,
        };
        Ok(Response::new(api_key(Identity::rotate_api_key(self, rotation).await?)))
    }

    async fn record_key_usage(&self, req: Request<pb::RecordKeyUsageRequest>) -> Reply<pb::RecordKeyUsageResponse> {
        let counts = req.into_inner().counts.into_iter().map(|c| KeyUsage {
            key_id: c.key_id,
            day: c.day,
            outcome: c.outcome,
            count: c.count,
        });
        Identity::record_key_usage(self, counts.collect()).await?;
        Ok(Response::new(pb::RecordKeyUsageResponse {}))
    }

    async fn get_key_usage(&self, req: Request<pb::GetKeyUsageRequest>) -> Reply<pb::GetKeyUsageResponse> {
        let r = req.into_inner();
        let counts = Identity::key_usage(self, &r.user_id, &r.key_id, r.days).await?;
        let counts = counts
            .into_iter()
            .map(|c| pb::KeyUsageCount { key_id: c.key_id, day: c.day, outcome: c.outcome, count: c.count })
            .collect();
        Ok(Response::new(pb::GetKeyUsageResponse { counts }))
    }

    async fn report_leaked_key(&self, req: Request<pb::ReportLeakedKeyRequest>) -> Reply<pb::ReportLeakedKeyResponse> {
        let r = req.into_inner();
        let revoked = Identity::report_leaked_key(self, &digest(&r.secret_digest)?, &r.url).await?;
        Ok(Response::new(pb::ReportLeakedKeyResponse { revoked }))
    }

    async fn get_membership(&self, req: Request<pb::GetMembershipRequest>) -> Reply<pb::Membership> {
        let r = req.into_inner();
        Ok(Response::new(membership(self.membership(&r.team_id, &r.actor_user_id).await?)))
    }

    async fn list_members(&self, req: Request<pb::ListMembersRequest>) -> Reply<pb::ListMembersResponse> {
        let r = req.into_inner();
        let members = Identity::list_members(self, &r.team_id, &r.actor_user_id).await?;
        Ok(Response::new(pb::ListMembersResponse { members: members.into_iter().map(member).collect() }))
    }

    async fn add_member(&self, req: Request<pb::AddMemberRequest>) -> Reply<pb::Member> {
        let r = req.into_inner();
        let m = Identity::add_member(self, &r.team_id, &r.actor_user_id, &r.email, Role::from_proto(r.role)?).await?;
        Ok(Response::new(member(m)))
    }

    async fn change_role(&self, req: Request<pb::ChangeRoleRequest>) -> Reply<pb::Member> {
        let r = req.into_inner();
        let m =
            Identity::change_role(self, &r.team_id, &r.actor_user_id, &r.user_id, Role::from_proto(r.role)?).await?;
        Ok(Response::new(member(m)))
    }

    async fn remove_member(&self, req: Request<pb::RemoveMemberRequest>) -> Reply<pb::RemoveMemberResponse> {
        let r = req.into_inner();
        Identity::remove_member(self, &r.team_id, &r.actor_user_id, &r.user_id).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn append_audit(&self, req: Request<pb::AppendAuditRequest>) -> Reply<pb::AuditEntry> {
        let r = req.into_inner();
        let entry =
            Identity::append_audit(self, &r.team_id, &r.actor_user_id, &r.action, &r.target, &r.details_json).await?;
        Ok(Response::new(audit_entry(entry)))
    }

    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Reply<pb::ListAuditResponse> {
        let r = req.into_inner();
        let page = crate::teams::LogPage { limit: r.limit, offset: r.offset, before: r.before };
        let (entries, total) = Identity::list_audit(self, &r.team_id, &r.actor_user_id, page).await?;
        Ok(Response::new(pb::ListAuditResponse { entries: entries.into_iter().map(audit_entry).collect(), total }))
    }

    async fn register_mcp_client(&self, req: Request<pb::RegisterMcpClientRequest>) -> Reply<pb::McpClient> {
        let r = req.into_inner();
        let from = crate::login::ClientAddress::parse(&r.client_address)?;
        Ok(Response::new(mcp_client(self.register_oauth_client(&from, &r.client_name, &r.redirect_uris).await?)))
    }

    async fn get_mcp_client(&self, req: Request<pb::GetMcpClientRequest>) -> Reply<pb::McpClient> {
        Ok(Response::new(mcp_client(self.oauth_client(&req.into_inner().client_id).await?)))
    }

    async fn create_mcp_authorization(
        &self,
        req: Request<pb::CreateMcpAuthorizationRequest>,
    ) -> Reply<pb::CreateMcpAuthorizationResponse> {
        let r = req.into_inner();
        let consent = McpConsent {
            user_id: &r.user_id,
            client_id: &r.client_id,
            team_id: &r.team_id,
            scopes: &r.scopes,
            redirect_uri: &r.redirect_uri,
            code_challenge: &r.code_challenge,
            resource: &r.resource,
        };
        let code = Identity::create_mcp_authorization(self, consent).await?;
        Ok(Response::new(pb::CreateMcpAuthorizationResponse { code }))
    }

    async fn exchange_mcp_code(&self, req: Request<pb::ExchangeMcpCodeRequest>) -> Reply<pb::McpTokens> {
        let r = req.into_inner();
        let tokens =
            Identity::exchange_mcp_code(self, &r.code, &r.client_id, &r.redirect_uri, &r.code_verifier).await?;
        Ok(Response::new(mcp_tokens(tokens)))
    }

    async fn refresh_mcp_token(&self, req: Request<pb::RefreshMcpTokenRequest>) -> Reply<pb::McpTokens> {
        let r = req.into_inner();
        let tokens = Identity::refresh_mcp_token(self, &r.refresh_token, &r.client_id, &r.scopes).await?;
        Ok(Response::new(mcp_tokens(tokens)))
    }

    async fn verify_mcp_token(&self, req: Request<pb::VerifyMcpTokenRequest>) -> Reply<pb::McpGrant> {
        let grant = Identity::verify_mcp_token(self, &digest(&req.into_inner().token_digest)?).await?;
        Ok(Response::new(pb::McpGrant {
            connection_id: grant.connection_id,
            user_id: grant.user_id,
            team_id: grant.team_id,
            scopes: grant.scopes,
            role: pb::Role::from(grant.role) as i32,
            resource: grant.resource,
        }))
    }

    async fn list_mcp_connections(
        &self,
        req: Request<pb::ListMcpConnectionsRequest>,
    ) -> Reply<pb::ListMcpConnectionsResponse> {
        let connections = Identity::list_mcp_connections(self, &req.into_inner().user_id).await?;
        Ok(Response::new(pb::ListMcpConnectionsResponse {
            connections: connections.into_iter().map(mcp_connection).collect(),
        }))
    }

    async fn revoke_mcp_connection(&self, req: Request<pb::RevokeMcpConnectionRequest>) -> Reply<pb::McpConnection> {
        let r = req.into_inner();
        Ok(Response::new(mcp_connection(Identity::revoke_mcp_connection(self, &r.user_id, &r.connection_id).await?)))
    }
}

fn mcp_client(c: OAuthClient) -> pb::McpClient {
    pb::McpClient {
        client_id: c.id,
        client_name: c.name,
        redirect_uris: c.redirect_uris,
        created_at_unix_ms: c.created_at,
    }
}

fn mcp_tokens(t: McpTokens) -> pb::McpTokens {
    pb::McpTokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_in_seconds: t.expires_in_seconds,
        scopes: t.scopes,
    }
}

fn mcp_connection(c: McpConnection) -> pb::McpConnection {
    pb::McpConnection {
        id: c.id,
        client_id: c.client_id,
        client_name: c.client_name,
        team_id: c.team_id,
        scopes: c.scopes,
        created_at_unix_ms: c.created_at,
        last_used_at_unix_ms: c.last_used_at,
        revoked_at_unix_ms: c.revoked_at,
    }
}
