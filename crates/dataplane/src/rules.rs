//! Source validation by policy routing: on an interface, packets from the allowed
//! prefixes are routed by the main table and every other packet is dropped. This kernel
//! has no tc classifiers, and nftables is not something every edge has; fib rules are in
//! every kernel, work for both families alike (IPv6 has no `rp_filter`), and are exact:
//! the allowed prefixes, not whatever the routing table happens to hold.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::netlink::{Netlink, PROTO_BGP};
use crate::rtnl::{ACK, CREATE, DUMP};
use crate::{Error, Result};

/// The first priority of the rules cic makes: before the `main` table's rule (32766),
/// after the `local` table's (0) — packets to the edge's own addresses (BGP, BFD) are
/// delivered whatever their source; only forwarding is validated.
pub const FIRST_PRIORITY: u32 = 1000;
/// The routing table an allowed source is looked up in.
const MAIN: u32 = 254;

/// One rule as cic makes it: on `iif`, packets from `from` (any source when `None`) to
/// `to` (anywhere when `None`) go to the main table (`allow`) or to the blackhole.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceRule {
    pub priority: u32,
    pub iif: String,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub allow: bool,
}

impl SourceRule {
    /// The family it is of (`None`: a rule for both, made once per family).
    fn v6(&self) -> Option<bool> {
        self.from.or(self.to).map(|p| matches!(p, IpNet::V6(_)))
    }
}

/// The rules that let only `allowed` sources in on `iif`, and none of them toward
/// `denied` (addresses of the edge's side that the customer has no business with): a
/// blackhole per denied destination, a rule per allowed prefix, then a blackhole for
/// the rest, of both families. `index` keeps several interfaces' rules apart (each gets a
/// block of 1000 priorities: 100 for denied destinations, 899 for allowed sources).
pub fn wanted(iif: &str, index: u32, allowed: &[IpNet], denied: &[IpNet]) -> Vec<SourceRule> {
    let base = FIRST_PRIORITY + index * 1000;
    let rule = |priority: u32, from: Option<IpNet>, to: Option<IpNet>, allow: bool| SourceRule {
        priority,
        iif: iif.to_string(),
        from,
        to,
        allow,
    };
    let mut out: Vec<SourceRule> = denied
        .iter()
        .take(100)
        .enumerate()
        .map(|(i, d)| rule(base + i as u32, None, Some(d.trunc()), false))
        .collect();
    out.extend(
        allowed
            .iter()
            .take(899)
            .enumerate()
            .map(|(i, p)| rule(base + 100 + i as u32, Some(p.trunc()), None, true)),
    );
    out.push(rule(base + 999, None, None, false));
    out
}

