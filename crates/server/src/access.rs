//! Authorization: what a principal may do in a folder, and how resources look to it.
//!
//! A subject without any role in a folder is told that what it asked for does not exist
//! (404, the same answer as for an id nobody has), so ids of other tenants cannot be probed.
//! With a role that is too weak the answer is 403: the caller can already see the resource.

use cic_model::iam::{Folder, FolderAccess, Role};
use cic_model::{ApiError, Code};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiResult, AppError};

/// What the caller wants to do in a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Get, List, ListOperations.
    Read,
    /// Create, Update, Delete and the other mutations.
    Write,
    /// Change the folder's access bindings.
    Manage,
}

/// How resources are shown to a caller that may read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    /// BGP MD5 keys in clear (secretViewer); masked otherwise.
    pub secrets: bool,
    /// Only the common metadata (auditor).
    pub metadata_only: bool,
}

pub use cic_model::SECRET_MASK as MASK;

/// The fields an auditor sees: metadata, not configuration.
const METADATA_FIELDS: &[&str] = &[
    "id",
    "folderId",
    "name",
    "description",
    "labels",
    "createdAt",
    "status",
];

/// Where resources keep secrets (JSON pointers). [`Secrets`] is the same for typed
/// resources; a test keeps the two in step.
const SECRET_POINTERS: &[&str] = &["/ipv4Peering/peerBgpMd5Key", "/ipv6Peering/peerBgpMd5Key"];

/// The secrets a resource type holds, masked in place: how lists show thousands of
/// resources without a JSON tree each.
pub trait Secrets {
    fn hide_secrets(&mut self) {}
}

fn hide(k: &mut Option<cic_model::Secret>) {
    if let Some(k) = k {
        *k = cic_model::Secret::new(MASK);
    }
}

impl Secrets for cic_model::resource::TrunkConnection {}
impl Secrets for cic_model::resource::RoutingInstance {}
impl Secrets for cic_model::resource::PrivateConnection {
    fn hide_secrets(&mut self) {
        if let Some(p) = &mut self.ipv4_peering {
            hide(&mut p.peer_bgp_md5_key);
        }
        if let Some(p) = &mut self.ipv6_peering {
            hide(&mut p.peer_bgp_md5_key);
        }
    }
}
impl Secrets for cic_model::resource::PublicConnection {
    fn hide_secrets(&mut self) {
        hide(&mut self.ipv4_peering.peer_bgp_md5_key);
    }
}

/// A tenant resource as one caller sees it (see [`View::present`]).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Shown<T> {
    Full(T),
    /// An auditor's view: the metadata alone.
    Metadata(cic_model::resource::Meta),
}

impl View {
    /// `x` as this caller may see it.
    pub fn show<T: Serialize>(&self, x: &T) -> Value {
        let mut v = serde_json::to_value(x).unwrap_or(Value::Null);
        self.apply(&mut v);
        v
    }

    fn apply(&self, v: &mut Value) {
        if self.metadata_only
            && let Value::Object(m) = v
        {
            m.retain(|k, _| METADATA_FIELDS.contains(&k.as_str()));
        }
        if !self.secrets {
            for p in SECRET_POINTERS {
                if let Some(k) = v.pointer_mut(p).filter(|k| !k.is_null()) {
                    *k = Value::String(MASK.into());
                }
            }
        }
    }

    /// `x` as this caller may see it, as [`View::show`] shows it but typed: secrets masked
    /// in place, auditors given the metadata.
    pub fn present<T: Secrets>(
        &self,
        mut x: T,
        meta: impl FnOnce(&T) -> &cic_model::resource::Meta,
    ) -> Shown<T> {
        if self.metadata_only {
            return Shown::Metadata(meta(&x).clone());
        }
        if !self.secrets {
            x.hide_secrets();
        }
        Shown::Full(x)
    }

    /// An operation as this caller may see it: its response is a resource.
    pub fn show_operation(&self, op: &cic_model::resource::Operation) -> Value {
        let mut v = serde_json::to_value(op).unwrap_or(Value::Null);
        if let Some(r) = v.get_mut("response") {
            self.apply(r);
        }
        v
    }
}

fn denied(folder: &str, need: Need, have: &[Role]) -> AppError {
    let want = match need {
        Need::Read => "viewer",
        Need::Write => "editor",
        Need::Manage => "admin",
    };
    let have: Vec<&str> = have.iter().map(|r| r.as_str()).collect();
    AppError(ApiError::new(
        Code::PermissionDenied,
        format!(
            "this needs the {want} role in folder {folder}; you have {}",
            have.join(", ")
        ),
    ))
}

