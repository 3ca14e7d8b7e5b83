//! The Linux data plane of a cic edge.
//!
//! - [`netns`]: named network namespaces (one per routing instance) without forking.
//! - [`netlink`]: links and addresses, through one rtnetlink connection per namespace;
//!   [`routes`]: routes one at a time or many in a batch; [`rules`]: source rules.
//! - [`probe`]: what this kernel can do (802.1Q or not), checked at start, never assumed.

pub mod bench;
pub mod doctor;
pub mod netlink;
pub mod netns;
pub mod probe;
pub mod routes;
mod rtnl;
pub mod rules;
pub mod tc;

pub use netlink::{Link, LinkCounters, LinkKind, LinkSpec, Neighbor, Netlink, PROTO_BGP};
pub use routes::RouteChange;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Netlink(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
    /// The kernel did not answer in time, or was busy: trying again may succeed.
    #[error("{0}")]
    Busy(String),
}

impl Error {
    /// Whether trying again may succeed (the kernel did not answer, or was busy), as
    /// opposed to a request it refused for what it asked.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Whether this process may manage namespaces and links (tests skip without it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Deletes every link of namespace `name` (synchronously, so what they held — VXLAN VNIs,
/// addresses — is free when this returns), then the namespace.
pub async fn purge(name: &str) -> Result<()> {
    if netns::exists(name) {
        match Netlink::open(Some(name)) {
            Ok(nl) => {
                for l in nl.links().await?.into_iter().filter(|l| l.name != "lo") {
                    match nl.del_link(l.index).await {
                        // A veth peer deleted with its other end is already gone.
                        Err(Error::Netlink(m)) if m.contains("No such device") => {}
                        r => r?,
                    }
                }
            }
            // Unmounted by another process since the look: nothing left to enter.
            Err(_) if !netns::exists(name) => {}
            Err(e) => return Err(e),
        }
    }
    netns::del(name).map_err(|e| Error::Io(e.to_string()))
}
