//! The one table of error codes. Every service returns [`Error`]; it crosses gRPC as a
//! `tonic::Status` carrying the code in metadata, and the gateway turns it into the HTTP status
//! and envelope code (docs/behaviour.md#authorization-of-a-request, #external-rest-api).

use std::fmt;
use std::sync::Arc;

/// gRPC metadata key carrying the envelope code across service boundaries.
const CODE_METADATA_KEY: &str = "zenovay-error-code";
/// gRPC metadata key carrying the field an error names (binary: a field may be a custom property
/// name in any script).
const FIELD_METADATA_KEY: &str = "zenovay-error-field-bin";

macro_rules! error_codes {
    ($($variant:ident => $name:literal, $http:literal, $grpc:ident;)*) => {
        /// Every error a client can see. Adding a code means adding one line here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The `error.code` of the JSON envelope.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $http,)* }
            }

            pub fn grpc_code(self) -> tonic::Code {
                match self { $(ErrorCode::$variant => tonic::Code::$grpc,)* }
            }

            pub fn parse(name: &str) -> Option<ErrorCode> {
                match name { $($name => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    Validation           => "VALIDATION_ERROR",        400, InvalidArgument;
    Unauthorized         => "UNAUTHORIZED",            401, Unauthenticated;
    ApiKeyExpired        => "API_KEY_EXPIRED",         401, Unauthenticated;
    ApiPaidPlanRequired  => "API_PAID_PLAN_REQUIRED",  403, PermissionDenied;
    IpNotAllowed         => "IP_NOT_ALLOWED",          403, PermissionDenied;
    InsufficientScope    => "INSUFFICIENT_SCOPE",      403, PermissionDenied;
    Forbidden            => "FORBIDDEN",               403, PermissionDenied;
    KeyPolicyForbids     => "KEY_POLICY_FORBIDS",      403, PermissionDenied;
    NotFound             => "NOT_FOUND",               404, NotFound;
    MethodNotAllowed     => "METHOD_NOT_ALLOWED",      405, Unimplemented;
    Conflict             => "CONFLICT",                409, AlreadyExists;
    RequestTimeout       => "REQUEST_TIMEOUT",         408, DeadlineExceeded;
    PayloadTooLarge      => "PAYLOAD_TOO_LARGE",       413, InvalidArgument;
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",  415, InvalidArgument;
    RateLimitExceeded    => "RATE_LIMIT_EXCEEDED",     429, ResourceExhausted;
    MonthlyLimitExceeded => "MONTHLY_LIMIT_EXCEEDED",  429, ResourceExhausted;
    Internal             => "INTERNAL_ERROR",          500, Internal;
    ServiceUnavailable   => "SERVICE_UNAVAILABLE",     503, Unavailable;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a client may see: a code from the table and a message safe to show
/// (never a secret, never a detail of another team's resources).
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    /// The input field the error is about, when there is one, as the service calls it: a caller
    /// that names the field otherwise renames it here instead of editing the message.
    pub field: Option<String>,
    /// What is wrong, without the field.
    pub message: String,
    /// What caused an internal error: never shown, logged once where the error leaves the
    /// process ([`Error::log_cause`]), so that the log has it beside the answer's status.
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for Error {
    /// What a client sees: code, field and message; the cause is not part of the answer.
    fn eq(&self, other: &Self) -> bool {
        (self.code, &self.field, &self.message) == (other.code, &other.field, &other.message)
    }
}

impl Eq for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.text())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, field: None, message: bounded(message.into()), cause: None }
    }

    /// A value of `field` is not acceptable; `message` says why.
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        let (field, message) = (bounded(field.into()), bounded(message.to_string()));
        Error { code: ErrorCode::Validation, field: Some(field), message, cause: None }
    }

    /// The message as a client reads it: the field first, when there is one.
    pub fn text(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Validation, message)
    }

    pub fn not_found(what: &str) -> Self {
        Error::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Forbidden, message)
    }

    pub fn unavailable(what: &str) -> Self {
        Error::new(ErrorCode::ServiceUnavailable, format!("{what} is unavailable, try again shortly"))
    }

    /// An unexpected failure: the client sees a generic message, the cause is kept for the log.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error { cause: Some(Arc::from(cause.into())), ..Error::new(ErrorCode::Internal, "internal error") }
    }

    /// Logs an internal error's cause with its chain of sources; called where an error leaves the
    /// process (a gRPC status, an HTTP response), so each cause is logged once.
    pub fn log_cause(&self) {
        let Some(cause) = &self.cause else { return };
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(next) = source {
            chain.push_str(": ");
            chain.push_str(&next.to_string());
            source = next.source();
        }
        tracing::error!(error = %chain, "internal error");
    }
}

