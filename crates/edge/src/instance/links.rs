//! An instance's links: the connections' interfaces and the fabric segment, each made in
//! the instance's namespace from a spec whose fingerprint (in the link's alias) says when
//! a change needs a new device, with the neighbor probing a new segment needs.

use cic_dataplane::{LinkKind, LinkSpec, Netlink};

use cic_model::edge::{Attachment, ConnectionConfig, InstanceConfig, ResourceError, TrunkConfig};
use ipnet::{IpNet, Ipv4Net};
use tracing::{info, warn};

use super::{FABRIC_IF, Instance, err, ifname};
use crate::failure::Failure;

/// FNV-1a of the parts of a link that need a new device when they change.
pub(super) fn fingerprint(kind: &LinkKind, mtu: u32) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{kind:?}/{mtu}").bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A link this instance wants, with its address.
#[derive(Debug, Clone)]
pub(super) struct WantedLink {
    pub(super) owner: String,
    pub(super) spec: LinkSpec,
    /// One per family the link carries.
    pub(super) addresses: Vec<IpNet>,
}

/// The links `ic` wants: each connection's on its trunk (a connection whose trunk is
/// not here, or failed, is an error instead), and the fabric segment.
pub(super) fn wanted_links(
    ic: &InstanceConfig,
    trunks: &crate::Trunks,
    errors: &mut Vec<ResourceError>,
) -> Vec<WantedLink> {
    let mut wanted: Vec<WantedLink> = Vec::new();
    for c in &ic.connections {
        match trunks.get(&c.trunk_id) {
            Some((t, None)) => wanted.push(connection_link(c, t)),
            // A trunk's failure that may pass (its port not known while the kernel
            // does not answer) is one for its connections too.
            Some((_, Some(why))) => errors.push(
                why.clone()
                    .within(&format!("trunk {}", c.trunk_id))
                    .of(&c.id),
            ),
            None => errors.push(err(
                &c.id,
                format!("trunk {} is not on this edge", c.trunk_id),
            )),
        }
    }
    if let Some(f) = &ic.fabric {
        let kind = LinkKind::Vxlan {
            vni: f.vni,
            remote: f.remote_vtep,
            port: f.udp_port,
            underlay_dev: f.port_name.clone(),
        };
        let mtu = 9000;
        wanted.push(WantedLink {
            owner: ic.id.clone(),
            spec: LinkSpec {
                name: FABRIC_IF.into(),
                alias: format!("fabric:{} {}", ic.id, fingerprint(&kind, mtu)),
                kind,
                mtu,
            },
            addresses: std::iter::once(IpNet::V4(
                Ipv4Net::new(f.edge_ip, f.subnet.prefix_len()).unwrap_or(f.subnet),
            ))
            .chain(f.ipv6.map(|v6| {
                IpNet::V6(
                    ipnet::Ipv6Net::new(v6.edge_ip, v6.subnet.prefix_len()).unwrap_or(v6.subnet),
                )
            }))
            .collect(),
        });
    }
    wanted
}

impl Instance {
    /// Makes the namespace's links exactly `wanted` (recreating any whose spec changed);
    /// drops from `wanted` what could not be made and returns why. Fails, changing
    /// nothing, when the namespace's links cannot be read.
    pub(super) async fn reconcile_links(
        &self,
        underlay: &Netlink,
        wanted: &mut Vec<WantedLink>,
    ) -> Result<Vec<ResourceError>, Failure> {
        let mut errors = Vec::new();
        let mut changed = false;
        let have = self.nl.links().await?;
        for l in have.iter().filter(|l| l.name != "lo") {
            let keep = wanted.iter().any(|w| {
                w.spec.name == l.name && l.alias.as_deref() == Some(w.spec.alias.as_str())
            });
            if !keep {
                info!(netns = %self.ns, link = %l.name, "removing link");
                match self.nl.del_link(l.index).await {
                    Ok(()) => changed = true,
                    Err(e) => warn!("{e}"),
                }
            }
        }
        let mut ok = Vec::new();
        for w in wanted.drain(..) {
            match self.ensure_link(underlay, &w, &have).await {
                Ok(made) => {
                    changed |= made;
                    ok.push(w);
                }
                Err(e) => {
                    warn!(netns = %self.ns, link = %w.spec.name, "{e}");
                    errors.push(err(&w.owner, e));
                }
            }
        }
        if changed {
            self.resync.notify_one();
        }
        *wanted = ok;
        Ok(errors)
    }

