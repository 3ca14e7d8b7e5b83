//! Tenancy and access: folders, role bindings on them, and API keys.
//!
//! Shaped like the modelled cloud's resource manager and IAM: a folder scopes every
//! customer resource; a subject (a person or a robot) is granted roles on a folder; an API
//! key authenticates a subject. The operator's admin tokens stand above all folders.

use serde::{Deserialize, Serialize};

use crate::resource::Labels;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
    pub created_at: String,
    pub status: FolderStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FolderStatus {
    Active,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFolderRequest {
    /// Operator-chosen id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
}

/// Roles on a folder. `admin` ⊇ `editor` ⊇ `viewer` ⊇ `auditor`; `secretViewer` reads
/// what `viewer` reads plus the secrets (BGP MD5 keys) that everyone else sees masked.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Auditor,
    Viewer,
    SecretViewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Auditor,
        Role::Viewer,
        Role::SecretViewer,
        Role::Editor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
            Role::SecretViewer => "secretViewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    pub id: String,
    /// Kept for the modelled API's shape (`userAccount`, `serviceAccount`); cic treats
    /// every subject alike.
    #[serde(rename = "type", default = "default_subject_type")]
    pub kind: String,
}

fn default_subject_type() -> String {
    "serviceAccount".into()
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessBinding {
    pub role_id: Role,
    pub subject: Subject,
}

/// Every binding of one folder (stored as one document, keyed by the folder id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FolderAccess {
    pub folder_id: String,
    pub bindings: Vec<AccessBinding>,
}

impl FolderAccess {
    /// The roles `subject` holds here.
    pub fn roles_of(&self, subject: &str) -> Vec<Role> {
        self.bindings
            .iter()
            .filter(|b| b.subject.id == subject)
            .map(|b| b.role_id)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeltaAction {
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessBindingDelta {
    pub action: DeltaAction,
    pub access_binding: AccessBinding,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccessBindingsRequest {
    pub access_binding_deltas: Vec<AccessBindingDelta>,
}

/// An API key of a subject; the secret itself is shown once, when the key is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub subject_id: String,
    #[serde(default)]
    pub description: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub subject_id: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateApiKeyResponse {
    pub api_key: ApiKey,
    pub secret: String,
}

/// One entry of the audit trail: a mutation, or a refused authentication or
/// authorization. It never holds a request body, so never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Who: the subject of the token (or the edge of a certificate); empty when the
    /// caller could not be authenticated.
    pub subject: String,
    /// `operator`, `user`, `edge` or `anonymous`.
    pub subject_kind: String,
    /// The caller's address as this server saw it.
    pub source_address: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    pub method: String,
    /// The request's path (the resource and method; no query, no body).
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_id: String,
    /// The folder the resource is in ("" for the operator's catalog or unknown).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub folder_id: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The error code of a refusal (`PERMISSION_DENIED`, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation_id: String,
}