pub fn folder_not_found(id: &str) -> AppError {
    AppError(ApiError::not_found("folder", id))
}

impl AppState {
    /// The roles `who` holds in `folder`.
    pub async fn roles(&self, who: &Principal, folder: &str) -> ApiResult<Vec<Role>> {
        Ok(self
            .store
            .get::<FolderAccess>(folder)
            .await?
            .map(|a| a.roles_of(who.subject()))
            .unwrap_or_default())
    }

    /// Checks that `who` may do `need` in `folder`. `hidden` is the error for a caller
    /// with no role there: the 404 of whatever it asked for.
    pub async fn access(
        &self,
        who: &Principal,
        folder: &str,
        need: Need,
        hidden: impl FnOnce() -> AppError,
    ) -> ApiResult<View> {
        match who {
            Principal::Edge { .. } => Err(AppError(ApiError::new(
                Code::PermissionDenied,
                "edge tokens may only sync",
            ))),
            Principal::Admin { .. } => {
                // The operator manages everything; secrets still need secretViewer.
                let roles = self.roles(who, folder).await?;
                Ok(View {
                    secrets: roles.contains(&Role::SecretViewer),
                    metadata_only: false,
                })
            }
            Principal::User { .. } => {
                let roles = self.roles(who, folder).await?;
                let Some(best) = roles.iter().copied().max() else {
                    return Err(hidden());
                };
                let ok = match need {
                    Need::Read => true,
                    Need::Write => best >= Role::Editor,
                    Need::Manage => best == Role::Admin,
                };
                if !ok {
                    return Err(denied(folder, need, &roles));
                }
                Ok(View {
                    secrets: roles.contains(&Role::SecretViewer),
                    metadata_only: best == Role::Auditor,
                })
            }
        }
    }

    /// [`AppState::access`] for creating in `folder`, which must exist.
    pub async fn access_to_create(&self, who: &Principal, folder: &str) -> ApiResult<View> {
        let view = self
            .access(who, folder, Need::Write, || folder_not_found(folder))
            .await?;
        if self.store.get::<Folder>(folder).await?.is_none() {
            return Err(folder_not_found(folder));
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_typed_view_is_the_json_view() {
        let pc: cic_model::resource::PrivateConnection = serde_json::from_value(json!({
            "id": "pc1", "folderId": "f", "name": "n", "description": "", "labels": {},
            "createdAt": "2026-01-01T00:00:00Z", "status": "ACTIVE", "trunkConnectionId": "t",
            "vlanId": "100", "ipv4Peering": {"peeringSubnet": "10.0.0.0/30", "peerIp": "10.0.0.2",
                "cloudIp": "10.0.0.1", "peerBgpAsn": "65001", "cloudBgpAsn": "200350",
                "peerBgpMd5Key": "s3cret"}}))
        .expect("a connection");
        for view in [
            View::default(),
            View {
                secrets: true,
                metadata_only: false,
            },
            View {
                secrets: false,
                metadata_only: true,
            },
        ] {
            let typed = serde_json::to_value(view.present(pc.clone(), |c| &c.meta)).expect("json");
            assert_eq!(typed, view.show(&pc), "{view:?}");
        }
    }

    #[test]
    fn secrets_are_masked_and_auditors_see_metadata() {
        let pc = json!({"id": "cf1", "folderId": "f", "name": "n", "vlanId": 7,
                        "ipv4Peering": {"peerIp": "10.0.0.1", "peerBgpMd5Key": "s3cret"}});
        let v = View::default().show(&pc);
        assert_eq!(v["ipv4Peering"]["peerBgpMd5Key"], MASK);
        assert_eq!(v["vlanId"], 7);
        let v = View {
            secrets: true,
            metadata_only: false,
        }
        .show(&pc);
        assert_eq!(v["ipv4Peering"]["peerBgpMd5Key"], "s3cret");
        let v = View {
            secrets: false,
            metadata_only: true,
        }
        .show(&pc);
        assert_eq!(v, json!({"id": "cf1", "folderId": "f", "name": "n"}));
        // No key, nothing to mask: absent stays absent.
        let v = View::default().show(&json!({"ipv4Peering": {"peerBgpMd5Key": null}}));
        assert!(v["ipv4Peering"]["peerBgpMd5Key"].is_null());
    }
}
