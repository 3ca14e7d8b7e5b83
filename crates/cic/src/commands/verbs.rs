//! The commands every resource answers to, written once: `list`, `get`, `delete` and,
//! for what lives in a folder, `move` and `list-operations`. A resource names itself
//! ([`Resource`]) and flattens [`FolderVerbs`] or [`CatalogVerbs`] into its own commands;
//! the help text says its name ("Show one trunk connection.").

use std::marker::PhantomData;

use clap::{Arg, ArgMatches, Command, FromArgMatches, Subcommand};

use super::*;

/// What the shared verbs need to know of a resource.
pub trait Resource {
    /// "trunk connection"
    const ONE: &'static str;
    /// "trunk connections"
    const MANY: &'static str;
    /// "/cic/v1/trunkConnections"
    const BASE: &'static str;
    /// The columns of its table.
    const COLUMNS: &'static [&'static str];
    /// One shown for people (`get` without --format).
    fn show(v: &Value) -> String {
        pretty(v)
    }
}

/// A verb of a resource that lives in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderVerb {
    List {
        folder: Option<String>,
    },
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
    Move {
        id: String,
        destination_folder: String,
    },
    ListOperations {
        id: String,
    },
}

/// [`FolderVerb`]s of resource `R`, as subcommands.
#[derive(Debug, Clone)]
pub struct FolderVerbs<R> {
    pub verb: FolderVerb,
    resource: PhantomData<R>,
}

/// A verb of an operator's catalogue resource (no folder, deleted at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogVerb {
    List,
    Get { id: String },
    Delete { id: String },
}

/// [`CatalogVerb`]s of resource `R`, as subcommands.
#[derive(Debug, Clone)]
pub struct CatalogVerbs<R> {
    pub verb: CatalogVerb,
    resource: PhantomData<R>,
}

fn id_arg() -> Arg {
    Arg::new("id")
        .required(true)
        .value_name("ID")
        .help("Its id")
}

fn list<R: Resource>() -> Command {
    Command::new("list").about(format!(
        "List {} (a table; --format json|yaml for scripts)",
        R::MANY
    ))
}

fn get<R: Resource>() -> Command {
    Command::new("get")
        .about(format!("Show one {}", R::ONE))
        .arg(id_arg())
}

fn id_of(m: &ArgMatches) -> String {
    m.get_one::<String>("id").cloned().unwrap_or_default()
}

fn unknown(name: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::InvalidSubcommand,
        format!("no subcommand {name:?}"),
    )
}

fn missing() -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::MissingSubcommand,
        "a subcommand is required",
    )
}

impl<R: Resource> Subcommand for FolderVerbs<R> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.subcommand(
            list::<R>().arg(
                Arg::new("folder")
                    .long("folder")
                    .visible_alias("folder-id")
                    .value_name("FOLDER")
                    .help("The folder [default: CIC_FOLDER, else the profile's, else every folder you see]"),
            ),
        )
        .subcommand(get::<R>())
        .subcommand(
            Command::new("delete")
                .about(format!("Delete a {}", R::ONE))
                .arg(id_arg()),
        )
        .subcommand(
            Command::new("move")
                .about(format!("Move a {} to another folder", R::ONE))
                .arg(id_arg())
                .arg(
                    Arg::new("destination_folder")
                        .long("destination-folder")
                        .value_name("FOLDER")
                        .help("The folder to move it to")
                        .required(true),
                ),
        )
        .subcommand(
            Command::new("list-operations")
                .about(format!("The operations on a {}, newest first", R::ONE))
                .arg(id_arg()),
        )
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        matches!(name, "list" | "get" | "delete" | "move" | "list-operations")
    }
}

impl<R: Resource> FromArgMatches for FolderVerbs<R> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = m.subcommand().ok_or_else(missing)?;
        let verb = match name {
            "list" => FolderVerb::List {
                folder: sub.get_one::<String>("folder").cloned(),
            },
            "get" => FolderVerb::Get { id: id_of(sub) },
            "delete" => FolderVerb::Delete { id: id_of(sub) },
            "move" => FolderVerb::Move {
                id: id_of(sub),
                destination_folder: sub
                    .get_one::<String>("destination_folder")
                    .cloned()
                    .unwrap_or_default(),
            },
            "list-operations" => FolderVerb::ListOperations { id: id_of(sub) },
            other => return Err(unknown(other)),
        };
        Ok(FolderVerbs {
            verb,
            resource: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<R: Resource> FolderVerbs<R> {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        let one = |id: &str| format!("{}/{id}", R::BASE);
        match self.verb {
            FolderVerb::List { folder } => {
                let v = api
                    .get(&format!("{}{}", R::BASE, out.folder_query(folder)))
                    .await?;
                out.print(&v, |v| table(v, R::COLUMNS));
                Ok(())
            }
            FolderVerb::Get { id } => {
                out.print(&api.get(&one(&id)).await?, R::show);
                Ok(())
            }
            FolderVerb::Delete { id } => {
                out.mutate(
                    api,
                    Method::DELETE,
                    &one(&id),
                    None,
                    &format!("{} deleted", R::ONE),
                )
                .await
            }
            FolderVerb::Move {
                id,
                destination_folder,
            } => {
                out.mutate(
                    api,
                    Method::POST,
                    &format!("{}:move", one(&id)),
                    Some(json!({"destinationFolderId": destination_folder})),
                    &format!("{} moved", R::ONE),
                )
                .await
            }
            FolderVerb::ListOperations { id } => list_operations(api, out, &one(&id)).await,
        }
    }
}

impl<R: Resource> Subcommand for CatalogVerbs<R> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.subcommand(list::<R>())
            .subcommand(get::<R>())
            .subcommand(
                Command::new("delete")
                    .about(format!("Delete a {} (operator)", R::ONE))
                    .arg(id_arg()),
            )
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        matches!(name, "list" | "get" | "delete")
    }
}

