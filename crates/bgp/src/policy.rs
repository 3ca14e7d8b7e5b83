//! Import policy of a routing instance (DESIGN.md §2). Default deny (RFC 8212): a route is
//! accepted only by a rule here, and every refusal says why.
//!
//! Export is decided in [`crate::instance`]; it needs the whole RIB.

use cic_model::prefixes::martian;
use std::fmt;

use ipnet::IpNet;

use crate::wire::{BgpRole, PathAttrs};

/// Who a peer is to the routing instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A customer router on a private connection (eBGP).
    Customer,
    /// The cloud fabric router of this routing instance.
    Fabric,
    /// A neighbor of the standalone speaker: what it may send and what it is sent are
    /// its [`NeighborPolicy`] (none: nothing either way, RFC 8212).
    Neighbor,
}

/// A prefix filter: the first rule that matches decides, else `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub rules: Vec<PrefixRule>,
    pub default: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

/// `prefix` with its length in `ge..=le` (both default to the prefix's own length, so a
/// bare prefix matches only itself; `ge` alone matches up to the family's longest), and,
/// when given, carrying `community` and `large_community`. Without a prefix, a route of
/// either family matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRule {
    pub prefix: Option<IpNet>,
    pub ge: Option<u8>,
    pub le: Option<u8>,
    /// A standard community (RFC 1997) the route must carry.
    pub community: Option<u32>,
    /// A large community (RFC 8092) the route must carry.
    pub large_community: Option<[u32; 3]>,
    /// The other conditions: AS path, community patterns, a prefix list.
    pub also: Matches,
    pub verdict: Verdict,
    /// What an accepting rule changes on the routes it accepts.
    pub set: Actions,
}

/// Changes an accepting rule makes to a route: on import, to the route as we keep it; on
/// export, to the route as the neighbor is sent it (after next hop self and our AS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    /// LOCAL_PREF (kept on import; sent only to internal neighbors).
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// Standard communities added (once each).
    pub communities: Vec<u32>,
    /// Large communities added (once each).
    pub large_communities: Vec<[u32; 3]>,
    /// Standard communities removed: those matching any pattern.
    pub remove_communities: Vec<CommunityPattern>,
    /// Large communities removed: those matching any pattern.
    pub remove_large_communities: Vec<LargePattern>,
    /// Our AS prepended this many times more (export only).
    pub prepend: u8,
    /// Private ASNs (RFC 6996) in the AS_PATH replaced by ours (export only), as
    /// `remove-private-as replace-as` does.
    pub replace_private_asns: bool,
}

/// A standard community, or a pattern of them: `65001:666`, `65001:*`, `*:666`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityPattern {
    pub asn: Option<u16>,
    pub value: Option<u16>,
}

impl CommunityPattern {
    pub fn matches(&self, c: u32) -> bool {
        self.asn.is_none_or(|a| u32::from(a) == c >> 16)
            && self.value.is_none_or(|v| u32::from(v) == c & 0xffff)
    }
}

/// A large community, or a pattern of them (`*` in any part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargePattern(pub [Option<u32>; 3]);

impl LargePattern {
    pub fn matches(&self, c: &[u32; 3]) -> bool {
        self.0.iter().zip(c).all(|(p, v)| p.is_none_or(|p| p == *v))
    }
}

/// An AS_PATH regular expression in the common (Cisco, FRR) syntax, matched against the
/// path written as ASNs separated by spaces (a set's members as well): `_` is a
/// delimiter (a space, the start or the end), `^` and `$` anchor, the rest is an
/// ordinary regular expression (`.`, `*`, `+`, `?`, `[0-9]`, `(a|b)`).
#[derive(Debug, Clone)]
pub struct AsPathRegex {
    pub source: String,
    re: regex::Regex,
}

impl AsPathRegex {
    /// Compiles `source`; the error says what is wrong with it.
    pub fn new(source: &str) -> Result<AsPathRegex, String> {
        let translated = source.replace('_', "(?:^|$| )");
        let re = regex::RegexBuilder::new(&translated)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| match e {
                regex::Error::Syntax(s) => s
                    .lines()
                    .last()
                    .unwrap_or("not a regular expression")
                    .trim_start_matches("error: ")
                    .to_string(),
                regex::Error::CompiledTooBig(_) => "too large".to_string(),
                _ => "not a regular expression".to_string(),
            })?;
        Ok(AsPathRegex {
            source: source.to_string(),
            re,
        })
    }

    pub fn matches(&self, a: &PathAttrs) -> bool {
        let path: Vec<String> = a.path_asns().map(|n| n.to_string()).collect();
        self.re.is_match(&path.join(" "))
    }
}

impl PartialEq for AsPathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for AsPathRegex {}

/// A named list of prefixes, each with its `ge`/`le` range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixList {
    pub name: String,
    pub entries: Vec<(IpNet, Option<u8>, Option<u8>)>,
}

impl PrefixList {
    pub fn matches(&self, n: &IpNet) -> bool {
        self.entries
            .iter()
            .any(|(p, ge, le)| in_range(*p, *ge, *le, n))
    }
}

