//! The OPEN exchange: the OPEN we send, the peer's checked against our config (RFC 4271
//! §6.2, the capabilities' RFCs), what both sides agreed on, and why a refused OPEN was
//! refused.

use super::*;

/// What both sides agreed on in the OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_id: Ipv4Addr,
    pub hold_time: u16,
    pub keepalive: u16,
    pub route_refresh: bool,
    /// Both sides announced RFC 7313: a re-advertisement is framed by BoRR and EoRR.
    pub enhanced_route_refresh: bool,
    /// Both sides announced RFC 8654: messages other than OPEN and KEEPALIVE may be up to
    /// 65,535 octets, both ways.
    pub extended_message: bool,
    /// Our role on the session (RFC 9234; the peer's, if it announced one, agreed): it
    /// decides the ONLY_TO_CUSTOMER procedures.
    pub local_role: Option<BgpRole>,
    pub ibgp: bool,
    /// The peer's Graceful Restart capability, when both sides announced one.
    pub graceful_restart: Option<GracefulRestart>,
    /// The address families both sides announced (at least one).
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Negotiated {
    /// Whether routes of `afi` are exchanged on this session.
    pub fn carries(&self, afi: Afi) -> bool {
        match afi {
            Afi::Ipv4 => self.ipv4,
            Afi::Ipv6 => self.ipv6,
        }
    }

    pub fn families(&self) -> impl Iterator<Item = Afi> + '_ {
        Afi::BOTH.into_iter().filter(|a| self.carries(*a))
    }
}

impl Session {
    /// The families we announce.
    pub(super) fn families(&self) -> impl Iterator<Item = Afi> + '_ {
        Afi::BOTH.into_iter().filter(|a| match a {
            Afi::Ipv4 => self.cfg.ipv4,
            Afi::Ipv6 => self.cfg.ipv6,
        })
    }

    pub(super) fn open(&self) -> Open {
        let families: Vec<Afi> = self.families().collect();
        let mut o = Open::for_families(
            self.cfg.local_asn,
            self.cfg.hold_time,
            self.cfg.router_id,
            &families,
        );
        if let Some(r) = self.cfg.role {
            o.capabilities.push(Capability::Role(r.role.code()));
        }
        if let Some(g) = self.cfg.graceful_restart {
            o.capabilities
                .push(Capability::GracefulRestart(GracefulRestart {
                    restarting: g.restarting,
                    // RFC 8538: a NOTIFICATION other than a Hard Reset is a graceful
                    // restart too.
                    notification: true,
                    restart_time: g.restart_time.min(0x0fff),
                    families: families
                        .iter()
                        .map(|afi| GrFamily {
                            afi: afi.code(),
                            safi: Afi::SAFI_UNICAST,
                            forwarding: g.restarting,
                        })
                        .collect(),
                }));
        }
        o
    }

    /// Why we refused `o` with `n`, as a fact.
    pub(super) fn refusal(&self, o: &Open, n: &Notification) -> SessionFailure {
        match (n.code, n.subcode) {
            (error_code::OPEN, open_err::BAD_PEER_AS) => SessionFailure::WrongAsn {
                received: o.four_octet_as().unwrap_or(o.my_as as u32),
                expected: self.cfg.peer_asn,
            },
            (error_code::OPEN, open_err::UNACCEPTABLE_HOLD_TIME) => {
                SessionFailure::HoldTimeRefused {
                    offered: o.hold_time,
                    minimum: self.cfg.min_hold_time.max(3),
                }
            }
            (error_code::OPEN, open_err::ROLE_MISMATCH) => SessionFailure::RoleMismatch {
                expected: self
                    .cfg
                    .role
                    .map(|r| r.role.counterpart().name())
                    .unwrap_or("none")
                    .to_string(),
                received: o.capabilities.iter().find_map(|c| match c {
                    Capability::Role(x) => Some(
                        crate::wire::BgpRole::from_code(*x)
                            .map(|r| r.name().to_string())
                            .unwrap_or_else(|| format!("role {x}")),
                    ),
                    _ => None,
                }),
            },
            _ => SessionFailure::OpenRefused {
                notification: n.describe(),
            },
        }
    }

    /// RFC 4271 §6.2 checks, plus what cic requires of a peer (4-octet AS, IPv4 unicast).
    pub(super) fn check_open(&self, o: &Open) -> Result<Negotiated, Notification> {
        let Some(peer_asn) = o.four_octet_as() else {
            // RFC 5492 §3: the data lists the capability we need and did not get.
            let mut n = Notification::new(error_code::OPEN, open_err::UNSUPPORTED_CAPABILITY);
            n.data = vec![65, 4];
            n.data.extend_from_slice(&self.cfg.local_asn.to_be_bytes());
            return Err(n);
        };
        if peer_asn != self.cfg.peer_asn {
            let mut n = Notification::new(error_code::OPEN, open_err::BAD_PEER_AS);
            n.data = o.my_as.to_be_bytes().to_vec();
            return Err(n);
        }
        if o.hold_time == 1 || o.hold_time == 2 || o.hold_time < self.cfg.min_hold_time {
            return Err(Notification::new(
                error_code::OPEN,
                open_err::UNACCEPTABLE_HOLD_TIME,
            ));
        }
        let id = o.bgp_id;
        let ibgp = peer_asn == self.cfg.local_asn;
        if id.is_unspecified()
            || id.is_multicast()
            || id.is_broadcast()
            || (ibgp && id == self.cfg.router_id)
        {
            return Err(Notification::new(error_code::OPEN, open_err::BAD_BGP_ID));
        }
        let ipv4 = self.cfg.ipv4 && o.supports_ipv4_unicast();
        let ipv6 = self.cfg.ipv6
            && o.has(&Capability::Multiprotocol {
                afi: Afi::Ipv6.code(),
                safi: Afi::SAFI_UNICAST,
            });
        if !ipv4 && !ipv6 {
            // RFC 5492 §3: the capabilities we wanted, none of which the peer has.
            let mut n = Notification::new(error_code::OPEN, open_err::UNSUPPORTED_CAPABILITY);
            for afi in self.families() {
                n.data.extend_from_slice(&[1, 4]);
                n.data.extend_from_slice(&afi.code().to_be_bytes());
                n.data.extend_from_slice(&[0, Afi::SAFI_UNICAST]);
            }
            return Err(n);
        }
        if let Some(r) = self.cfg.role {
            // RFC 9234 §4.2: the peer's role must be ours' counterpart (and said once);
            // strict mode wants one.
            let mut theirs = o.capabilities.iter().filter_map(|c| match c {
                Capability::Role(x) => Some(*x),
                _ => None,
            });
            let first = theirs.next();
            let agreed = match first {
                Some(x) => x == r.role.counterpart().code() && theirs.all(|y| y == x),
                None => !r.strict,
            };
            if !agreed {
                return Err(Notification::new(error_code::OPEN, open_err::ROLE_MISMATCH));
            }
        }
        let hold_time = self.cfg.hold_time.min(o.hold_time);
        Ok(Negotiated {
            peer_asn,
            peer_id: id,
            hold_time,
            keepalive: hold_time / 3,
            route_refresh: o.has(&Capability::RouteRefresh),
            // (We always announce it.)
            enhanced_route_refresh: o.has(&Capability::EnhancedRouteRefresh),
            extended_message: o.has(&Capability::ExtendedMessage),
            local_role: self.cfg.role.map(|r| r.role),
            ibgp,
            graceful_restart: self.cfg.graceful_restart.and(o.graceful_restart().cloned()),
            ipv4,
            ipv6,
        })
    }
}
