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