/// `n` falls in `p` with a length in `ge..=le` (both default to `p`'s own length, so a
/// bare prefix matches only itself; `ge` alone reaches the family's longest).
fn in_range(p: IpNet, ge: Option<u8>, le: Option<u8>, n: &IpNet) -> bool {
    let lo = ge.unwrap_or(p.prefix_len());
    let hi = le.unwrap_or(if ge.is_some() { p.max_prefix_len() } else { lo });
    p.contains(n) && (lo..=hi).contains(&n.prefix_len())
}

/// Conditions of a rule beyond its prefix and exact communities; all given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// The AS_PATH holds this ASN somewhere.
    pub as_path_contains: Option<u32>,
    /// The route originated in this AS (the last of a path ending in a sequence).
    pub origin_as: Option<u32>,
    /// The AS_PATH's length (a set counts one) is at least / at most this.
    pub as_path_min_len: Option<usize>,
    pub as_path_max_len: Option<usize>,
    pub as_path_regex: Option<AsPathRegex>,
    /// A standard community matching this pattern is on the route.
    pub community: Option<CommunityPattern>,
    /// A large community matching this pattern is on the route.
    pub large_community: Option<LargePattern>,
    /// The prefix is in this list.
    pub prefix_list: Option<PrefixList>,
    /// The route's origin validation state (RFC 6811) is this. Matches nothing while no
    /// RPKI cache has synced: nothing is judged by data we do not have.
    pub rpki: Option<crate::rpki::Validity>,
}

impl Matches {
    pub fn is_empty(&self) -> bool {
        *self == Matches::default()
    }

    /// Whether `n` with `attrs` (and origin validation state `rpki`, when known) meets
    /// every condition given. An attribute condition never matches a route without
    /// attributes.
    pub fn matches(
        &self,
        n: &IpNet,
        attrs: Option<&PathAttrs>,
        rpki: Option<crate::rpki::Validity>,
    ) -> bool {
        if self.prefix_list.as_ref().is_some_and(|l| !l.matches(n)) {
            return false;
        }
        if self.rpki.is_some() && self.rpki != rpki {
            return false;
        }
        let needs_attrs = self.as_path_contains.is_some()
            || self.origin_as.is_some()
            || self.as_path_min_len.is_some()
            || self.as_path_max_len.is_some()
            || self.as_path_regex.is_some()
            || self.community.is_some()
            || self.large_community.is_some();
        let Some(a) = attrs else {
            return !needs_attrs;
        };
        self.as_path_contains
            .is_none_or(|asn| a.path_asns().any(|x| x == asn))
            && self.origin_as.is_none_or(|asn| origin_as(a) == Some(asn))
            && self.as_path_min_len.is_none_or(|m| a.as_path_len() >= m)
            && self.as_path_max_len.is_none_or(|m| a.as_path_len() <= m)
            && self.as_path_regex.as_ref().is_none_or(|r| r.matches(a))
            && self
                .community
                .is_none_or(|p| a.communities.iter().any(|c| p.matches(*c)))
            && self
                .large_community
                .is_none_or(|p| a.large_communities.iter().any(|c| p.matches(c)))
    }
}

/// The AS a route originated in: the last of its path when that ends in a sequence
/// (an AS_SET at the end leaves it unknown, as RFC 6811 says for origin validation).
pub fn origin_as(a: &PathAttrs) -> Option<u32> {
    match a.as_path.last()? {
        crate::wire::AsPathSegment::Sequence(v) => v.last().copied(),
        crate::wire::AsPathSegment::Set(_) => None,
    }
}

/// The route's origin AS as RFC 6811 §2 reads it for origin validation: the rightmost
/// AS of a final AS_SEQUENCE, none after an AS_SET, and ours when the path is empty (a
/// route of our own AS, or learnt over iBGP from within it).
pub fn rpki_origin(a: &PathAttrs, local_asn: u32) -> Option<u32> {
    let mut segments = a.as_path.iter().filter(|s| {
        let (crate::wire::AsPathSegment::Sequence(v) | crate::wire::AsPathSegment::Set(v)) = s;
        !v.is_empty()
    });
    match segments.next_back() {
        None => Some(local_asn),
        Some(crate::wire::AsPathSegment::Sequence(v)) => v.last().copied(),
        Some(crate::wire::AsPathSegment::Set(_)) => None,
    }
}

/// Private-use ASNs (RFC 6996).
pub fn is_private_asn(asn: u32) -> bool {
    (64512..=65534).contains(&asn) || (4_200_000_000..=4_294_967_294).contains(&asn)
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        *self == Actions::default()
    }

    /// Changes `a` as the rule says; `local_asn` is ours (for the prepend and the
    /// private ASNs' replacement, which only export rules carry).
    pub fn apply(&self, a: &mut PathAttrs, local_asn: u32) {
        if self.replace_private_asns {
            for seg in a.as_path.iter_mut() {
                let (crate::wire::AsPathSegment::Sequence(v) | crate::wire::AsPathSegment::Set(v)) =
                    seg;
                for asn in v.iter_mut().filter(|x| is_private_asn(**x)) {
                    *asn = local_asn;
                }
            }
        }
        for _ in 0..self.prepend {
            a.prepend(local_asn);
        }
        a.communities
            .retain(|c| !self.remove_communities.iter().any(|p| p.matches(*c)));
        a.large_communities
            .retain(|c| !self.remove_large_communities.iter().any(|p| p.matches(c)));
        if let Some(lp) = self.local_pref {
            a.local_pref = Some(lp);
        }
        if let Some(med) = self.med {
            a.med = Some(med);
        }
        for c in &self.communities {
            if !a.communities.contains(c) {
                a.communities.push(*c);
            }
        }
        for c in &self.large_communities {
            if !a.large_communities.contains(c) {
                a.large_communities.push(*c);
            }
        }
    }
}

