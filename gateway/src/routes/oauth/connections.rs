//! The dashboard's list and revocation of a user's MCP connections.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use proto::identity::v1 as idpb;
use serde_json::{Value, json};

use crate::envelope::{Path, ok};
use crate::error::ApiResult;
use crate::session::SessionUser;
use crate::state::AppState;
use crate::time::rfc3339;

fn connection_view(c: &idpb::McpConnection) -> Value {
    json!({
        "id": c.id,
        "client_id": c.client_id,
        "client_name": c.client_name,
        "team_id": c.team_id,
        "scopes": c.scopes,
        "created_at": rfc3339(c.created_at_unix_ms),
        "last_used_at": c.last_used_at_unix_ms.map(rfc3339),
        "revoked_at": c.revoked_at_unix_ms.map(rfc3339),
    })
}

/// `GET /api/v1/account/mcp-connections`
pub async fn list_connections(State(state): State<AppState>, session: SessionUser) -> ApiResult<Response> {
    let request = idpb::ListMcpConnectionsRequest { user_id: session.user.id };
    let connections = state.identity.clone().list_mcp_connections(request).await?.into_inner().connections;
    Ok(ok(connections.iter().map(connection_view).collect::<Vec<_>>()).into_response())
}

/// `DELETE /api/v1/account/mcp-connections/{id}`: its tokens stop working at once.
pub async fn revoke_connection(
    State(state): State<AppState>,
    session: SessionUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let request = idpb::RevokeMcpConnectionRequest { user_id: session.user.id, connection_id: id };
    let connection = state.identity.clone().revoke_mcp_connection(request).await?.into_inner();
    Ok(ok(connection_view(&connection)).into_response())
}