/// The most of a message or field name an error carries. Messages quote what the client sent,
/// and a gRPC status travels in HTTP/2 headers, whose size the peer bounds (16 KiB by default):
/// past it, the peer fails the whole connection, and every call on it, not just this one.
pub const MESSAGE_MAX: usize = 1024;

/// `text` cut to [`MESSAGE_MAX`] bytes, on a character's boundary, ending in `…` when cut.
pub fn bounded(mut text: String) -> String {
    if text.len() > MESSAGE_MAX {
        let mut end = MESSAGE_MAX - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        err.log_cause();
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(CODE_METADATA_KEY, tonic::metadata::MetadataValue::from_static(err.code.as_str()));
        if let Some(field) = &err.field {
            metadata.insert_bin(FIELD_METADATA_KEY, tonic::metadata::MetadataValue::from_bytes(field.as_bytes()));
        }
        tonic::Status::with_metadata(err.code.grpc_code(), err.message, metadata)
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let code = status.metadata().get(CODE_METADATA_KEY).and_then(|v| v.to_str().ok()).and_then(ErrorCode::parse);
        match code {
            Some(code) => {
                let field = status.metadata().get_bin(FIELD_METADATA_KEY).and_then(|v| v.to_bytes().ok());
                let field = field.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                Error { code, field, message: status.message().to_owned(), cause: None }
            }
            // No code: no Zenovay handler answered. Either the call never reached one (connection
            // refused, timeout, a method the peer does not have yet, as during a rolling upgrade)
            // or it was cut on the way (the peer died mid-call, a reset stream: `Unknown` or
            // `Internal` from the transport). Either way it may not have completed, and a retry
            // may succeed.
            None => match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unimplemented
                | tonic::Code::Aborted
                | tonic::Code::Unknown
                | tonic::Code::Internal => {
                    tracing::warn!(grpc.code = ?status.code(), grpc.message = status.message(), "backend call failed");
                    Error::unavailable("a backend service")
                }
                _ => Error::internal(format!("{:?}: {}", status.code(), status.message())),
            },
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if is_cancelled(&err) {
            tracing::warn!(error = %err, "a statement ran past its time bound");
            return Error::new(
                ErrorCode::ServiceUnavailable,
                "the database stopped the query: it ran past its time bound",
            );
        }
        if is_transient(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return Error::unavailable("the database");
        }
        match err {
            sqlx::Error::RowNotFound => Error::not_found("record"),
            // A statistics filter's pattern, which the `regex` crate took (`crate::regexp`) and
            // PostgreSQL's flavour does not.
            sqlx::Error::Database(db) if db.code().as_deref() == Some(INVALID_REGULAR_EXPRESSION) => {
                Error::invalid("filters", format!("PostgreSQL does not take this regular expression: {}", db.message()))
            }
            err => Error::internal(err),
        }
    }
}

/// PostgreSQL's SQLSTATE for a regular expression it cannot compile.
const INVALID_REGULAR_EXPRESSION: &str = "2201B";

/// True when PostgreSQL cancelled the statement, past its `statement_timeout` (see
/// `db::connect_reader`).
pub fn is_cancelled(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED))
}

/// PostgreSQL's SQLSTATE for a statement cancelled (`query_canceled`).
const QUERY_CANCELED: &str = "57014";