impl PrefixRule {
    /// Whether the route (`n` with `attrs`; none for a route without attributes of its
    /// own) matches. A community condition never matches a route without attributes.
    pub fn matches(&self, n: &IpNet, attrs: Option<&PathAttrs>) -> bool {
        self.matches_with(n, attrs, None)
    }

    /// [`PrefixRule::matches`], with the route's origin validation state.
    pub fn matches_with(
        &self,
        n: &IpNet,
        attrs: Option<&PathAttrs>,
        rpki: Option<crate::rpki::Validity>,
    ) -> bool {
        self.prefix.is_none_or(|p| in_range(p, self.ge, self.le, n))
            && self.also.matches(n, attrs, rpki)
            && self
                .community
                .is_none_or(|c| attrs.is_some_and(|a| a.communities.contains(&c)))
            && self
                .large_community
                .is_none_or(|c| attrs.is_some_and(|a| a.large_communities.contains(&c)))
    }
}

impl Filter {
    /// Accepts everything.
    pub fn accept_all() -> Self {
        Filter {
            name: "accept-all".into(),
            rules: vec![],
            default: Verdict::Accept,
        }
    }

    /// The verdict on `n` with `attrs`, and the number (from 1) of the rule that gave it
    /// (0: the default).
    pub fn judge(&self, n: &IpNet, attrs: Option<&PathAttrs>) -> (Verdict, usize) {
        self.judge_with(n, attrs, None)
    }

    /// [`Filter::judge`], with the route's origin validation state.
    pub fn judge_with(
        &self,
        n: &IpNet,
        attrs: Option<&PathAttrs>,
        rpki: Option<crate::rpki::Validity>,
    ) -> (Verdict, usize) {
        self.rules
            .iter()
            .position(|r| r.matches_with(n, attrs, rpki))
            .map(|i| (self.rules[i].verdict, i + 1))
            .unwrap_or((self.default, 0))
    }

    /// A rule of this filter looks at origin validation.
    pub fn uses_rpki(&self) -> bool {
        self.rules.iter().any(|r| r.also.rpki.is_some())
    }

    pub fn permits(&self, n: &IpNet, attrs: Option<&PathAttrs>) -> bool {
        self.judge(n, attrs).0 == Verdict::Accept
    }

    /// The changes the rule that accepts `n` makes, with the rule's number (from 1);
    /// none when no rule accepts it or the one that does changes nothing.
    pub fn actions(&self, n: &IpNet, attrs: Option<&PathAttrs>) -> Option<(usize, &Actions)> {
        self.actions_with(n, attrs, None)
    }

    /// [`Filter::actions`], with the route's origin validation state.
    pub fn actions_with(
        &self,
        n: &IpNet,
        attrs: Option<&PathAttrs>,
        rpki: Option<crate::rpki::Validity>,
    ) -> Option<(usize, &Actions)> {
        let i = self
            .rules
            .iter()
            .position(|r| r.matches_with(n, attrs, rpki))?;
        let r = &self.rules[i];
        (r.verdict == Verdict::Accept && !r.set.is_empty()).then_some((i + 1, &r.set))
    }
}

/// What a neighbor is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    Nothing,
    /// Our own routes only.
    Originated,
    /// Every best route (ours and those learned from other peers; an iBGP-learned route
    /// is not sent to another iBGP peer).
    All,
    /// [`Export::All`], through a filter.
    Filter(Filter),
}

