//! The gateway's settings, apart from the crate root so that the modules that read them do not
//! depend on the root that wires them together.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    /// Credential of the operator API; `None` turns it off.
    pub operator_token: Option<String>,
    /// Trusted header naming the tracker's client address; unset = the peer address.
    pub client_ip_header: Option<String>,
    /// Trusted header carrying the client's ISO country code; unset = no country.
    pub country_header: Option<String>,
    /// The origin clients reach the gateway at (`https://api.example.com`, no trailing slash),
    /// named by the OAuth metadata and `/mcp`'s challenge; unset = taken from each request's
    /// `Host` header.
    pub public_url: Option<String>,
    /// After a shutdown signal, how long to keep answering (readiness 503, `Connection: close` on
    /// every response) so that load balancers move away before the listener closes.
    pub drain: std::time::Duration,
    /// How long a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept. Slow or silent clients cannot hold connections open.
    pub header_timeout: std::time::Duration,
    /// How long a client has to send a request's whole body (408 past it).
    pub body_timeout: std::time::Duration,
    /// GitHub's published secret-scanning keys (JSON); unset: leak reports are refused.
    pub secret_scanning_keys_file: Option<std::path::PathBuf>,
}
