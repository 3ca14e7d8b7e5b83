"""Proves docs/openapi.json usable by a maintained client generator.

`scripts/check-openapi` validates the document (openapi-spec-validator), generates a Python
client from it (openapi-python-client) and runs this script with that client against a
running `cic server`: the operator's catalogue, then a customer's trunk and private
connection created, listed, read, changed and deleted — every call through the generated
functions and models, none by hand.

Usage: python check.py CLIENT_DIR BASE_URL ADMIN_TOKEN
"""

import sys
sys.path.insert(0, sys.argv[1])
base_url, token = sys.argv[2], sys.argv[3]

from cic_client import AuthenticatedClient  # noqa: E402
from cic_client.types import Unset  # noqa: E402
from cic_client.api.default import (  # noqa: E402
    delete_cic_v1_private_connections_id as delete_pc,
    delete_cic_v1_trunk_connections_id as delete_trunk,
    get_cic_v1_private_connections as list_pcs,
    get_cic_v1_private_connections_id as get_pc,
    get_cic_v1_edge_sync_config as edge_config,
    get_operations_id as get_op,
    put_cic_v1_edge_sync_status as edge_status,
    patch_cic_v1_private_connections_id as patch_pc,
    post_cic_v1_edges as create_edge,
    post_cic_v1_point_of_presences as create_pop,
    post_cic_v1_private_connections as create_pc,
    post_cic_v1_trunk_connections as create_trunk,
    post_resourcemanager_v1_folders as create_folder,
)
from cic_client.models import (  # noqa: E402
    ApiError,
    Capacity,
    CreateEdgeRequest,
    CreateFolderRequest,
    CreatePrivateConnectionRequest,
    CreateTrunkConnectionRequest,
    EdgeReport,
    FabricSettings,
    Ipv4PeeringPatch,
    Ipv4PeeringSpec,
    Operation,
    OverlayJoint,
    PointOfPresence,
    UpdatePrivateConnectionRequest,
)

client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def ok(resp, what):
    parsed = resp.parsed
    if resp.status_code != 200 or isinstance(parsed, ApiError):
        raise SystemExit(f"{what}: HTTP {resp.status_code}: {resp.content!r}")
    return parsed


def done(op: Operation, what):
    """The operation of a mutation; those with no edge to wait for are done at once."""
    if not isinstance(op, Operation):
        raise SystemExit(f"{what}: not an operation: {op!r}")
    return op


ok(create_folder.sync_detailed(client=client, body=CreateFolderRequest(id="gen", name="generated")), "folder")
ok(create_pop.sync_detailed(client=client, body=PointOfPresence(id="pop-gen", name="pop-gen")), "PoP")
edge = ok(
    create_edge.sync_detailed(
        client=client,
        body=CreateEdgeRequest(
            name="edge-gen",
            point_of_presence_id="pop-gen",
            router_id="10.255.0.1",
            fabric=FabricSettings(
                asn=200350,
                remote_vtep="100.64.255.2",
                local_vtep="100.64.255.1",
                transit_pool="100.127.0.0/24",
            ),
        ),
    ),
    "edge",
)
op = done(
    ok(
        create_trunk.sync_detailed(
            client=client,
            body=CreateTrunkConnectionRequest(
                folder_id="gen",
                point_of_presence_id="pop-gen",
                capacity=Capacity.CAPACITY_1_GBPS,
                name="trunk-gen",
                overlay_joint=OverlayJoint(remote_vtep="100.64.1.2"),
            ),
        ),
        "create trunk",
    ),
    "create trunk",
)
trunk_id = op.metadata["resourceId"]
op = done(
    ok(
        create_pc.sync_detailed(
            client=client,
            body=CreatePrivateConnectionRequest(
                folder_id="gen",
                trunk_connection_id=trunk_id,
                vlan_id="100",
                name="pc-gen",
                ipv_4_peering=Ipv4PeeringSpec(
                    peering_subnet="169.254.100.0/30",
                    peer_ip="169.254.100.2",
                    cloud_ip="169.254.100.1",
                    peer_bgp_asn="65001",
                    peer_bgp_md_5_key="a-key-for-the-generated-client",
                ),
            ),
        ),
        "create private connection",
    ),
    "create private connection",
)
pc_id = op.metadata["resourceId"]
page = ok(list_pcs.sync_detailed(client=client, folder_id="gen", page_size=10), "list")
listed = [c.id for c in page.private_connections]
assert listed == [pc_id], listed
pc = ok(get_pc.sync_detailed(pc_id, client=client), "get")
assert (pc.name, pc.vlan_id, pc.ipv_4_peering.peer_ip) == ("pc-gen", "100", "169.254.100.2"), pc
# Masked for the operator (no secretViewer role), and sent back masked: unchanged.
assert pc.ipv_4_peering.peer_bgp_md_5_key == "********", pc.ipv4_peering
ok(
    patch_pc.sync_detailed(
        pc_id,
        client=client,
        body=UpdatePrivateConnectionRequest(
            description="changed by the generated client",
            ipv_4_peering=Ipv4PeeringPatch(peer_bgp_asn="65010", peer_bgp_md_5_key="********"),
        ),
    ),
    "patch",
)
pc = ok(get_pc.sync_detailed(pc_id, client=client), "get after patch")
assert (pc.description, pc.ipv_4_peering.peer_bgp_asn) == ("changed by the generated client", "65010"), pc
assert pc.ipv_4_peering.peer_bgp_md_5_key == "********", pc.ipv4_peering
# A refusal comes back as the API's error model.
bad = create_pc.sync_detailed(
    client=client,
    body=CreatePrivateConnectionRequest(
        folder_id="gen",
        trunk_connection_id=trunk_id,
        vlan_id="4095",
        ipv_4_peering=Ipv4PeeringSpec(
            peering_subnet="169.254.101.0/30", peer_ip="169.254.101.2", cloud_ip="169.254.101.1", peer_bgp_asn="65001"
        ),
    ),
)
assert bad.status_code == 400 and isinstance(bad.parsed, ApiError), bad
assert bad.parsed.details[0].field == "vlanId", bad.parsed
# The edge's side, through the same client: it applies each revision and says so.
edge_client = AuthenticatedClient(base_url=base_url, token=edge.token, raise_on_unexpected_status=True)


def edge_applies():
    cfg = ok(edge_config.sync_detailed(client=edge_client), "edge config")
    report = EdgeReport(applied_revision=cfg.revision, dataplane="none", sessions=[], errors=[])
    ok(edge_status.sync_detailed(client=edge_client, body=report), "edge report")


op = done(ok(delete_pc.sync_detailed(pc_id, client=client), "delete connection"), "delete connection")
assert not op.done
edge_applies()
op = ok(get_op.sync_detailed(op.id, client=client), "operation")
assert op.done and isinstance(op.error, Unset), op
assert get_pc.sync_detailed(pc_id, client=client).status_code == 404
op = done(ok(delete_trunk.sync_detailed(trunk_id, client=client), "delete trunk"), "delete trunk")
edge_applies()
assert ok(get_op.sync_detailed(op.id, client=client), "operation").done
assert ok(list_pcs.sync_detailed(client=client, folder_id="gen"), "list").private_connections == []
print(f"generated client: edge {edge.edge.id}, trunk {trunk_id}, connection {pc_id}: create, list, get, patch, delete OK")