/// Import and export of a [`Role::Neighbor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborPolicy {
    /// `None`: nothing is accepted (RFC 8212 default deny).
    pub import: Option<Filter>,
    pub export: Export,
    /// Prefixes accepted from the neighbor at most (the instance's max-prefix action).
    pub max_prefixes: Option<u32>,
    /// Our AS prepended this many times more on what an external neighbor is sent, to make
    /// the path through us a standby (0: only the one RFC 4271 requires).
    pub prepend: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Not a prefix a customer may announce: loopback, multicast, documentation, ….
    Martian(IpNet, &'static str),
    /// Overlaps a VPC prefix of this routing instance: would hijack cloud traffic.
    OverlapsVpc(IpNet),
    /// A fabric route outside every VPC prefix of this routing instance.
    OutsideVpc,
    /// AS_PATH holds a documentation ASN or AS_TRANS (RFC 5398, RFC 6793).
    ReservedAsn(u32),
    /// AS_PATH holds our own ASN: a loop.
    Loop,
    /// The first AS of the path is not the peer's (RFC 4271 §6.3 enforce-first-as).
    FirstAs { first: Option<u32>, peer: u32 },
    /// The UPDATE was malformed and RFC 7606 turned it into a withdrawal.
    Malformed,
    /// Outside the prefixes registered for this (public) connection.
    NotRegistered,
    /// A neighbor's import filter refused it: the filter, and its rule (0: the default).
    Filter(String, usize),
    /// RPKI finds it invalid (RFC 6811) and invalids are refused here: its origin AS
    /// (none when its path ends in an AS_SET).
    RpkiInvalid(Option<u32>),
    /// A neighbor's import filter refused it by its origin validation state: the filter,
    /// its rule, the state.
    Rpki(String, usize, crate::rpki::Validity),
    /// A neighbor without an import policy: nothing is accepted (RFC 8212).
    NoImportPolicy,
    /// A route leak (RFC 9234 §5): marked ONLY_TO_CUSTOMER (by this AS) and received from
    /// a customer, an RS client or a peer that did not mark it.
    RouteLeak(u32),
    /// Its NEXT_HOP is our own address (RFC 4271 §6.3: semantically incorrect; the route
    /// is ignored and logged, no NOTIFICATION).
    OwnNextHop(std::net::IpAddr),
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Martian(r, what) => write!(f, "inside {r} ({what})"),
            Reject::OverlapsVpc(p) => write!(f, "overlaps VPC prefix {p}"),
            Reject::OutsideVpc => write!(f, "outside the routing instance's VPC prefixes"),
            Reject::ReservedAsn(a) => write!(f, "AS_PATH contains reserved ASN {a}"),
            Reject::Loop => write!(f, "AS_PATH contains our own ASN"),
            Reject::FirstAs {
                first: Some(a),
                peer,
            } => write!(f, "AS_PATH starts with {a}, not the peer's {peer}"),
            Reject::FirstAs { first: None, peer } => {
                write!(f, "AS_PATH does not start with the peer's {peer}")
            }
            Reject::Malformed => write!(f, "malformed UPDATE (treat-as-withdraw)"),
            Reject::NotRegistered => {
                write!(f, "not among the prefixes registered for this connection")
            }
            Reject::Filter(name, 0) => write!(f, "refused by policy {name} (its default)"),
            Reject::Filter(name, rule) => write!(f, "refused by policy {name}, rule {rule}"),
            Reject::RpkiInvalid(Some(o)) => write!(
                f,
                "RPKI invalid (RFC 6811): no ROA lets AS{o} originate it at this length"
            ),
            Reject::RpkiInvalid(None) => write!(
                f,
                "RPKI invalid (RFC 6811): ROAs cover it and its origin is an AS_SET"
            ),
            Reject::Rpki(name, rule, v) => {
                write!(f, "RPKI {v}: refused by policy {name}, rule {rule}")
            }
            Reject::NoImportPolicy => write!(f, "no import policy (RFC 8212 default deny)"),
            Reject::OwnNextHop(a) => {
                write!(
                    f,
                    "NEXT_HOP {a} is our own address: ignored (RFC 4271 §6.3)"
                )
            }
            Reject::RouteLeak(otc) => {
                write!(
                    f,
                    "route leak: ONLY_TO_CUSTOMER {otc} from where it may not come (RFC 9234)"
                )
            }
        }
    }
}

/// The preferences a customer may ask for with a community on its routes (the AWS scheme
/// of 7224:7100/7200/7300, under the cloud's own ASN): low, medium and high, as the
/// LOCAL_PREF the cloud side then gives the route. Medium is what an untagged route has.
pub const LOCAL_PREF_COMMUNITIES: [(u32, u32); 3] = [(7100, 50), (7200, 100), (7300, 150)];

/// The local preference `attrs` ask for: the standard community `<cloud>:7100` (…7200,
/// …7300) when the cloud's ASN has 2 octets, else the large community `<cloud>:0:7100`
/// (either is understood for a 2-octet ASN). A route tagged more than once gets the lowest
/// preference it asked for: no tag gets it more traffic than any other allows.
pub fn requested_local_pref(cloud_asn: u32, attrs: &PathAttrs) -> Option<u32> {
    LOCAL_PREF_COMMUNITIES
        .iter()
        .find(|(tag, _)| {
            let standard = u16::try_from(cloud_asn)
                .is_ok_and(|asn| attrs.communities.contains(&(u32::from(asn) << 16 | tag)));
            standard || attrs.large_communities.contains(&[cloud_asn, 0, *tag])
        })
        .map(|(_, lp)| *lp)
}

pub fn is_reserved_asn(asn: u32) -> bool {
    asn == 0
        || asn == crate::wire::AS_TRANS
        || (64496..=64511).contains(&asn)
        || (65536..=65551).contains(&asn)
        || asn == u32::MAX
}

/// What the import decision needs to know about the instance and the peer.
#[derive(Debug, Clone, Copy)]
pub struct ImportContext<'a> {
    pub role: Role,
    pub local_asn: u32,
    pub peer_asn: u32,
    pub vpc_prefixes: &'a [IpNet],
    /// Only routes inside these are accepted from a customer, when set.
    pub accept_only: Option<&'a [IpNet]>,
    /// A neighbor's import filter (`None`: refuse everything).
    pub filter: Option<&'a Filter>,
    /// The RPKI data in force (`None`: no cache has synced).
    pub vrps: Option<&'a crate::rpki::Vrps>,
    /// A customer's routes that the data finds invalid are refused.
    pub reject_invalid: bool,
}

impl ImportContext<'_> {
    /// The route's origin validation state, when the filter asks for it and there is
    /// data to judge by.
    pub fn validity(&self, prefix: &IpNet, attrs: &PathAttrs) -> Option<crate::rpki::Validity> {
        let vrps = self.vrps?;
        self.filter
            .filter(|f| f.uses_rpki())
            .map(|_| vrps.validate(prefix, rpki_origin(attrs, self.local_asn)))
    }
}

