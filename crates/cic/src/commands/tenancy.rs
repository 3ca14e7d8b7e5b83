//! `cic folder` and `cic api-key`: tenancy.

use super::*;

#[derive(Subcommand)]
pub enum FolderCmd {
    /// Create a folder (operator).
    Create {
        /// Folder id; generated when absent.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Folders the caller holds a role in (the operator: all).
    List,
    /// Show a folder.
    Get { id: String },
    /// Delete an empty folder (operator).
    Delete { id: String },
    /// Who holds which role in a folder.
    ListAccessBindings { id: String },
    /// Grant a role: auditor, viewer, secretViewer, editor or admin.
    AddAccessBinding {
        id: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        subject: String,
    },
    /// Take a role in a folder away from a subject.
    RemoveAccessBinding {
        id: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        subject: String,
    },
}

impl FolderCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        const BASE: &str = "/resourcemanager/v1/folders";
        let delta = |action: &str, id: &str, role: &str, subject: &str| {
            (
                format!("{BASE}/{id}:updateAccessBindings"),
                json!({"accessBindingDeltas": [{"action": action,
                       "accessBinding": {"roleId": role, "subject": {"id": subject}}}]}),
            )
        };
        match self {
            FolderCmd::Create {
                id,
                name,
                description,
            } => {
                let mut body = json!({"name": name, "description": description});
                if let Some(id) = id {
                    body["id"] = json!(id);
                }
                out.mutate(api, Method::POST, BASE, Some(body), "folder")
                    .await?;
            }
            FolderCmd::List => {
                let v = api.get(BASE).await?;
                out.print(&v, |v| table(v, &["id", "name", "status", "createdAt"]));
            }
            FolderCmd::Get { id } => out.print(&api.get(&format!("{BASE}/{id}")).await?, pretty),
            FolderCmd::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &format!("{BASE}/{id}"),
                    None,
                    "delete folder",
                )
                .await?;
            }
            FolderCmd::ListAccessBindings { id } => {
                let v = api.get(&format!("{BASE}/{id}:listAccessBindings")).await?;
                out.print(&v, |v| {
                    let items = v["accessBindings"].as_array().cloned().unwrap_or_default();
                    if items.is_empty() {
                        return "(none)".into();
                    }
                    items
                        .iter()
                        .map(|b| {
                            format!(
                                "{}\t{}",
                                b["subject"]["id"].as_str().unwrap_or(""),
                                b["roleId"].as_str().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                });
            }
            FolderCmd::AddAccessBinding { id, role, subject } => {
                let (path, body) = delta("ADD", &id, &role, &subject);
                out.mutate(api, Method::POST, &path, Some(body), "access bindings")
                    .await?;
            }
            FolderCmd::RemoveAccessBinding { id, role, subject } => {
                let (path, body) = delta("REMOVE", &id, &role, &subject);
                out.mutate(api, Method::POST, &path, Some(body), "access bindings")
                    .await?;
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Issue a key for a subject (operator); the secret is printed once.
    Create {
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List API keys (a table; --format json|yaml for scripts).
    List {
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke a key: requests with it fail at once.
    Delete { id: String },
}

impl ApiKeyCmd {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self {
            ApiKeyCmd::Create {
                subject,
                description,
            } => {
                let v = api
                    .call(
                        Method::POST,
                        "/iam/v1/apiKeys",
                        Some(&json!({"subjectId": subject, "description": description})),
                    )
                    .await?;
                out.print(&v, |v| {
                    format!(
                        "API key {} for {}\nsecret (shown once): {}",
                        v["apiKey"]["id"].as_str().unwrap_or(""),
                        v["apiKey"]["subjectId"].as_str().unwrap_or(""),
                        v["secret"].as_str().unwrap_or("")
                    )
                });
            }
            ApiKeyCmd::List { subject } => {
                let q = subject
                    .map(|s| format!("?subjectId={s}"))
                    .unwrap_or_default();
                let v = api.get(&format!("/iam/v1/apiKeys{q}")).await?;
                out.print(&v, |v| {
                    table(v, &["id", "subjectId", "createdAt", "description"])
                });
            }
            ApiKeyCmd::Delete { id } => {
                api.call(Method::DELETE, &format!("/iam/v1/apiKeys/{id}"), None)
                    .await?;
                out.print(&json!({}), |_| format!("API key {id} revoked"));
            }
        }
        Ok(())
    }
}