impl<R: Resource> FromArgMatches for CatalogVerbs<R> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = m.subcommand().ok_or_else(missing)?;
        let verb = match name {
            "list" => CatalogVerb::List,
            "get" => CatalogVerb::Get { id: id_of(sub) },
            "delete" => CatalogVerb::Delete { id: id_of(sub) },
            other => return Err(unknown(other)),
        };
        Ok(CatalogVerbs {
            verb,
            resource: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<R: Resource> CatalogVerbs<R> {
    pub async fn run(self, api: &Api, out: &Output) -> Result<()> {
        match self.verb {
            CatalogVerb::List => {
                let v = api.get(R::BASE).await?;
                out.print(&v, |v| table(v, R::COLUMNS));
            }
            CatalogVerb::Get { id } => {
                out.print(&api.get(&format!("{}/{id}", R::BASE)).await?, R::show);
            }
            CatalogVerb::Delete { id } => {
                let v = api
                    .call(Method::DELETE, &format!("{}/{id}", R::BASE), None)
                    .await?;
                out.print(&v, |_| format!("{} {id} deleted", R::ONE));
            }
        }
        Ok(())
    }
}

/// The resources, as the verbs know them.
pub struct Trunks;
impl Resource for Trunks {
    const ONE: &'static str = "trunk connection";
    const MANY: &'static str = "trunk connections";
    const BASE: &'static str = "/cic/v1/trunkConnections";
    const COLUMNS: &'static [&'static str] = TRUNK_COLUMNS;
}

pub struct PrivateConnections;
impl Resource for PrivateConnections {
    const ONE: &'static str = "private connection";
    const MANY: &'static str = "private connections";
    const BASE: &'static str = "/cic/v1/privateConnections";
    const COLUMNS: &'static [&'static str] = CONNECTION_COLUMNS;
    fn show(v: &Value) -> String {
        format!("{}\n{}", pretty(v), session_line(v))
    }
}

pub struct PublicConnections;
impl Resource for PublicConnections {
    const ONE: &'static str = "public connection";
    const MANY: &'static str = "public connections";
    const BASE: &'static str = "/cic/v1/publicConnections";
    const COLUMNS: &'static [&'static str] = PUBLIC_COLUMNS;
}

pub struct RoutingInstances;
impl Resource for RoutingInstances {
    const ONE: &'static str = "routing instance";
    const MANY: &'static str = "routing instances";
    const BASE: &'static str = "/cloudrouter/v1/routingInstances";
    const COLUMNS: &'static [&'static str] = &["id", "name", "status", "deletionProtection"];
}

pub struct Pops;
impl Resource for Pops {
    const ONE: &'static str = "point of presence";
    const MANY: &'static str = "points of presence";
    const BASE: &'static str = "/cic/v1/pointOfPresences";
    const COLUMNS: &'static [&'static str] = &["id", "name", "locationAddress"];
}

pub struct Partners;
impl Resource for Partners {
    const ONE: &'static str = "partner";
    const MANY: &'static str = "partners";
    const BASE: &'static str = "/cic/v1/partners";
    const COLUMNS: &'static [&'static str] = &["id", "name", "url", "status"];
}

pub struct CloudServices;
impl Resource for CloudServices {
    const ONE: &'static str = "cloud service";
    const MANY: &'static str = "cloud services";
    const BASE: &'static str = "/cic/v1/cloudServices";
    const COLUMNS: &'static [&'static str] = &["id", "name", "prefixes"];
}

pub struct EdgeRouters;
impl Resource for EdgeRouters {
    const ONE: &'static str = "edge router";
    const MANY: &'static str = "edge routers";
    const BASE: &'static str = "/cic/v1/edges";
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "pointOfPresenceId", "routerId", "drain"];
}