/// Whether a customer may route `prefix` toward its side, by BGP or by a static route:
/// no martians, nothing that overlaps a VPC prefix of the instance.
pub fn customer_prefix(vpc_prefixes: &[IpNet], prefix: &IpNet) -> Result<(), Reject> {
    if let Some((r, what)) = martian(prefix) {
        return Err(Reject::Martian(r, what));
    }
    overlaps_vpc(vpc_prefixes, prefix)
}

/// A customer's route must not overlap a VPC prefix (a public connection's: a service's).
fn overlaps_vpc(vpc_prefixes: &[IpNet], prefix: &IpNet) -> Result<(), Reject> {
    // The default route contains every VPC prefix but is a legitimate announcement.
    if prefix.prefix_len() > 0
        && let Some(v) = vpc_prefixes
            .iter()
            .find(|v| v.contains(prefix) || prefix.contains(*v))
    {
        return Err(Reject::OverlapsVpc(*v));
    }
    Ok(())
}

pub fn import(cx: &ImportContext<'_>, prefix: &IpNet, attrs: &PathAttrs) -> Result<(), Reject> {
    let ebgp = cx.peer_asn != cx.local_asn;
    for asn in attrs.path_asns() {
        if asn == cx.local_asn {
            return Err(Reject::Loop);
        }
        // A neighbor's filter says what it accepts; the edge's roles refuse these.
        if is_reserved_asn(asn) && cx.role != Role::Neighbor {
            return Err(Reject::ReservedAsn(asn));
        }
    }
    if ebgp && attrs.first_as() != Some(cx.peer_asn) {
        return Err(Reject::FirstAs {
            first: attrs.first_as(),
            peer: cx.peer_asn,
        });
    }
    match cx.role {
        Role::Customer => {
            match cx.accept_only {
                // A public connection: inside the customer's registered prefixes, which
                // the API has judged public (the operator may take a test range as public),
                // only the services' own prefixes are refused.
                Some(registered) if registered.iter().any(|a| a.contains(prefix)) => {
                    overlaps_vpc(cx.vpc_prefixes, prefix)?
                }
                Some(_) => {
                    customer_prefix(cx.vpc_prefixes, prefix)?;
                    return Err(Reject::NotRegistered);
                }
                None => customer_prefix(cx.vpc_prefixes, prefix)?,
            }
            match cx.vrps.filter(|_| cx.reject_invalid) {
                Some(v)
                    if v.validate(prefix, rpki_origin(attrs, cx.local_asn))
                        == crate::rpki::Validity::Invalid =>
                {
                    Err(Reject::RpkiInvalid(rpki_origin(attrs, cx.local_asn)))
                }
                _ => Ok(()),
            }
        }
        Role::Fabric => {
            if cx.vpc_prefixes.iter().any(|v| v.contains(prefix)) {
                Ok(())
            } else {
                Err(Reject::OutsideVpc)
            }
        }
        Role::Neighbor => {
            let rpki = cx.validity(prefix, attrs);
            match cx
                .filter
                .map(|f| (f, f.judge_with(prefix, Some(attrs), rpki)))
            {
                None => Err(Reject::NoImportPolicy),
                Some((_, (Verdict::Accept, _))) => Ok(()),
                Some((f, (Verdict::Reject, rule))) => {
                    match (rpki, rule.checked_sub(1).and_then(|i| f.rules.get(i))) {
                        (Some(v), Some(r)) if r.also.rpki.is_some() => {
                            Err(Reject::Rpki(f.name.clone(), rule, v))
                        }
                        _ => Err(Reject::Filter(f.name.clone(), rule)),
                    }
                }
            }
        }
    }
}

