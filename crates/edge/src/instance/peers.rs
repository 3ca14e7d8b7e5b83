//! What an instance's speaker is given: its parameters, and each peer's session (a
//! customer's connection, the fabric's segment) from the edge's config.

use std::net::IpAddr;
use std::time::Duration;

use cic_bgp::driver::PeerConfig;
use cic_bgp::fsm::{GrConfig, RoleConfig, SessionConfig};
use cic_bgp::instance::{InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::Role;
use cic_model::edge::{
    BgpRoleMode, BgpSettings, ConnectionConfig, EdgeConfig, Family, InstanceConfig, PeeringConfig,
};

/// What the sessions announce: the restart time; the speaker sets the R and F bits while
/// it is restarting.
pub(super) fn graceful_restart(bgp: &BgpSettings) -> Option<GrConfig> {
    (bgp.graceful_restart_secs > 0).then_some(GrConfig {
        restart_time: bgp.graceful_restart_secs,
        restarting: false,
    })
}

pub(super) fn params(
    bgp: &BgpSettings,
    local_asn: u32,
    ic: &InstanceConfig,
    restarting: bool,
) -> InstanceParams {
    use cic_model::edge::MaxPrefixAction as M;
    InstanceParams {
        local_asn,
        vpc_prefixes: ic.vpc_prefixes.clone(),
        announce: ic.announce.clone(),
        accept_only: ic.accept_only.clone(),
        max_prefixes: bgp.max_prefixes,
        max_prefix_action: match bgp.max_prefix_action {
            M::Teardown => MaxPrefixAction::Teardown,
            M::Discard => MaxPrefixAction::Discard,
            M::Warn => MaxPrefixAction::Warn,
        },
        max_prefix_idle: Duration::from_secs(bgp.max_prefix_idle_secs as u64),
        max_prefix_warning: bgp.max_prefix_warning_percent,
        restarting,
        kernel: true,
        // A public connection's instance (it accepts only registered prefixes) refuses
        // RPKI invalids; private ones where the operator says.
        rpki_reject_invalid: !bgp.rpki_caches.is_empty()
            && (ic.accept_only.is_some() || bgp.rpki_reject_invalid_private),
    }
}

/// A session of one family over its own addresses: IPv4 unicast over IPv4, IPv6 unicast
/// over IPv6 (as the clouds run them).
pub(super) fn session(
    cfg: &EdgeConfig,
    peer_asn: u32,
    min_hold_time: u16,
    family: Family,
) -> SessionConfig {
    SessionConfig {
        local_asn: cfg.local_asn,
        router_id: cfg.router_id,
        peer_asn,
        hold_time: cfg.bgp.hold_time_secs,
        min_hold_time,
        connect_retry: Duration::from_secs(cfg.bgp.connect_retry_secs as u64),
        passive: false,
        graceful_restart: graceful_restart(&cfg.bgp),
        ipv4: family == Family::Ipv4,
        ipv6: family == Family::Ipv6,
        role: None,
        damping: (cfg.bgp.flap_damping_max_secs > 0)
            .then(|| Duration::from_secs(cfg.bgp.flap_damping_max_secs.into())),
    }
}

/// The cloud is its customers' provider (RFC 9234).
pub(super) fn customer_role(mode: BgpRoleMode) -> Option<RoleConfig> {
    let role = |strict| {
        Some(RoleConfig {
            role: cic_bgp::wire::BgpRole::Provider,
            strict,
        })
    };
    match mode {
        BgpRoleMode::Off => None,
        BgpRoleMode::Announce => role(false),
        BgpRoleMode::Strict => role(true),
    }
}

pub(super) fn customer_peer(
    cfg: &EdgeConfig,
    c: &ConnectionConfig,
    p: &PeeringConfig,
) -> PeerConfig {
    PeerConfig {
        spec: PeerSpec {
            name: c.id.clone(),
            role: Role::Customer,
            address: p.peer_ip,
            local_address: p.cloud_ip,
            local_address6: None,
            asn: p.peer_asn,
            policy: None,
        },
        session: SessionConfig {
            role: customer_role(c.bgp_role),
            ..session(cfg, p.peer_asn, cfg.bgp.min_hold_time_secs, p.family())
        },
        md5_key: p.md5_key.as_ref().map(|k| k.expose().to_string()),
        ttl_security: c.ttl_security,
        send_hold_time: None,
        port: cic_bgp::driver::BGP_PORT,
    }
}

pub(super) fn fabric_peer(
    cfg: &EdgeConfig,
    ic: &InstanceConfig,
    address: IpAddr,
    local_address: IpAddr,
    asn: u32,
) -> PeerConfig {
    PeerConfig {
        spec: PeerSpec {
            name: ic.id.clone(),
            role: Role::Fabric,
            address,
            local_address,
            local_address6: None,
            asn,
            policy: None,
        },
        session: session(cfg, asn, 0, Family::of(address)),
        md5_key: None,
        ttl_security: false,
        send_hold_time: None,
        port: cic_bgp::driver::BGP_PORT,
    }
}
