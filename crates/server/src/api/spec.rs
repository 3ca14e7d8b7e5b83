//! The API's one table of endpoints. The router is built from it, and so is the OpenAPI 3
//! document served at `/openapi.json`: a route cannot exist undocumented, and a documented
//! one cannot be missing. Request and response schemas come from the Rust types (schemars
//! reads their serde attributes), so the document follows the code.
//!
//! Methods in the modelled API's style (`POST …/{id}:move`) share one axum route per
//! resource, which dispatches on the suffix; they are listed here as their own paths,
//! and a test calls every documented path to prove it is served.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use cic_model::ApiError;
use cic_model::edge::{EdgeConfig, EdgeReport};
use cic_model::iam::{
    AccessBinding, ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreateFolderRequest, Folder,
    UpdateAccessBindingsRequest,
};
use cic_model::resource::{
    CloudService, CreateEdgeRequest, CreatePrivateConnectionRequest, CreatePublicConnectionRequest,
    CreateRoutingInstanceRequest, CreateTrunkConnectionRequest, Edge, EdgeCredentials,
    EdgeCredentialsRequest, EdgeRegistration, Operation, Partner, PointOfPresence,
    PrivateConnection, PublicConnection, RoutingInstance, TrunkConnection,
    UpdateTrunkConnectionRequest,
};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::{
    ListQuery, PageQuery, batch_get, catalog, connections, folders, get_one, list_in_folder,
    list_operations_of, operations, post_method, public, routing, sessions, static_routes, sync,
    trunks,
};
use crate::AppState;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// Who may call an endpoint (documentation; [`crate::access`] enforces it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anyone,
    /// Any user; what they see is scoped by their folder roles.
    User,
    Viewer,
    Editor,
    /// A folder admin (or the operator).
    FolderAdmin,
    /// The operator's admin token.
    Operator,
    /// An edge token.
    Edge,
}

impl Caller {
    fn describe(self) -> &'static str {
        match self {
            Caller::Anyone => "No token needed.",
            Caller::User => "Any valid token; results are limited to what the caller may see.",
            Caller::Viewer => "viewer (or a stronger role) in the resource's folder.",
            Caller::Editor => "editor (or admin) in the resource's folder.",
            Caller::FolderAdmin => "admin in the folder, or the operator.",
            Caller::Operator => "The operator's admin token.",
            Caller::Edge => "An edge's own token or client certificate.",
        }
    }
}

enum Response {
    One(SchemaFn),
    /// A page keyed by kind: `{"<key>": [...], "nextPageToken": "…"}`.
    List(&'static str, SchemaFn),
    Empty,
    Text,
}

pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    summary: &'static str,
    caller: Caller,
    query: Option<SchemaFn>,
    body: Option<SchemaFn>,
    response: Response,
    /// The handler; `None` for a `:method` served by the resource's own route.
    route: Option<MethodRouter<Arc<AppState>>>,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn inline<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

fn ep(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    caller: Caller,
    route: MethodRouter<Arc<AppState>>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        caller,
        query: None,
        body: None,
        response: Response::One(schema::<Operation>),
        route: Some(route),
    }
}

/// `POST {path}` where the path ends in `:method`: dispatched by the resource's route.
fn method(path: &'static str, summary: &'static str, caller: Caller) -> Endpoint {
    Endpoint {
        method: "post",
        path,
        summary,
        caller,
        query: None,
        body: None,
        response: Response::One(schema::<Operation>),
        route: None,
    }
}

impl Endpoint {
    fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(inline::<T>);
        self
    }
    fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(schema::<T>);
        self
    }
    fn returns<T: JsonSchema>(mut self) -> Self {
        self.response = Response::One(schema::<T>);
        self
    }
    fn list<T: JsonSchema>(mut self, key: &'static str) -> Self {
        self.response = Response::List(key, schema::<T>);
        self
    }
    fn empty(mut self) -> Self {
        self.response = Response::Empty;
        self
    }
    fn text(mut self) -> Self {
        self.response = Response::Text;
        self
    }
    fn get_method(mut self) -> Self {
        self.method = "get";
        self
    }
}