/// RFC 9234 §5 on receipt, with our role `local` toward a peer of AS `peer_asn`: a route
/// marked ONLY_TO_CUSTOMER that comes up from a customer or an RS client, or across from a
/// peer that did not mark it, is a leak; one that comes down from a provider or a route
/// server, or across from a peer, unmarked, is marked with the peer's AS.
pub fn otc_ingress(local: BgpRole, peer_asn: u32, attrs: &mut PathAttrs) -> Result<(), Reject> {
    use BgpRole::*;
    match (local, attrs.otc) {
        (Provider | RouteServer, Some(o)) => Err(Reject::RouteLeak(o)),
        (Peer, Some(o)) if o != peer_asn => Err(Reject::RouteLeak(o)),
        (Customer | Peer | RsClient, None) => {
            attrs.otc = Some(peer_asn);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// RFC 9234 §5 on sending, with our role `local` toward the peer: a route marked
/// ONLY_TO_CUSTOMER does not go up to a provider or a route server, nor across to a peer
/// (`None`); one that goes down to a customer or an RS client, or across to a peer, is
/// marked with our AS if it is not yet.
pub fn otc_egress(local: BgpRole, local_asn: u32, mut attrs: PathAttrs) -> Option<PathAttrs> {
    use BgpRole::*;
    match local {
        Customer | Peer | RsClient if attrs.otc.is_some() => None,
        Provider | Peer | RouteServer => {
            attrs.otc.get_or_insert(local_asn);
            Some(attrs)
        }
        _ => Some(attrs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AsPathSegment;

    fn n(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn path(asns: &[u32]) -> PathAttrs {
        PathAttrs {
            as_path: vec![AsPathSegment::Sequence(asns.to_vec())],
            ..Default::default()
        }
    }

    const VPC: [&str; 1] = ["10.128.0.0/16"];

    fn customer<'a>(vpc: &'a [IpNet]) -> ImportContext<'a> {
        ImportContext {
            role: Role::Customer,
            local_asn: 200_350,
            peer_asn: 65001,
            vpc_prefixes: vpc,
            accept_only: None,
            filter: None,
            vrps: None,
            reject_invalid: false,
        }
    }

    #[test]
    fn customer_may_announce_rfc1918_public_and_default() {
        let vpc = [n(VPC[0])];
        for p in [
            "192.168.10.0/24",
            "10.1.0.0/16",
            "172.16.0.0/12",
            "0.0.0.0/0",
            "8.8.8.0/24",
            "1.2.3.4/32",
        ] {
            assert_eq!(
                import(&customer(&vpc), &n(p), &path(&[65001])),
                Ok(()),
                "{p}"
            );
        }
    }

    #[test]
    fn customer_martians_are_refused_with_the_range() {
        let vpc = [n(VPC[0])];
        for p in [
            "127.0.0.0/8",
            "169.254.1.0/24",
            "224.0.0.0/24",
            "192.0.2.0/24",
            "100.64.1.0/24",
            "0.1.0.0/16",
        ] {
            let e = import(&customer(&vpc), &n(p), &path(&[65001])).unwrap_err();
            assert!(matches!(e, Reject::Martian(..)), "{p}: {e}");
        }
    }

    #[test]
    fn a_public_connection_takes_its_registered_prefixes_even_in_a_test_range() {
        // The API judged the registered prefixes public (an operator may take the
        // benchmarking range as public in a lab); inside them only a service's own
        // prefix is refused, outside them a martian is still named a martian.
        let services = [n("198.18.0.0/24")];
        let registered = [n("198.19.10.0/24"), n("5.45.192.0/22")];
        let cx = ImportContext {
            accept_only: Some(&registered),
            ..customer(&services)
        };
        let p = path(&[65001]);
        assert_eq!(import(&cx, &n("198.19.10.0/24"), &p), Ok(()));
        assert_eq!(import(&cx, &n("5.45.193.0/24"), &p), Ok(()));
        assert!(matches!(
            import(&cx, &n("198.19.11.0/24"), &p),
            Err(Reject::Martian(..))
        ));
        assert_eq!(
            import(&cx, &n("8.8.8.0/24"), &p),
            Err(Reject::NotRegistered)
        );
        let wide = [n("198.18.0.0/15")];
        let cx = ImportContext {
            accept_only: Some(&wide),
            ..customer(&services)
        };
        assert_eq!(
            import(&cx, &n("198.18.0.0/23"), &p),
            Err(Reject::OverlapsVpc(services[0])),
            "a service's prefix is not the customer's to route"
        );
        // A private connection has no registered prefixes: the range stays a martian.
        assert!(matches!(
            import(&customer(&services), &n("198.19.10.0/24"), &p),
            Err(Reject::Martian(..))
        ));
    }

    #[test]
    fn customer_route_overlapping_a_vpc_prefix_is_refused() {
        let vpc = [n(VPC[0])];
        for p in ["10.128.0.0/16", "10.128.5.0/24", "10.0.0.0/8"] {
            assert_eq!(
                import(&customer(&vpc), &n(p), &path(&[65001])),
                Err(Reject::OverlapsVpc(vpc[0])),
                "{p}"
            );
        }
    }

    #[test]
    fn documentation_asn_anywhere_in_the_path_is_refused() {
        let vpc = [n(VPC[0])];
        for asn in [64496, 64511, 65536, 65551, 23456] {
            let e =
                import(&customer(&vpc), &n("192.168.0.0/16"), &path(&[65001, asn])).unwrap_err();
            assert_eq!(e, Reject::ReservedAsn(asn));
        }
    }

    #[test]
    fn own_asn_in_path_is_a_loop() {
        let vpc = [n(VPC[0])];
        let e = import(
            &customer(&vpc),
            &n("192.168.0.0/16"),
            &path(&[65001, 200_350]),
        )
        .unwrap_err();
        assert_eq!(e, Reject::Loop);
    }

    #[test]
    fn path_must_start_with_the_peer_asn() {
        let vpc = [n(VPC[0])];
        let e = import(&customer(&vpc), &n("192.168.0.0/16"), &path(&[65002])).unwrap_err();
        assert_eq!(
            e,
            Reject::FirstAs {
                first: Some(65002),
                peer: 65001
            }
        );
    }

    #[test]
    fn fabric_routes_are_accepted_only_inside_vpc_prefixes() {
        let vpc = [n(VPC[0])];
        let cx = ImportContext {
            role: Role::Fabric,
            local_asn: 200_350,
            peer_asn: 200_350,
            vpc_prefixes: &vpc,
            accept_only: None,
            filter: None,
            vrps: None,
            reject_invalid: false,
        };
        let ibgp_path = PathAttrs::default();
        assert_eq!(import(&cx, &n("10.128.0.0/16"), &ibgp_path), Ok(()));
        assert_eq!(import(&cx, &n("10.128.3.0/24"), &ibgp_path), Ok(()));
        assert_eq!(
            import(&cx, &n("10.0.0.0/8"), &ibgp_path),
            Err(Reject::OutsideVpc)
        );
        assert_eq!(
            import(&cx, &n("0.0.0.0/0"), &ibgp_path),
            Err(Reject::OutsideVpc)
        );
    }

    #[test]
    fn prefix_rules_match_ge_and_le_like_a_prefix_list() {
        let rule = |p: &str, ge, le| PrefixRule {
            set: Actions::default(),
            prefix: Some(n(p)),
            ge,
            le,
            community: None,
            large_community: None,
            also: Default::default(),
            verdict: Verdict::Accept,
        };
        let exact = rule("10.0.0.0/8", None, None);
        assert!(exact.matches(&n("10.0.0.0/8"), None));
        assert!(!exact.matches(&n("10.1.0.0/16"), None));
        let le24 = rule("10.0.0.0/8", None, Some(24));
        assert!(le24.matches(&n("10.0.0.0/8"), None));
        assert!(le24.matches(&n("10.1.2.0/24"), None));
        assert!(!le24.matches(&n("10.1.2.0/25"), None));
        assert!(!le24.matches(&n("11.0.0.0/8"), None));
        let ge16 = rule("10.0.0.0/8", Some(16), None);
        assert!(!ge16.matches(&n("10.0.0.0/8"), None));
        assert!(ge16.matches(&n("10.1.2.3/32"), None));
        let band = rule("0.0.0.0/0", Some(8), Some(24));
        assert!(band.matches(&n("192.168.1.0/24"), None));
        assert!(!band.matches(&n("0.0.0.0/0"), None));
        assert!(!band.matches(&n("192.168.1.0/25"), None));
    }

    #[test]
    fn community_conditions_match_only_routes_that_carry_them() {
        let tagged = PrefixRule {
            community: Some(65001 << 16 | 666),
            large_community: Some([65001, 1, 2]),
            ..PrefixRule {
                set: Actions::default(),
                prefix: None,
                ge: None,
                le: None,
                community: None,
                large_community: None,
                also: Default::default(),
                verdict: Verdict::Reject,
            }
        };
        let mut a = path(&[65001]);
        assert!(!tagged.matches(&n("10.0.0.0/8"), Some(&a)));
        a.communities = vec![65001 << 16 | 666];
        assert!(
            !tagged.matches(&n("10.0.0.0/8"), Some(&a)),
            "both are needed"
        );
        a.large_communities = vec![[65001, 1, 2]];
        assert!(tagged.matches(&n("10.0.0.0/8"), Some(&a)));
        assert!(
            !tagged.matches(&n("10.0.0.0/8"), None),
            "no attributes, no match"
        );
        let f = Filter {
            name: "no-blackholes".into(),
            rules: vec![tagged],
            default: Verdict::Accept,
        };
        assert_eq!(f.judge(&n("10.0.0.0/8"), Some(&a)), (Verdict::Reject, 1));
        assert_eq!(
            f.judge(&n("10.0.0.0/8"), Some(&path(&[65001]))),
            (Verdict::Accept, 0)
        );
    }

    #[test]
    fn a_neighbor_is_judged_by_its_filter_and_without_one_refused() {
        let f = Filter {
            name: "onprem".into(),
            rules: vec![
                PrefixRule {
                    set: Actions::default(),
                    prefix: Some(n("10.10.0.0/16")),
                    ge: None,
                    le: None,
                    community: None,
                    large_community: None,
                    also: Default::default(),
                    verdict: Verdict::Reject,
                },
                PrefixRule {
                    set: Actions::default(),
                    prefix: Some(n("10.0.0.0/8")),
                    ge: None,
                    le: Some(24),
                    community: None,
                    large_community: None,
                    also: Default::default(),
                    verdict: Verdict::Accept,
                },
            ],
            default: Verdict::Reject,
        };
        let cx = |filter| ImportContext {
            role: Role::Neighbor,
            local_asn: 65002,
            peer_asn: 65001,
            vpc_prefixes: &[],
            accept_only: None,
            filter,
            vrps: None,
            reject_invalid: false,
        };
        // Documentation ASNs are the filter's business for a neighbor, loops are not.
        let via = path(&[65001, 64500]);
        assert_eq!(import(&cx(Some(&f)), &n("10.1.0.0/16"), &via), Ok(()));
        assert_eq!(
            import(&cx(Some(&f)), &n("10.10.0.0/16"), &via),
            Err(Reject::Filter("onprem".into(), 1))
        );
        assert_eq!(
            import(&cx(Some(&f)), &n("192.168.0.0/16"), &via),
            Err(Reject::Filter("onprem".into(), 0))
        );
        assert_eq!(
            import(&cx(None), &n("10.1.0.0/16"), &via),
            Err(Reject::NoImportPolicy)
        );
        assert_eq!(
            import(
                &cx(Some(&Filter::accept_all())),
                &n("10.1.0.0/16"),
                &path(&[65001, 65002])
            ),
            Err(Reject::Loop)
        );
    }

    fn tagged(segs: Vec<crate::wire::AsPathSegment>) -> PathAttrs {
        PathAttrs {
            as_path: segs,
            communities: vec![65001 << 16 | 666, 65002 << 16 | 1],
            large_communities: vec![[65001, 1, 2], [65003, 0, 7]],
            ..Default::default()
        }
    }

    fn seq(v: &[u32]) -> crate::wire::AsPathSegment {
        crate::wire::AsPathSegment::Sequence(v.to_vec())
    }

    #[test]
    fn as_path_conditions_match_what_route_servers_match() {
        let n: IpNet = "10.0.0.0/24".parse().expect("prefix");
        let a = tagged(vec![seq(&[65001, 174, 3356])]);
        let m = |x: Matches| x.matches(&n, Some(&a), None);
        assert!(m(Matches {
            as_path_contains: Some(174),
            ..Default::default()
        }));
        assert!(!m(Matches {
            as_path_contains: Some(1299),
            ..Default::default()
        }));
        assert!(m(Matches {
            origin_as: Some(3356),
            ..Default::default()
        }));
        assert!(!m(Matches {
            origin_as: Some(174),
            ..Default::default()
        }));
        assert!(m(Matches {
            as_path_min_len: Some(3),
            as_path_max_len: Some(3),
            ..Default::default()
        }));
        assert!(!m(Matches {
            as_path_max_len: Some(2),
            ..Default::default()
        }));
        for (re, want) in [
            ("^65001_", true),
            ("_3356$", true),
            ("_174_", true),
            ("^174_", false),
            ("_17_", false),
            ("^65001_[0-9]+_3356$", true),
            ("^$", false),
            (".*", true),
        ] {
            let r = AsPathRegex::new(re).expect("regex");
            assert_eq!(r.matches(&a), want, "{re}");
        }
        // Our own routes have an empty path.
        assert!(
            AsPathRegex::new("^$")
                .expect("re")
                .matches(&PathAttrs::default())
        );
        // An AS_SET at the end leaves the origin unknown (RFC 6811).
        let set = tagged(vec![
            seq(&[65001]),
            crate::wire::AsPathSegment::Set(vec![1, 2]),
        ]);
        assert_eq!(origin_as(&set), None);
        assert_eq!(rpki_origin(&set, 64512), None);
        // RFC 6811 §2: an empty path is a route of our own AS.
        assert_eq!(rpki_origin(&PathAttrs::default(), 64512), Some(64512));
        assert_eq!(rpki_origin(&tagged(vec![seq(&[])]), 64512), Some(64512));
        assert_eq!(
            rpki_origin(&tagged(vec![seq(&[65001, 3356])]), 64512),
            Some(3356)
        );
        // No attributes, no match for a path condition.
        assert!(
            !Matches {
                as_path_contains: Some(174),
                ..Default::default()
            }
            .matches(&n, None, None)
        );
        assert!(AsPathRegex::new("(").is_err());
    }

    #[test]
    fn community_patterns_and_prefix_lists_match() {
        let a = tagged(vec![seq(&[65001])]);
        let n: IpNet = "10.1.2.0/24".parse().expect("prefix");
        let c = |asn, value| Matches {
            community: Some(CommunityPattern { asn, value }),
            ..Default::default()
        };
        assert!(c(Some(65001), None).matches(&n, Some(&a), None));
        assert!(c(None, Some(1)).matches(&n, Some(&a), None));
        assert!(!c(Some(65003), None).matches(&n, Some(&a), None));
        let l = |p: [Option<u32>; 3]| Matches {
            large_community: Some(LargePattern(p)),
            ..Default::default()
        };
        assert!(l([Some(65003), None, None]).matches(&n, Some(&a), None));
        assert!(!l([Some(65003), Some(1), None]).matches(&n, Some(&a), None));
        let list = PrefixList {
            name: "customers".into(),
            entries: vec![
                ("10.0.0.0/8".parse().expect("p"), Some(16), Some(24)),
                ("192.168.0.0/16".parse().expect("p"), None, None),
            ],
        };
        assert!(list.matches(&n));
        assert!(
            !list.matches(&"10.0.0.0/8".parse().expect("p")),
            "shorter than ge"
        );
        assert!(
            !list.matches(&"10.1.2.0/25".parse().expect("p")),
            "longer than le"
        );
        assert!(list.matches(&"192.168.0.0/16".parse().expect("p")));
        assert!(
            !list.matches(&"192.168.1.0/24".parse().expect("p")),
            "a bare entry is exact"
        );
    }

    #[test]
    fn actions_remove_by_pattern_prepend_and_replace_private_asns() {
        let mut a = tagged(vec![
            seq(&[64999, 174, 65010]),
            crate::wire::AsPathSegment::Set(vec![4_200_000_001, 3356]),
        ]);
        Actions {
            remove_communities: vec![CommunityPattern {
                asn: Some(65001),
                value: None,
            }],
            remove_large_communities: vec![LargePattern([None, Some(0), None])],
            prepend: 2,
            replace_private_asns: true,
            communities: vec![65001 << 16 | 9],
            ..Default::default()
        }
        .apply(&mut a, 200350);
        assert_eq!(
            a.as_path,
            vec![
                seq(&[200350, 200350, 200350, 174, 200350]),
                crate::wire::AsPathSegment::Set(vec![200350, 3356])
            ]
        );
        // Removed first, then added: a rule can replace a community of the same AS.
        assert_eq!(a.communities, vec![65002 << 16 | 1, 65001 << 16 | 9]);
        assert_eq!(a.large_communities, vec![[65001, 1, 2]]);
    }
}
