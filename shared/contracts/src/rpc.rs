//! Request/reply on the bus as a typed contract.
//!
//! Every typed request/reply operation is one [`Rpc`] implementation, on its request
//! type: the subject, the queue group of the service that answers it, and the reply
//! type. Both sides go through `nr_infra::rpc` (`call` and `serve`), so the encoding and
//! the error convention are written once:
//!
//! - request and reply bodies are MessagePack maps with field names; an empty request
//!   body counts as `{}`;
//! - every reply carries the `Nr-Status` header ([`crate::headers::STATUS`]): `200` and
//!   the body is the operation's reply, anything else and the body is an
//!   [`RpcError`] (`{outcome: "refused", status, code, error, details}`).
//!
//! `runner.exec.<app>` is the one request/reply subject outside this table: its bodies
//! are the HTTP caller's JSON bytes, untouched (docs/adr/0003), with the same `Nr-Status`
//! header on the reply and `{"error": ...}` JSON as its error body.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::requests::{
    AppList, AppListRequest, AppVersions, AppVersionsRequest, DeleteReply, DeleteRequest,
    DeployReply, DeploySubmit, Finding, RollbackRequest,
};
use crate::subjects;

/// One request/reply operation, implemented on its request type.
pub trait Rpc: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The subject the request is sent to.
    const SUBJECT: &'static str;
    /// The queue group its servers share, so each request reaches one of them.
    const QUEUE_GROUP: &'static str;
    /// What a successful reply carries.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

impl Rpc for DeploySubmit {
    const SUBJECT: &'static str = subjects::DEPLOY_SUBMIT;
    const QUEUE_GROUP: &'static str = subjects::DEPLOY_QUEUE_GROUP;
    type Reply = DeployReply;
}

impl Rpc for RollbackRequest {
    const SUBJECT: &'static str = subjects::DEPLOY_ROLLBACK;
    const QUEUE_GROUP: &'static str = subjects::DEPLOY_QUEUE_GROUP;
    type Reply = DeployReply;
}

impl Rpc for DeleteRequest {
    const SUBJECT: &'static str = subjects::DEPLOY_DELETE;
    const QUEUE_GROUP: &'static str = subjects::DEPLOY_QUEUE_GROUP;
    type Reply = DeleteReply;
}

impl Rpc for AppListRequest {
    const SUBJECT: &'static str = subjects::REGISTRY_APPS_LIST;
    const QUEUE_GROUP: &'static str = subjects::REGISTRY_QUEUE_GROUP;
    type Reply = AppList;
}

impl Rpc for AppVersionsRequest {
    const SUBJECT: &'static str = subjects::REGISTRY_APP_VERSIONS;
    const QUEUE_GROUP: &'static str = subjects::REGISTRY_QUEUE_GROUP;
    type Reply = AppVersions;
}

/// `Nr-Status` of a successful reply.
pub const STATUS_OK: u16 = 200;

/// The one error every typed request/reply operation answers with: an HTTP status that
/// fits, a stable code, a message for a person, and findings when there are several
/// things to say (a refused bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error} ({status} {code})")]
pub struct RpcError {
    /// 4xx: the request cannot be served as sent; 5xx: the service failed.
    pub status: u16,
    /// Stable and machine-readable: `bad_request`, `not_found`, `conflict`, `refused`
    /// (a bundle broke a rule; see `details`), `internal`, ... Empty from a service
    /// older than this convention: read it with [`RpcError::code`].
    #[serde(default)]
    pub code: String,
    /// One line for a person. (`error` on the wire, as in the HTTP API's error body.)
    pub error: String,
    #[serde(default)]
    pub details: Vec<Finding>,
    /// What would also have been warned of (a refused deploy's other findings), so
    /// they are all seen at once. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Finding>,
}

impl RpcError {
    pub fn new(status: u16, code: &str, error: impl Into<String>) -> RpcError {
        RpcError {
            status,
            code: code.to_owned(),
            error: error.into(),
            details: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<Finding>) -> RpcError {
        self.details = details;
        self
    }

    pub fn with_warnings(mut self, warnings: Vec<Finding>) -> RpcError {
        self.warnings = warnings;
        self
    }

    /// 400: the request does not decode or breaks a rule of the operation.
    pub fn bad_request(error: impl Into<String>) -> RpcError {
        RpcError::new(400, "bad_request", error)
    }

    /// 404: what the request names does not exist.
    pub fn not_found(error: impl Into<String>) -> RpcError {
        RpcError::new(404, "not_found", error)
    }

    /// 500: the service failed; nothing the caller can fix.
    pub fn internal(error: impl Into<String>) -> RpcError {
        RpcError::new(500, "internal", error)
    }

    /// The code, or the one that fits the status when the service sent none.
    pub fn code(&self) -> &str {
        if self.code.is_empty() {
            code_for_status(self.status)
        } else {
            &self.code
        }
    }
}

/// The code that fits an HTTP status, the same table the HTTP API uses.
pub fn code_for_status(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "payload_too_large",
        422 => "unprocessable",
        429 => "too_many_requests",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// How an [`RpcError`] travels: tagged `outcome: "refused"`, the shape refusals of
/// `deploy.*` always had, so readers of those replies keep working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ErrorBody {
    Refused(RpcError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_travels_tagged_refused_and_reads_back_the_same() {
        let e = RpcError::new(409, "conflict", "another deploy landed first").with_details(vec![
            Finding {
                rule: "conflict.concurrent".into(),
                file: None,
                line: None,
                message: "another deploy landed first".into(),
            },
        ]);
        let bytes = crate::encode(&ErrorBody::Refused(e.clone())).unwrap();
        let value: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(value["outcome"], "refused");
        assert_eq!(value["error"], "another deploy landed first");
        let ErrorBody::Refused(back) = crate::decode::<ErrorBody>(&bytes).unwrap();
        assert_eq!(back, e);
        // No warnings, no field (what an older gateway reads); with them, they travel.
        assert!(value.get("warnings").is_none(), "{value}");
        let w = e.clone().with_warnings(e.details.clone());
        let bytes = crate::encode(&ErrorBody::Refused(w.clone())).unwrap();
        let ErrorBody::Refused(back) = crate::decode::<ErrorBody>(&bytes).unwrap();
        assert_eq!(back.warnings, w.details);
    }

    #[test]
    fn an_error_without_a_code_reads_the_code_of_its_status() {
        let old = serde_json::json!({"outcome": "refused", "status": 404, "error": "no app", "details": []});
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let ErrorBody::Refused(e) = crate::decode::<ErrorBody>(&bytes).unwrap();
        assert_eq!((e.code(), e.status), ("not_found", 404));
    }

    #[test]
    fn subjects_of_the_table_are_the_declared_constants() {
        assert_eq!(DeploySubmit::SUBJECT, "deploy.submit");
        assert_eq!(RollbackRequest::SUBJECT, "deploy.rollback");
        assert_eq!(DeleteRequest::SUBJECT, "deploy.delete");
        assert_eq!(AppListRequest::SUBJECT, "registry.apps.list");
        assert_eq!(AppVersionsRequest::SUBJECT, "registry.apps.versions");
        assert_eq!(AppListRequest::QUEUE_GROUP, "nr-registry");
    }
}