/// True when the database could not do the work now but may later, so the answer is 503 rather
/// than a fault: no connection, or the server refused for a passing reason.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // A connection left counted in a transaction by a failed COMMIT (see `db::connect`),
        // should one still be taken: the next try gets another.
        sqlx::Error::InvalidSavePointStatement | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_transient(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                db.code().and_then(|c| c.parse().ok()).is_some_and(sqlite_transient)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL's refusals that pass: the connection lost or refused, a deadlock or serialization
/// conflict, out of connections, memory or disk, a lock or statement timeout, the server shutting
/// down, an I/O error. Not a protocol violation, a dropped database or a configuration limit.
fn postgres_transient(sqlstate: &str) -> bool {
    matches!(
        sqlstate,
        "08000"
            | "08001"
            | "08003"
            | "08004"
            | "08006"
            | "40001"
            | "40P01"
            | "53000"
            | "53100"
            | "53200"
            | "53300"
            | "55P03"
            | "57014"
            | "57P01"
            | "57P02"
            | "57P03"
            | "57P05"
            | "58000"
            | "58030"
    )
}

/// SQLite's refusals that pass, from a result code (extended codes keep the primary one in their
/// low byte): the database busy or locked by another connection, the disk full or failing (an
/// I/O error, which a full disk also gives while SQLite writes its journal), or the file made
/// read-only or unopenable underneath the process. The operator can mend each; none is a fault
/// of the request. Shared by every SQLite caller, sqlx's or rusqlite's.
pub fn sqlite_transient(code: i32) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    matches!(code & 0xff, BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN)
}

/// True when a database error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// A row that refers to one that is gone: a write that lost a race with a delete.
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.is_foreign_key_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_quoting_a_long_value_is_cut_on_a_character_boundary() {
        let error = Error::invalid("é".repeat(2000), format!("{:?} is not a dimension", "ü".repeat(100_000)));
        let status = tonic::Status::from(error.clone());
        assert!(status.message().len() <= MESSAGE_MAX && status.message().ends_with('…'));
        assert!(error.field.unwrap().len() <= MESSAGE_MAX);
        assert_eq!(Error::invalid("f", "short").message, "short");
    }

    #[test]
    fn an_internal_error_keeps_its_cause_for_the_log_and_shows_none_of_it() {
        let cause = std::io::Error::other("disk on fire at /var/lib/secret");
        let error = Error::internal(cause);
        let source = std::error::Error::source(&error).expect("the cause is the source");
        assert_eq!(source.to_string(), "disk on fire at /var/lib/secret");
        assert_eq!(error, Error::new(ErrorCode::Internal, "internal error"));
        let status = tonic::Status::from(error);
        assert_eq!(status.message(), "internal error");
        assert_eq!(Error::from(status).code, ErrorCode::Internal);
    }

    #[test]
    fn every_code_round_trips_through_grpc() {
        for &code in ErrorCode::ALL {
            let status = tonic::Status::from(Error::new(code, "m"));
            assert_eq!(status.code(), code.grpc_code());
            let back = Error::from(status);
            assert_eq!(back, Error::new(code, "m"));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
    }

    #[test]
    fn the_field_an_error_names_crosses_grpc_apart_from_its_message() {
        let err = Error::invalid("event:props:Größe", "unknown dimension");
        let back = Error::from(tonic::Status::from(err.clone()));
        assert_eq!(back, err);
        assert_eq!(back.text(), "event:props:Größe: unknown dimension");
    }

    #[test]
    fn transport_failures_become_service_unavailable() {
        let err = Error::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        assert!(!err.message.contains("connection refused"));
        // A peer not upgraded yet lacks the method: try again shortly, not a server error.
        let err = Error::from(tonic::Status::unimplemented("unknown method IngestEvents"));
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
    }

    #[test]
    fn a_call_cut_mid_way_becomes_service_unavailable() {
        // How tonic reports a peer that died with the call in flight, or a reset stream.
        for status in [
            tonic::Status::unknown("transport error"),
            tonic::Status::internal("h2 protocol error: stream error received: unexpected internal error encountered"),
        ] {
            assert_eq!(Error::from(status).code, ErrorCode::ServiceUnavailable);
        }
    }

    #[test]
    fn a_handler_error_keeps_its_code_whatever_the_grpc_status() {
        let status = tonic::Status::from(Error::new(ErrorCode::Internal, "internal error"));
        assert_eq!(Error::from(status).code, ErrorCode::Internal);
    }
}
