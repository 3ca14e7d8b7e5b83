//! What the store keeps as documents: the [`Document`] trait (a kind's folder, name,
//! parent and links, which the indexes beside each body hold), each resource kind's
//! answers to it, and the fabric slots.

use serde::Serialize;
use serde::de::DeserializeOwned;

use cic_model::iam::{Folder, FolderAccess};
use cic_model::resource::{
    CloudService, Edge, Partner, PointOfPresence, PrivateConnection, PublicConnection,
    RoutingInstance, TrunkConnection,
};

/// A stored resource kind.
pub trait Document: Serialize + DeserializeOwned {
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// Tenant scope; catalog documents use "".
    fn folder_id(&self) -> &str {
        ""
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    /// What the document hangs from, for [`Store::children`](crate::Store::children): a connection's trunk, a
    /// trunk's edge; "" for the rest.
    fn parent_id(&self) -> &str {
        ""
    }
    /// The kind of [`Document::parent_id`]'s document.
    const PARENT_KIND: &'static str = "";
    /// What the document refers to, for [`Store::linked`](crate::Store::linked): (relation, target) pairs kept
    /// in an index beside it, so "which routing instance holds connection X" is one
    /// lookup, not a read of every instance.
    fn links(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A document with what [`Store::list_after_in_context`](crate::Store::list_after_in_context) finds beside it.
#[derive(Debug, Clone)]
pub struct InContext<T> {
    pub doc: T,
    /// The parent's parent (a connection's trunk's edge).
    pub grandparent: Option<String>,
    /// The document that links to this one (a connection's routing instance).
    pub owner: Option<String>,
}

/// The relations of [`Document::links`].
pub mod rel {
    /// A routing instance → each of its private connections.
    pub const MEMBER: &str = "member";
    /// A routing instance → each of its VPC networks.
    pub const VPC: &str = "vpc";
    /// A trunk → `<edge>|<wire>` (its frames' wire on the edge: see `TrunkConnection::wire`).
    pub const WIRE: &str = "wire";
    /// A private or public connection → `<trunk>|<vlan>`.
    pub const VLAN: &str = "vlan";
    /// A trunk → `<edge>|<port>` for each port it holds (its single port, its LAG's).
    pub const PORT: &str = "port";
    /// A fabric slot → `<edge>|<slot number>`.
    pub const SLOT: &str = "slot";

    pub fn wire_key(edge: &str, wire: &str) -> String {
        format!("{edge}|{wire}")
    }
    pub fn vlan_key(trunk: &str, vlan: u16) -> String {
        format!("{trunk}|{vlan}")
    }
    pub fn port_key(edge: &str, port: &str) -> String {
        format!("{edge}|{port}")
    }
    pub fn slot_key(edge: &str, slot: u32) -> String {
        format!("{edge}|{slot}")
    }
}

impl Document for PointOfPresence {
    const KIND: &'static str = "pointOfPresence";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for Edge {
    const KIND: &'static str = "edge";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

macro_rules! tenant_document {
    ($t:ty, $kind:literal, $parent_kind:literal, |$x:ident| $parent:expr, |$y:ident| $links:expr) => {
        impl Document for $t {
            const KIND: &'static str = $kind;
            const PARENT_KIND: &'static str = $parent_kind;
            fn id(&self) -> &str {
                &self.meta.id
            }
            fn folder_id(&self) -> &str {
                &self.meta.folder_id
            }
            fn name(&self) -> std::borrow::Cow<'_, str> {
                self.meta.name.as_str().into()
            }
            fn parent_id(&self) -> &str {
                let $x = self;
                $parent
            }
            fn links(&self) -> Vec<(&'static str, String)> {
                let $y = self;
                $links
            }
        }
    };
}
impl Document for Folder {
    const KIND: &'static str = "folder";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for FolderAccess {
    const KIND: &'static str = "folderAccess";
    fn id(&self) -> &str {
        &self.folder_id
    }
    fn folder_id(&self) -> &str {
        &self.folder_id
    }
}

tenant_document!(
    TrunkConnection,
    "trunkConnection",
    "edge",
    |t| &t.edge_id,
    |t| t
        .wire()
        .map(|w| (rel::WIRE, rel::wire_key(&t.edge_id, &w)))
        .into_iter()
        .chain(
            t.single_port_direct_joint
                .iter()
                .map(|j| &j.port_name)
                .chain(t.lag_direct_joint.iter().flat_map(|l| &l.port_names))
                .map(|p| (rel::PORT, rel::port_key(&t.edge_id, p)))
        )
        .collect()
);
tenant_document!(
    PrivateConnection,
    "privateConnection",
    "trunkConnection",
    |c| &c.trunk_connection_id,
    |c| vec![(rel::VLAN, rel::vlan_key(&c.trunk_connection_id, c.vlan_id))]
);
tenant_document!(RoutingInstance, "routingInstance", "", |_r| "", |r| r
    .cic_private_connection_info
    .iter()
    .map(|c| (rel::MEMBER, c.cic_private_connection_id.clone()))
    .chain(
        r.vpc_info
            .iter()
            .map(|v| (rel::VPC, v.vpc_network_id.clone()))
    )
    .collect());
tenant_document!(
    PublicConnection,
    "publicConnection",
    "trunkConnection",
    |c| &c.trunk_connection_id,
    |c| vec![(rel::VLAN, rel::vlan_key(&c.trunk_connection_id, c.vlan_id))]
);

impl Document for Partner {
    const KIND: &'static str = "partner";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

impl Document for CloudService {
    const KIND: &'static str = "cloudService";
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.name.as_str().into()
    }
}

/// The fabric segment slot of a routing instance on an edge (VNI and /31 derive from it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricSlot {
    pub edge_id: String,
    pub routing_instance_id: String,
    pub slot: u32,
}

impl FabricSlot {
    pub fn key(edge_id: &str, ri: &str) -> String {
        format!("{edge_id}/{ri}")
    }
}

impl Document for FabricSlot {
    const KIND: &'static str = "fabricSlot";
    const PARENT_KIND: &'static str = "routingInstance";
    /// Not the storage key: slots are written with `put_keyed(FabricSlot::key(..))`, as one
    /// routing instance has a slot on each of its edges.
    fn id(&self) -> &str {
        &self.routing_instance_id
    }
    fn folder_id(&self) -> &str {
        &self.edge_id
    }
    /// The slot number, ten digits: the highest in use on an edge is the last of its
    /// slots in the name index (see [`Store::last_name`](crate::Store::last_name)).
    fn name(&self) -> std::borrow::Cow<'_, str> {
        format!("{:010}", self.slot).into()
    }
    /// The slots of an instance are its children: found by index.
    fn parent_id(&self) -> &str {
        &self.routing_instance_id
    }
    fn links(&self) -> Vec<(&'static str, String)> {
        vec![(rel::SLOT, rel::slot_key(&self.edge_id, self.slot))]
    }
}