/// Every endpoint of the API.
pub fn endpoints() -> Vec<Endpoint> {
    use Caller::{Anyone, Editor, FolderAdmin, Operator, User, Viewer};
    vec![
        ep(
            "get",
            "/healthz",
            "Liveness",
            Anyone,
            get(|| async { "ok" }),
        )
        .text(),
        ep(
            "get",
            "/readyz",
            "Readiness: the store answers and its schema is this binary's (503 with why otherwise)",
            Anyone,
            get(crate::readyz),
        )
        .text(),
        ep(
            "get",
            "/openapi.json",
            "This document",
            Anyone,
            get(super::openapi_json),
        )
        .text(),
        ep(
            "get",
            "/metrics",
            "Prometheus metrics: sessions as the edges last reported them, and the control plane's state",
            Operator,
            get(super::metrics::metrics),
        )
        .text(),
        // Catalog.
        ep(
            "get",
            "/cic/v1/pointOfPresences",
            "List points of presence",
            User,
            get(catalog::list_pops),
        )
        .query::<ListQuery>()
        .list::<PointOfPresence>("pointOfPresences"),
        ep(
            "post",
            "/cic/v1/pointOfPresences",
            "Create a point of presence",
            Operator,
            post(catalog::create_pop),
        )
        .body::<PointOfPresence>()
        .returns::<PointOfPresence>(),
        ep(
            "get",
            "/cic/v1/pointOfPresences/{id}",
            "Get a point of presence",
            User,
            get(catalog::get_pop),
        )
        .returns::<PointOfPresence>(),
        ep(
            "put",
            "/cic/v1/pointOfPresences/{id}",
            "Replace a point of presence (its public-services network, name, address)",
            Operator,
            put(catalog::replace_pop),
        )
        .body::<PointOfPresence>()
        .returns::<PointOfPresence>(),
        ep(
            "delete",
            "/cic/v1/pointOfPresences/{id}",
            "Delete a point of presence (refused while it has edges)",
            Operator,
            delete(catalog::delete_pop),
        )
        .empty(),
        ep(
            "get",
            "/cic/v1/partners",
            "List partners",
            User,
            get(catalog::list_catalog::<Partner>),
        )
        .query::<ListQuery>()
        .list::<Partner>("partners"),
        ep(
            "post",
            "/cic/v1/partners",
            "Add a partner with its ports at the PoPs",
            Operator,
            post(catalog::create_partner),
        )
        .body::<Partner>()
        .returns::<Partner>(),
        ep(
            "get",
            "/cic/v1/partners/{id}",
            "Get a partner",
            User,
            get(catalog::get_catalog::<Partner>),
        )
        .returns::<Partner>(),
        ep(
            "patch",
            "/cic/v1/partners/{id}",
            "Update a partner's name, url or status (UP, DOWN)",
            Operator,
            patch(catalog::update_partner),
        )
        .body::<catalog::UpdatePartnerRequest>()
        .returns::<Partner>(),
        ep(
            "delete",
            "/cic/v1/partners/{id}",
            "Remove a partner (refused while a trunk goes through it)",
            Operator,
            delete(catalog::delete_partner),
        )
        .empty(),
        ep(
            "get",
            "/cic/v1/edges",
            "List edge routers",
            Operator,
            get(catalog::list_edges),
        )
        .query::<ListQuery>()
        .list::<Edge>("edges"),
        ep(
            "post",
            "/cic/v1/edges",
            "Register an edge router; returns its token once",
            Operator,
            post(catalog::create_edge),
        )
        .body::<CreateEdgeRequest>()
        .returns::<EdgeRegistration>(),
        ep(
            "get",
            "/cic/v1/edges/{id}",
            "Get an edge router with its last report",
            Operator,
            get(catalog::get_edge),
        )
        .returns::<Edge>(),
        ep(
            "post",
            "/cic/v1/edges/{id}",
            "Methods of an edge (see the :method paths)",
            Operator,
            post(catalog::edge_method),
        ),
        method(
            "/cic/v1/edges/{id}:drain",
            "Drain an edge for maintenance: its sessions send every route with GRACEFUL_SHUTDOWN (RFC 8326)",
            Operator,
        )
        .returns::<Edge>(),
        method(
            "/cic/v1/edges/{id}:undrain",
            "End an edge's maintenance drain",
            Operator,
        )
        .returns::<Edge>(),
        method(
            "/cic/v1/edges/{id}:issueCertificate",
            "Issue a client certificate for the edge from the server's CA (for the key of a CSR, or a key made here and shown once); other credentials stay valid",
            Operator,
        )
        .body::<EdgeCredentialsRequest>()
        .returns::<EdgeCredentials>(),
        method(
            "/cic/v1/edges/{id}:rotateCredentials",
            "New credentials for the edge (a certificate or a token); its other ones of that kind are refused from revokeOldAfterSeconds on",
            Operator,
        )
        .body::<EdgeCredentialsRequest>()
        .returns::<EdgeCredentials>(),
        ep(
            "delete",
            "/cic/v1/edges/{id}",
            "Delete an edge router (refused while it carries trunks)",
            Operator,
            delete(catalog::delete_edge),
        )
        .empty(),
        ep(
            "get",
            "/cic/v1/edges/{id}/config",
            "The desired config of an edge, as the edge would fetch it now",
            Operator,
            get(catalog::edge_config),
        )
        .returns::<EdgeConfig>(),
        ep(
            "get",
            "/cic/v1/edges/{id}/fabricAttachments",
            "What the fabric must build for each routing instance on this edge",
            Operator,
            get(catalog::fabric_attachments),
        )
        .list::<crate::compile::FabricAttachmentView>("items"),
        ep(
            "get",
            "/cic/v1/edges/{id}/publicServicesAttachments",
            "What the PoP's public-services network must build for each public connection on this edge",
            Operator,
            get(catalog::public_services_attachments),
        )
        .list::<crate::compile::PublicServicesAttachmentView>("items"),
        ep(
            "get",
            "/cic/v1/edgeSync/config",
            "The calling edge's desired configuration (long-poll with afterRevision; the changes since the answer it holds with changesSince)",
            Caller::Edge,
            get(sync::config),
        )
        .query::<sync::ConfigQuery>()
        .returns::<cic_model::edge::EdgeConfigUpdate>(),
        ep(
            "get",
            "/cic/v1/edgeSync/queries",
            "Looking-glass questions for the calling edge (long-poll with waitSeconds)",
            Caller::Edge,
            get(super::looking_glass::queries),
        )
        .query::<super::looking_glass::QueriesQuery>()
        .list::<cic_model::edge::RouteQuery>("queries"),
        ep(
            "put",
            "/cic/v1/edgeSync/queries/{id}",
            "The calling edge answers a looking-glass question",
            Caller::Edge,
            put(super::looking_glass::answer),
        )
        .body::<cic_model::edge::RouteAnswer>()
        .empty(),
        ep(
            "put",
            "/cic/v1/edgeSync/status",
            "The calling edge reports what it applied and its sessions",
            Caller::Edge,
            // An edge's report grows with its sessions (about 250 bytes each).
            put(sync::status).layer(axum::extract::DefaultBodyLimit::max(
                crate::error::MAX_EDGE_REPORT,
            )),
        )
        .body::<EdgeReport>()
        .returns::<sync::ReportTaken>(),
        ep(
            "patch",
            "/cic/v1/edgeSync/status",
            "The calling edge reports the changes since the last report taken from it (ABORTED when that is not the report named: send it whole)",
            Caller::Edge,
            patch(sync::status_changes).layer(axum::extract::DefaultBodyLimit::max(
                crate::error::MAX_EDGE_REPORT,
            )),
        )
        .body::<cic_model::edge::EdgeReportChanges>()
        .returns::<sync::ReportTaken>(),
        // Trunk connections.
        ep(
            "get",
            "/cic/v1/trunkConnections",
            "List trunk connections of a folder",
            Viewer,
            get(list_in_folder::<TrunkConnection>),
        )
        .query::<ListQuery>()
        .list::<TrunkConnection>("trunkConnections"),
        ep(
            "post",
            "/cic/v1/trunkConnections",
            "Create a trunk connection",
            Editor,
            post(trunks::create),
        )
        .body::<CreateTrunkConnectionRequest>(),
        ep(
            "post",
            "/cic/v1/trunkConnections:batchGet",
            "Get up to 1000 trunk connections by id",
            Viewer,
            post(batch_get::<TrunkConnection>),
        )
        .body::<BatchGetTrunks>()
        .list::<TrunkConnection>("trunkConnections"),
        ep(
            "get",
            "/cic/v1/trunkConnections/{id}",
            "Get a trunk connection",
            Viewer,
            get(get_one::<TrunkConnection>),
        )
        .returns::<TrunkConnection>(),
        ep(
            "patch",
            "/cic/v1/trunkConnections/{id}",
            "Update name, description, labels, deletionProtection",
            Editor,
            patch(trunks::update),
        )
        .body::<UpdateTrunkConnectionRequest>(),
        ep(
            "delete",
            "/cic/v1/trunkConnections/{id}",
            "Delete a trunk connection (refused while protected or while it has connections)",
            Editor,
            delete(trunks::delete),
        ),
        ep(
            "post",
            "/cic/v1/trunkConnections/{id}",
            "Methods of a trunk connection (see the :method paths)",
            Editor,
            post(post_method::<TrunkConnection>),
        ),
        method(
            "/cic/v1/trunkConnections/{id}:move",
            "Move a trunk connection to another folder",
            Editor,
        )
        .body::<super::MoveRequest>(),
        ep(
            "get",
            "/cic/v1/trunkConnections/{id}/privateConnections",
            "List the private connections of a trunk",
            Viewer,
            get(connections::of_trunk),
        )
        .query::<PageQuery>()
        .list::<PrivateConnection>("privateConnections"),
        ep(
            "get",
            "/cic/v1/trunkConnections/{id}/operations",
            "List the operations of a trunk connection, newest first",
            Viewer,
            get(list_operations_of::<TrunkConnection>),
        )
        .query::<PageQuery>()
        .list::<Operation>("operations"),
        // Private connections.
        ep(
            "get",
            "/cic/v1/privateConnections",
            "List private connections of a folder, with live BGP state",
            Viewer,
            get(connections::list),
        )
        .query::<ListQuery>()
        .list::<PrivateConnection>("privateConnections"),
        ep(
            "post",
            "/cic/v1/privateConnections",
            "Create a private connection",
            Editor,
            post(connections::create),
        )
        .body::<CreatePrivateConnectionRequest>(),
        ep(
            "post",
            "/cic/v1/privateConnections:batchGet",
            "Get up to 1000 private connections by id",
            Viewer,
            post(batch_get::<PrivateConnection>),
        )
        .body::<BatchGetConnections>()
        .list::<PrivateConnection>("privateConnections"),
        ep(
            "get",
            "/cic/v1/privateConnections/{id}",
            "Get a private connection with its live BGP state",
            Viewer,
            get(connections::get),
        )
        .returns::<PrivateConnection>(),
        method(
            "/cic/v1/privateConnections/{id}:routes",
            "The looking glass: received (with the reason for each refused route), accepted or advertised routes, from the edge",
            Viewer,
        )
        .get_method()
        .query::<super::looking_glass::RoutesQuery>()
        .list::<cic_model::edge::RouteEntry>("routes"),
        method(
            "/cic/v1/privateConnections/{id}:diagnose",
            "Onboarding diagnostics: from what the edge sees of each session (carrier, ARP/ND, TCP to 179, the OPEN exchange, prefixes), the step that is missing and what to change",
            Viewer,
        )
        .get_method()
        .query::<super::looking_glass::DiagnoseQuery>()
        .returns::<super::looking_glass::DiagnoseAnswer>(),
        method(
            "/cic/v1/privateConnections/{id}:routerConfig",
            "The customer's router configuration for this connection (BIRD 2, FRR, Cisco IOS-XE, Juniper Junos, Arista EOS, MikroTik RouterOS 7): interface, peerings of both families, BGP with MD5 (secretViewer; a placeholder otherwise), BFD, graceful restart, import and export filters, max-prefix",
            Viewer,
        )
        .get_method()
        .query::<super::router_config::RouterConfigQuery>()
        .returns::<super::router_config::RouterConfig>(),
        method(
            "/cic/v1/privateConnections/{id}:history",
            "The connection's BGP state, prefixes and traffic (bits and packets per second both ways) over the last hour (every edge report) or day (a sample a minute), with the events between (session down with its reason, up, BFD down, max-prefix hold), as this server took the edge's reports",
            Viewer,
        )
        .get_method()
        .query::<super::sessions::HistoryQuery>()
        .returns::<super::sessions::HistoryAnswer>(),
        ep(
            "patch",
            "/cic/v1/privateConnections/{id}",
            "Update trunk, VLAN, peering, static routes, name, description, labels",
            Editor,
            patch(connections::update),
        )
        .body::<connections::UpdateRequest>(),
        ep(
            "delete",
            "/cic/v1/privateConnections/{id}",
            "Delete a private connection (refused while in a routing instance)",
            Editor,
            delete(connections::delete),
        ),
        ep(
            "post",
            "/cic/v1/privateConnections/{id}",
            "Methods of a private connection (see the :method paths)",
            Editor,
            post(connections::post_method),
        ),
        method(
            "/cic/v1/privateConnections/{id}:move",
            "Move a private connection to another folder",
            Editor,
        )
        .body::<super::MoveRequest>(),
        method(
            "/cic/v1/privateConnections/{id}:upsertStaticRoutes",
            "Add static routes (prefix via the customer's peer address)",
            Editor,
        )
        .body::<static_routes::StaticRoutesRequest>(),
        method(
            "/cic/v1/privateConnections/{id}:startBgpFailoverTest",
            "Hold the BGP session down for durationSeconds (default 300); it comes back by itself",
            Editor,
        )
        .body::<sessions::FailoverTestRequest>(),
        method(
            "/cic/v1/privateConnections/{id}:stopBgpFailoverTest",
            "End the running failover test now",
            Editor,
        ),
        method(
            "/cic/v1/privateConnections/{id}:resetBgpSession",
            "Restart the BGP session at once (ends a max-prefix idle hold)",
            Editor,
        ),
        method(
            "/cic/v1/privateConnections/{id}:removeStaticRoutes",
            "Remove static routes",
            Editor,
        )
        .body::<static_routes::StaticRoutesRequest>(),
        ep(
            "get",
            "/cic/v1/privateConnections/{id}/operations",
            "List the operations of a private connection, newest first",
            Viewer,
            get(list_operations_of::<PrivateConnection>),
        )
        .query::<PageQuery>()
        .list::<Operation>("operations"),
        // Public connections and the service catalogue.
        ep(
            "get",
            "/cic/v1/cloudServices",
            "List the cloud services reachable over public connections, with their prefixes",
            User,
            get(catalog::list_catalog::<CloudService>),
        )
        .query::<ListQuery>()
        .list::<CloudService>("cloudServices"),
        ep(
            "post",
            "/cic/v1/cloudServices",
            "Add a cloud service to the catalogue",
            Operator,
            post(public::create_service),
        )
        .body::<CloudService>()
        .returns::<CloudService>(),
        ep(
            "get",
            "/cic/v1/cloudServices/{id}",
            "Get a cloud service",
            User,
            get(catalog::get_catalog::<CloudService>),
        )
        .returns::<CloudService>(),
        ep(
            "put",
            "/cic/v1/cloudServices/{id}",
            "Replace a cloud service (new prefixes reach the edges at once)",
            Operator,
            put(public::replace_service),
        )
        .body::<CloudService>()
        .returns::<CloudService>(),
        ep(
            "delete",
            "/cic/v1/cloudServices/{id}",
            "Remove a cloud service (refused while a public connection allows it)",
            Operator,
            delete(public::delete_service),
        )
        .empty(),
        ep(
            "get",
            "/cic/v1/publicConnections",
            "List public connections of a folder",
            Viewer,
            get(public::list),
        )
        .query::<ListQuery>()
        .list::<PublicConnection>("publicConnections"),
        ep(
            "post",
            "/cic/v1/publicConnections",
            "Create a public connection in a customer's folder",
            Operator,
            post(public::create),
        )
        .body::<CreatePublicConnectionRequest>(),
        ep(
            "get",
            "/cic/v1/publicConnections/{id}",
            "Get a public connection with its live BGP state",
            Viewer,
            get(public::get),
        )
        .returns::<PublicConnection>(),
        ep(
            "delete",
            "/cic/v1/publicConnections/{id}",
            "Delete a public connection",
            Operator,
            delete(public::delete),
        ),
        ep(
            "post",
            "/cic/v1/publicConnections/{id}",
            "Methods of a public connection (see the :method paths)",
            Editor,
            post(public::post_method),
        ),
        method(
            "/cic/v1/publicConnections/{id}:move",
            "Move a public connection to another folder",
            Editor,
        )
        .body::<super::MoveRequest>(),
        method(
            "/cic/v1/publicConnections/{id}:routes",
            "The looking glass: received (with the reason for each refused route), accepted or advertised routes, from the edge",
            Viewer,
        )
        .get_method()
        .query::<super::looking_glass::RoutesQuery>()
        .list::<cic_model::edge::RouteEntry>("routes"),
        method(
            "/cic/v1/publicConnections/{id}:history",
            "The public connection's BGP state, prefixes and traffic over the last hour or day, with the events between (as :history of a private connection)",
            Viewer,
        )
        .get_method()
        .query::<super::sessions::HistoryQuery>()
        .returns::<super::sessions::HistoryAnswer>(),
        method(
            "/cic/v1/publicConnections/{id}:startBgpFailoverTest",
            "Hold the BGP session down for durationSeconds (default 300); it comes back by itself",
            Editor,
        )
        .body::<sessions::PublicFailoverTestRequest>(),
        method(
            "/cic/v1/publicConnections/{id}:stopBgpFailoverTest",
            "End the running failover test now",
            Editor,
        ),
        method(
            "/cic/v1/publicConnections/{id}:resetBgpSession",
            "Restart the BGP session at once (ends a max-prefix idle hold)",
            Editor,
        ),
        ep(
            "get",
            "/cic/v1/publicConnections/{id}/operations",
            "List the operations of a public connection, newest first",
            Viewer,
            get(list_operations_of::<PublicConnection>),
        )
        .query::<PageQuery>()
        .list::<Operation>("operations"),
        ep(
            "get",
            "/cic/v1/trunkConnections/{id}/publicConnections",
            "List the public connections of a trunk",
            Viewer,
            get(public::of_trunk),
        )
        .query::<PageQuery>()
        .list::<PublicConnection>("publicConnections"),
        // Routing instances.
        ep(
            "get",
            "/cloudrouter/v1/routingInstances",
            "List routing instances of a folder",
            Viewer,
            get(list_in_folder::<RoutingInstance>),
        )
        .query::<ListQuery>()
        .list::<RoutingInstance>("routingInstances"),
        ep(
            "post",
            "/cloudrouter/v1/routingInstances",
            "Create a routing instance",
            Editor,
            post(routing::create),
        )
        .body::<CreateRoutingInstanceRequest>(),
        ep(
            "post",
            "/cloudrouter/v1/routingInstances:batchGet",
            "Get up to 1000 routing instances by id",
            Viewer,
            post(batch_get::<RoutingInstance>),
        )
        .body::<BatchGetRoutingInstances>()
        .list::<RoutingInstance>("routingInstances"),
        ep(
            "get",
            "/cloudrouter/v1/routingInstances:getByVpcNetworkId/{vpcNetworkId}",
            "The routing instance of a VPC network",
            Viewer,
            get(routing::get_by_vpc),
        )
        .returns::<RoutingInstance>(),
        ep(
            "get",
            "/cloudrouter/v1/routingInstances:getByCicPrivateConnectionId/{cicPrivateConnectionId}",
            "The routing instance of a private connection",
            Viewer,
            get(routing::get_by_connection),
        )
        .returns::<RoutingInstance>(),
        ep(
            "get",
            "/cloudrouter/v1/routingInstances/{id}",
            "Get a routing instance",
            Viewer,
            get(routing::get),
        )
        .returns::<RoutingInstance>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:routerConfig",
            "The customer's router configuration for every connection of the routing instance at once (both PoPs; one may be the standby)",
            Viewer,
        )
        .get_method()
        .query::<super::router_config::RouterConfigQuery>()
        .returns::<super::router_config::RouterConfig>(),
        ep(
            "patch",
            "/cloudrouter/v1/routingInstances/{id}",
            "Update a routing instance",
            Editor,
            patch(routing::update),
        )
        .body::<routing::UpdateRequest>(),
        ep(
            "delete",
            "/cloudrouter/v1/routingInstances/{id}",
            "Delete a routing instance (refused while protected)",
            Editor,
            delete(routing::delete),
        ),
        ep(
            "post",
            "/cloudrouter/v1/routingInstances/{id}",
            "Methods of a routing instance (see the :method paths)",
            Editor,
            post(routing::post_method),
        ),
        method(
            "/cloudrouter/v1/routingInstances/{id}:upsertPrefixes",
            "Add prefixes of a VPC network, per zone",
            Editor,
        )
        .body::<routing::PrefixesRequest>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:removePrefixes",
            "Remove prefixes of a VPC network",
            Editor,
        )
        .body::<routing::PrefixesRequest>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:addPrivateConnection",
            "Attach a private connection",
            Editor,
        )
        .body::<routing::ConnectionRequest>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:removePrivateConnection",
            "Detach a private connection",
            Editor,
        )
        .body::<routing::ConnectionRequest>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:updateNetworks",
            "Add, update and delete VPC networks",
            Editor,
        )
        .body::<routing::NetworksRequest>(),
        method(
            "/cloudrouter/v1/routingInstances/{id}:move",
            "Move a routing instance to another folder",
            Editor,
        )
        .body::<super::MoveRequest>(),
        ep(
            "get",
            "/cloudrouter/v1/routingInstances/{id}/operations",
            "List the operations of a routing instance, newest first",
            Viewer,
            get(list_operations_of::<RoutingInstance>),
        )
        .query::<PageQuery>()
        .list::<Operation>("operations"),
        // Operations.
        ep(
            "get",
            "/operations/{id}",
            "Get an operation (waitSeconds long-polls until it is done)",
            Viewer,
            get(operations::get),
        )
        .query::<operations::WaitQuery>(),
        ep(
            "post",
            "/operations/{id}",
            "Methods of an operation (see the :method paths)",
            Editor,
            post(operations::cancel),
        ),
        method(
            "/operations/{id}:cancel",
            "Cancel an operation: a done one is returned as it is, a running one is refused",
            Editor,
        ),
        // Tenancy.
        ep(
            "get",
            "/resourcemanager/v1/folders",
            "List the folders the caller has a role in (all, for the operator)",
            User,
            get(folders::list),
        )
        .query::<ListQuery>()
        .list::<Folder>("folders"),
        ep(
            "post",
            "/resourcemanager/v1/folders",
            "Create a folder",
            Operator,
            post(folders::create),
        )
        .body::<CreateFolderRequest>(),
        ep(
            "get",
            "/resourcemanager/v1/folders/{id}",
            "Get a folder",
            Viewer,
            get(folders::get),
        )
        .returns::<Folder>(),
        method(
            "/resourcemanager/v1/folders/{id}:listAccessBindings",
            "List the folder's role bindings",
            FolderAdmin,
        )
        .get_method()
        .query::<PageQuery>()
        .list::<AccessBinding>("accessBindings"),
        ep(
            "post",
            "/resourcemanager/v1/folders/{id}",
            "Methods of a folder (see the :method paths)",
            FolderAdmin,
            post(folders::post_method),
        ),
        method(
            "/resourcemanager/v1/folders/{id}:updateAccessBindings",
            "Add and remove role bindings",
            FolderAdmin,
        )
        .body::<UpdateAccessBindingsRequest>(),
        ep(
            "delete",
            "/resourcemanager/v1/folders/{id}",
            "Delete an empty folder",
            Operator,
            delete(folders::delete),
        ),
        ep(
            "get",
            "/audit/v1/events",
            "The audit trail, newest first: mutations and refused authentications and authorizations (never a request body)",
            FolderAdmin,
            get(crate::audit::list),
        )
        .query::<crate::audit::AuditQuery>()
        .list::<cic_model::iam::AuditEvent>("events"),
        ep(
            "get",
            "/iam/v1/apiKeys",
            "List API keys (never their secrets)",
            Operator,
            get(folders::list_keys),
        )
        .query::<folders::KeyQuery>()
        .list::<ApiKey>("apiKeys"),
        ep(
            "post",
            "/iam/v1/apiKeys",
            "Issue an API key for a subject; the secret is shown once",
            Operator,
            post(folders::create_key),
        )
        .body::<CreateApiKeyRequest>()
        .returns::<CreateApiKeyResponse>(),
        ep(
            "delete",
            "/iam/v1/apiKeys/{id}",
            "Revoke an API key at once",
            Operator,
            delete(folders::delete_key),
        )
        .empty(),
    ]
}