    /// Makes `w` as wanted; whether it made or changed anything (a link, an address).
    async fn ensure_link(
        &self,
        underlay: &Netlink,
        w: &WantedLink,
        have: &[cic_dataplane::Link],
    ) -> Result<bool, Failure> {
        let existing = have
            .iter()
            .find(|l| l.name == w.spec.name && l.alias.as_deref() == Some(w.spec.alias.as_str()));
        let index = match existing {
            Some(l) => l.index,
            None => {
                let mut spec = w.spec.clone();
                // A VXLAN device cannot be larger than its underlay port allows (50 bytes
                // of encapsulation); say so instead of failing on it.
                if let LinkKind::Vxlan {
                    underlay_dev: Some(dev),
                    ..
                } = &spec.kind
                    && let Ok(Some(port)) = underlay.link(dev).await
                    && port.mtu.saturating_sub(50) < spec.mtu
                {
                    warn!(link = %spec.name, port = %dev, "MTU {} clamped to {} by the underlay port", spec.mtu, port.mtu - 50);
                    spec.mtu = port.mtu.saturating_sub(50);
                }
                info!(netns = %self.ns, link = %spec.name, kind = ?spec.kind, "creating link");
                let index = underlay.create_link_in(&spec, &self.nl).await?;
                // A new segment's far end may still be being built: when the first
                // neighbor request is lost, ask again after 100 ms rather than a second,
                // for as long as the default would (30 tries, 3 s). The same for IPv6
                // neighbor discovery. By netlink on the instance's own connection (the
                // sysctls took a thread entering the namespace and four path walks).
                self.nl
                    .set_neighbor_probes(index, std::time::Duration::from_millis(100), 30)
                    .await?;
                index
            }
        };
        // A link made, or brought up again (the kernel dropped the routes through it
        // when it went down), is a change.
        let mut changed = existing.is_none_or(|l| !l.up);
        let addrs = self.nl.addresses(index).await?;
        for a in addrs.iter().filter(|a| !w.addresses.contains(a)) {
            changed = true;
            self.nl.del_address(index, *a).await?;
        }
        for a in w.addresses.iter().filter(|a| !addrs.contains(a)) {
            changed = true;
            self.nl.add_address(index, *a).await?;
        }
        self.nl.set_up(index, None).await?;
        Ok(changed)
    }
}

pub(super) fn connection_link(c: &ConnectionConfig, t: &TrunkConfig) -> WantedLink {
    let kind = match &t.attachment {
        Attachment::Vxlan {
            remote_vtep,
            port,
            udp_port,
        } => LinkKind::Vxlan {
            vni: c.vlan_id as u32,
            remote: *remote_vtep,
            port: *udp_port,
            underlay_dev: port.clone(),
        },
        Attachment::Vlan { port } => LinkKind::Vlan {
            parent: port.clone(),
            vlan: c.vlan_id,
        },
        Attachment::Lag { bond, .. } => LinkKind::Vlan {
            parent: bond.clone(),
            vlan: c.vlan_id,
        },
    };
    WantedLink {
        owner: c.id.clone(),
        spec: LinkSpec {
            name: ifname(&c.id),
            alias: format!("{} {}", c.id, fingerprint(&kind, c.mtu)),
            kind,
            mtu: c.mtu,
        },
        addresses: c.peerings.iter().map(|p| p.cloud_address()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_connection_on_a_trunk_not_carried_fails_as_the_trunk_does() {
        let conn = |id: &str, trunk: &str| ConnectionConfig {
            id: id.into(),
            trunk_id: trunk.into(),
            vlan_id: 100,
            mtu: 1500,
            peerings: vec![],
            hold_down_until: None,
            reset_seq: 0,
            ttl_security: false,
            bgp_role: Default::default(),
            bfd: None,
        };
        let mut ic = crate::testing::instance("ri1", &[]);
        ic.connections = vec![conn("c1", "t1"), conn("c2", "t2"), conn("c3", "t3")];
        let trunk = |id: &str| TrunkConfig {
            id: id.into(),
            capacity_mbps: 1000,
            attachment: Attachment::Vlan {
                port: "eth9".into(),
            },
        };
        let gone = "port eth9 does not exist on this edge";
        let trunks: crate::Trunks = [
            ("t1".to_string(), (trunk("t1"), Some(Failure::from(gone)))),
            (
                "t2".to_string(),
                (
                    trunk("t2"),
                    Some(Failure {
                        message: gone.into(),
                        transient: true,
                    }),
                ),
            ),
        ]
        .into();
        let mut errors = vec![];
        assert!(wanted_links(&ic, &trunks, &mut errors).is_empty());
        let of = |id: &str| errors.iter().find(|e| e.resource_id == id).unwrap();
        assert_eq!(of("c1").message, format!("trunk t1: {gone}"));
        assert!(!of("c1").transient, "a trunk that cannot be carried: final");
        assert!(
            of("c2").transient,
            "the trunk's last known problem, kept: may pass"
        );
        assert_eq!(of("c3").message, "trunk t3 is not on this edge");
        assert!(!of("c3").transient);
    }

    #[test]
    fn fingerprint_changes_with_what_needs_a_new_device() {
        let k = |vni| LinkKind::Vxlan {
            vni,
            remote: Ipv4Addr::new(10, 0, 0, 1),
            port: 4789,
            underlay_dev: None,
        };
        assert_eq!(fingerprint(&k(100), 8910), fingerprint(&k(100), 8910));
        assert_ne!(fingerprint(&k(100), 8910), fingerprint(&k(101), 8910));
        assert_ne!(fingerprint(&k(100), 8910), fingerprint(&k(100), 1500));
    }
}