impl Netlink {
    /// The rules cic made in this namespace (marked with its routing protocol number),
    /// with the family each is of.
    pub async fn source_rules(&self) -> Result<Vec<(bool, SourceRule)>> {
        let mut out = Vec::new();
        for (v6, family) in [(false, AddressFamily::Inet), (true, AddressFamily::Inet6)] {
            let _one = self.one_dump().await;
            let mut ask = RuleMessage::default();
            ask.header.family = family;
            let msgs: Vec<RuleMessage> = self
                .rtnl()
                .objects(RouteNetlinkMessage::GetRule(ask), DUMP)
                .await
                .map_err(self.ctx("list rules"))?
                .into_iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewRule(r) => Some(r),
                    _ => None,
                })
                .collect();
            for m in msgs {
                if !m
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RuleAttribute::Protocol(p) if u8::from(*p) == PROTO_BGP))
                {
                    continue;
                }
                let mut r = SourceRule {
                    priority: 0,
                    iif: String::new(),
                    from: None,
                    to: None,
                    allow: m.header.action == RuleAction::ToTable,
                };
                for a in &m.attributes {
                    match a {
                        RuleAttribute::Priority(p) => r.priority = *p,
                        RuleAttribute::Iifname(n) => r.iif = n.clone(),
                        RuleAttribute::Source(s) => {
                            r.from = IpNet::new(*s, m.header.src_len).ok();
                        }
                        RuleAttribute::Destination(d) => {
                            r.to = IpNet::new(*d, m.header.dst_len).ok();
                        }
                        _ => {}
                    }
                }
                out.push((v6, r));
            }
        }
        Ok(out)
    }

    /// Makes the namespace's cic rules of `iif`-family pairs exactly `want` (IPv4 and
    /// IPv6 rules each for their family; a blackhole rule for both families). Rules of
    /// other interfaces that are not wanted are removed too.
    pub async fn set_source_rules(&self, want: &[SourceRule]) -> Result<()> {
        let mut wanted: Vec<(bool, SourceRule)> = Vec::new();
        for r in want {
            match r.v6() {
                Some(v6) => wanted.push((v6, r.clone())),
                None => {
                    wanted.push((false, r.clone()));
                    wanted.push((true, r.clone()));
                }
            }
        }
        let have = self.source_rules().await?;
        // Removals first, then the allowed sources, then the catch-all blackholes, each
        // a batch the kernel takes in order: a new interface is never shut for a moment
        // its allowed rules are not there yet. The blackholes go in whatever came before
        // them: a rule that could not be added or removed leaves a source shut, never
        // every source open (fail closed; the error says which).
        let catch_all = |r: &SourceRule| r.from.is_none() && r.to.is_none();
        wanted.sort_by_key(|(_, r)| (catch_all(r), r.priority));
        let gone: Vec<&(bool, SourceRule)> = have.iter().filter(|h| !wanted.contains(h)).collect();
        let (last, first): (Vec<&(bool, SourceRule)>, Vec<_>) = wanted
            .iter()
            .filter(|w| !have.contains(w))
            .partition(|(_, r)| catch_all(r));
        let removed = self.rule_batch(Change::Delete, &gone).await;
        let allowed = self.rule_batch(Change::Add, &first).await;
        let shut = self.rule_batch(Change::Add, &last).await;
        removed.and(allowed).and(shut)
    }

    /// `rules` added or deleted in one batch; the first that failed, if any.
    async fn rule_batch(&self, change: Change, rules: &[&(bool, SourceRule)]) -> Result<()> {
        let requests = rules
            .iter()
            .map(|(v6, r)| {
                let mut m = message(*v6, r);
                match change {
                    Change::Delete => (RouteNetlinkMessage::DelRule(m), ACK),
                    Change::Add => {
                        // As `ip rule add` (and rtnetlink's) asks: the main table.
                        m.header.table = MAIN as u8;
                        (RouteNetlinkMessage::NewRule(m), CREATE)
                    }
                }
            })
            .collect();
        let answers = self.rtnl().batch(requests).await;
        let failed: Vec<_> = rules
            .iter()
            .zip(answers)
            .filter_map(|(r, a)| a.err().map(|e| (r, e)))
            .collect();
        let Some((r, e)) = failed.first() else {
            return Ok(());
        };
        let err = Error::from_netlink(
            &format!(
                "{} rule {:?}{}",
                match change {
                    Change::Delete => "delete",
                    Change::Add => "add",
                },
                r.1,
                match failed.len() - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more)"),
                }
            ),
            e.clone(),
        );
        // Transient only when every one is (as a batch of routes): a refusal among them
        // would not pass by trying again.
        let all_transient = failed.iter().all(|(_, e)| e.is_transient());
        Err(match err {
            Error::Busy(m) if !all_transient => Error::Netlink(m),
            err => err,
        })
    }
}

#[derive(Clone, Copy)]
enum Change {
    Add,
    Delete,
}

/// The rule `r` of one family, as the kernel is asked to add or delete it.
fn message(v6: bool, r: &SourceRule) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    fill(&mut m, r);
    m
}

fn fill(m: &mut RuleMessage, r: &SourceRule) {
    m.attributes.push(RuleAttribute::Priority(r.priority));
    m.attributes.push(RuleAttribute::Iifname(r.iif.clone()));
    m.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(PROTO_BGP)));
    let addr = |p: IpNet| match p {
        IpNet::V4(p) => IpAddr::V4(p.network()),
        IpNet::V6(p) => IpAddr::V6(p.network()),
    };
    if let Some(p) = r.from {
        m.header.src_len = p.prefix_len();
        m.attributes.push(RuleAttribute::Source(addr(p)));
    }
    if let Some(p) = r.to {
        m.header.dst_len = p.prefix_len();
        m.attributes.push(RuleAttribute::Destination(addr(p)));
    }
    if r.allow {
        m.header.action = RuleAction::ToTable;
        m.header.table = MAIN as u8;
        m.attributes.push(RuleAttribute::Table(MAIN));
    } else {
        m.header.action = RuleAction::Blackhole;
    }
}