/// The body of a BatchGet of trunks.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct BatchGetTrunks {
    trunk_connection_ids: Vec<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct BatchGetConnections {
    private_connection_ids: Vec<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct BatchGetRoutingInstances {
    routing_instance_ids: Vec<String>,
}

/// The router: every endpoint that has a handler, methods of one path merged; another
/// method on a path is a 405 that names the ones it takes.
pub fn router() -> Router<Arc<AppState>> {
    let mut paths: BTreeMap<&'static str, MethodRouter<Arc<AppState>>> = BTreeMap::new();
    let mut allowed: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for e in endpoints() {
        if e.route.is_some() {
            allowed
                .entry(e.path)
                .or_default()
                .push(e.method.to_uppercase());
        }
        if let Some(r) = e.route {
            let merged = match paths.remove(e.path) {
                Some(m) => m.merge(r),
                None => r,
            };
            paths.insert(e.path, merged);
        }
    }
    paths.into_iter().fold(Router::new(), |router, (path, mr)| {
        let allow = allowed.remove(path).unwrap_or_default().join(", ");
        let mr = mr.fallback(move |method: axum::http::Method| {
            let allow = allow.clone();
            async move {
                (
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    [(axum::http::header::ALLOW, allow.clone())],
                    axum::Json(ApiError::new(
                        cic_model::Code::Unimplemented,
                        format!("{method} is not a method of {path}; it takes {allow}"),
                    )),
                )
            }
        });
        router.route(path, mr)
    })
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(name, _)| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect()
}

fn query_params(schema: &Schema) -> Vec<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| {
                    let mut p = json!({"name": name, "in": "query",
                        "required": required.contains(&name.as_str()), "schema": s});
                    if let Some(d) = s.get("description") {
                        p["description"] = d.clone();
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How every PATCH reads its body (`super::patch`), as the document tells clients.
const PATCH_RULES: &str = "\n\nWithout `updateMask`, the fields present change and the others stay; a nested \
object such as `ipv4Peering` is merged field by field (lists and `labels` are replaced whole). \
With `updateMask` (field paths separated by commas, e.g. `description,ipv4Peering.peerBgpAsn`), \
only the named fields change: others in the body are ignored, a named field the body leaves out \
is cleared (or refused when it cannot be empty), and an unknown path is a 400. A secret sent back \
as the mask it is shown as (`********`) is unchanged; `null` or `\"\"` removes it. Output-only \
fields are ignored and fields fixed at creation must hold their current value, so a resource \
read with GET may be sent back as it is.";

/// A name for an operation that client generators turn into a function name:
/// `patch /cic/v1/privateConnections/{id}` → `patch_cic_v1_private_connections_id`.
fn operation_id(method: &str, path: &str) -> String {
    let mut out = String::from(method);
    let mut last_sep = false;
    out.push('_');
    for c in path.trim_start_matches('/').chars() {
        if c.is_ascii_uppercase() {
            if !last_sep {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            last_sep = false;
        } else if !last_sep {
            out.push('_');
            last_sep = true;
        }
    }
    out.trim_end_matches('_').to_string()
}

/// The OpenAPI 3.1 document of [`endpoints`]: schemas are JSON Schema 2020-12, as
/// OpenAPI 3.1 has them (a nullable field is `"type": ["string", "null"]`).
pub fn openapi() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    // `true` (any JSON) as `{}`: the same schema, in the form client generators read.
    settings
        .transforms
        .push(Box::new(schemars::transform::ReplaceBoolSchemas::default()));
    let mut g = settings.into_generator();
    let error = g.subschema_for::<ApiError>();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for e in endpoints() {
        if e.route.is_some() && e.path.ends_with('}') && e.method == "post" {
            // The dispatcher of `:method` paths; documented through them.
            if endpoints()
                .iter()
                .any(|m| m.route.is_none() && m.path.starts_with(&format!("{}:", e.path)))
            {
                continue;
            }
        }
        let mut params = path_params(e.path);
        if let Some(q) = e.query {
            params.extend(query_params(&q(&mut g)));
        }
        let mutation = matches!(e.method, "post" | "patch" | "delete")
            && !matches!(e.caller, Caller::Edge | Caller::Anyone)
            && !e.path.ends_with(":batchGet");
        if mutation {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "A retried request with the same key returns the first request's result.",
                "schema": {"type": "string", "maxLength": 128}}));
        }
        let ok = match e.response {
            Response::One(f) => {
                json!({"description": "OK", "content": {"application/json": {"schema": f(&mut g)}}})
            }
            Response::List(key, f) => {
                json!({"description": "OK", "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {key: {"type": "array", "items": f(&mut g)}, "nextPageToken": {"type": "string"}},
                }}}})
            }
            Response::Empty => {
                json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}})
            }
            Response::Text => {
                json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}})
            }
        };
        let op_id = operation_id(e.method, e.path);
        let mut description = format!("Caller: {}", e.caller.describe());
        if e.method == "patch" {
            description.push_str(PATCH_RULES);
        }
        let mut op = json!({
            "operationId": op_id,
            "summary": e.summary,
            "description": description,
            "parameters": params,
            "responses": {
                "200": ok,
                "default": {"description": "An error: {code, message, details}",
                            "content": {"application/json": {"schema": error.clone()}}},
            },
        });
        if let Some(b) = e.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b(&mut g)}}});
        }
        if e.caller == Caller::Anyone {
            op["security"] = json!([]);
        }
        paths
            .entry(e.path)
            .or_default()
            .insert(e.method.to_string(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cic API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cloud Interconnect: trunks, private connections, routing instances, \
                            operations, folders and roles. Paths and JSON as the modelled service's.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}
