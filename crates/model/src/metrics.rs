//! Prometheus text exposition of connection state, with the modelled service's metric names
//! (REFERENCE.md "Monitoring"). The edge renders it from live state (1 s resolution: every
//! scrape reads the speaker and the kernel); the server from the edges' last reports.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::edge::{SessionKind, SessionStatus};

/// Traffic of one connection's interface on the edge, as the kernel counts it. "To cloud"
/// is what the edge receives from the customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_to_cloud: u64,
    pub bytes_from_cloud: u64,
    pub packets_to_cloud: u64,
    pub packets_from_cloud: u64,
    pub dropped_packets_to_cloud: u64,
    pub dropped_packets_from_cloud: u64,
    pub error_packets_to_cloud: u64,
    pub error_packets_from_cloud: u64,
}

impl Traffic {
    /// The sum of two connections' counters (a trunk's, from its connections').
    pub fn add(&mut self, o: &Traffic) {
        self.bytes_to_cloud += o.bytes_to_cloud;
        self.bytes_from_cloud += o.bytes_from_cloud;
        self.packets_to_cloud += o.packets_to_cloud;
        self.packets_from_cloud += o.packets_from_cloud;
        self.dropped_packets_to_cloud += o.dropped_packets_to_cloud;
        self.dropped_packets_from_cloud += o.dropped_packets_from_cloud;
        self.error_packets_to_cloud += o.error_packets_to_cloud;
        self.error_packets_from_cloud += o.error_packets_from_cloud;
    }
}

/// A trunk as the edge sees it at a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trunk {
    /// Realised, and its port (if it has one of its own) has carrier.
    pub up: bool,
    /// A LAG's member ports with carrier, as a share of all of them.
    pub lag_health: Option<f64>,
    /// Its connections' counters summed.
    pub traffic: Traffic,
    /// Rates since the previous scrape: bits/s and packets/s to and from the cloud.
    pub rates: Option<Rates>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub bits_to_cloud: f64,
    pub bits_from_cloud: f64,
    pub packets_to_cloud: f64,
    pub packets_from_cloud: f64,
}

impl Rates {
    /// The rates between two readings `secs` apart; none when a counter went back (a
    /// connection left the trunk, or an interface was made again) or no time passed.
    pub fn between(before: &Traffic, after: &Traffic, secs: f64) -> Option<Rates> {
        let d = |a: u64, b: u64| b.checked_sub(a).map(|d| d as f64 / secs);
        if secs <= 0.0 {
            return None;
        }
        Some(Rates {
            bits_to_cloud: d(before.bytes_to_cloud, after.bytes_to_cloud)? * 8.0,
            bits_from_cloud: d(before.bytes_from_cloud, after.bytes_from_cloud)? * 8.0,
            packets_to_cloud: d(before.packets_to_cloud, after.packets_to_cloud)?,
            packets_from_cloud: d(before.packets_from_cloud, after.packets_from_cloud)?,
        })
    }
}

pub type Labels = Vec<(&'static str, String)>;

/// Metric families in the order they were first given samples.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<(&'static str, &'static str, &'static str)>,
    samples: BTreeMap<&'static str, Vec<(Labels, f64)>>,
}

impl Exposition {
    pub fn sample(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: Labels,
        value: f64,
    ) {
        if !self.samples.contains_key(name) {
            self.families.push((name, kind, help));
        }
        self.samples.entry(name).or_default().push((labels, value));
    }

    /// One customer session: state, lifetime, routes in and out.
    pub fn session(&mut self, s: &SessionStatus, mut labels: Labels) {
        labels.push((
            "session",
            match s.kind {
                SessionKind::Customer => "customer".into(),
                SessionKind::Fabric => "fabric".into(),
            },
        ));
        labels.push(("peer", s.peer.to_string()));
        let up = s.state == "ESTABLISHED";
        // The modelled names carry the family: `bgp_ipv6_session_state_up_down`, ….
        let family = s.family;
        let v6 = |v4: &'static str, v6: &'static str| match family {
            crate::edge::Family::Ipv4 => v4,
            crate::edge::Family::Ipv6 => v6,
        };
        self.sample(
            v6(
                "bgp_ipv4_session_state_up_down",
                "bgp_ipv6_session_state_up_down",
            ),
            "gauge",
            "1 while the BGP session is Established, else 0.",
            labels.clone(),
            f64::from(u8::from(up)),
        );
        self.sample(
            v6(
                "bgp_ipv4_session_lifetime_seconds",
                "bgp_ipv6_session_lifetime_seconds",
            ),
            "gauge",
            "Seconds since the BGP session was established (0 while down).",
            labels.clone(),
            s.uptime_secs as f64,
        );
        self.sample(
            v6(
                "ipv4_announces_received_by_cloud_num",
                "ipv6_announces_received_by_cloud_num",
            ),
            "gauge",
            "Prefixes the cloud receives on the session.",
            labels.clone(),
            f64::from(s.prefixes_received),
        );
        self.sample(
            v6(
                "ipv4_announces_accepted_by_cloud_num",
                "ipv6_announces_accepted_by_cloud_num",
            ),
            "gauge",
            "Prefixes the cloud accepted of those received (the rest were filtered).",
            labels.clone(),
            f64::from(s.prefixes_accepted),
        );
        self.sample(
            v6(
                "ipv4_announces_advertised_from_cloud_num",
                "ipv6_announces_advertised_from_cloud_num",
            ),
            "gauge",
            "Prefixes the cloud advertises on the session.",
            labels.clone(),
            f64::from(s.prefixes_advertised),
        );
        self.sample(
            v6(
                "bgp_ipv4_prefix_limit_exceeded",
                "bgp_ipv6_prefix_limit_exceeded",
            ),
            "gauge",
            "1 when the peer sent more prefixes than its limit.",
            labels.clone(),
            f64::from(u8::from(s.prefix_limit_exceeded)),
        );
        self.sample(
            v6(
                "bgp_ipv4_prefix_limit_warning",
                "bgp_ipv6_prefix_limit_warning",
            ),
            "gauge",
            "1 when the peer's prefixes reached the warning share of its limit.",
            labels.clone(),
            f64::from(u8::from(s.prefix_limit_warning)),
        );
        self.sample(
            v6(
                "bgp_ipv4_idle_hold_remaining_seconds",
                "bgp_ipv6_idle_hold_remaining_seconds",
            ),
            "gauge",
            "Seconds a max-prefix teardown still keeps the session idle.",
            labels.clone(),
            s.idle_hold_remaining_secs.unwrap_or(0) as f64,
        );
        if let Some(b) = &s.bfd {
            labels.push(("family", s.family.name().to_string()));
            self.sample(
                "bfd_session_state_up_down",
                "gauge",
                "1 while the BFD session beside the BGP session is Up, else 0.",
                labels.clone(),
                f64::from(u8::from(b.state == "UP")),
            );
            self.sample(
                "bfd_session_downs_num",
                "counter",
                "Times the BFD session failed (each took the BGP session down).",
                labels,
                b.downs as f64,
            );
        }
    }

    /// One connection's interface counters.
    pub fn traffic(&mut self, t: &Traffic, labels: Labels) {
        let c = "counter";
        for (name, help, v) in [
            (
                "bytes_to_cloud_num",
                "Bytes received from the customer.",
                t.bytes_to_cloud,
            ),
            (
                "bytes_from_cloud_num",
                "Bytes sent to the customer.",
                t.bytes_from_cloud,
            ),
            (
                "packets_to_cloud_num",
                "Packets received from the customer.",
                t.packets_to_cloud,
            ),
            (
                "packets_from_cloud_num",
                "Packets sent to the customer.",
                t.packets_from_cloud,
            ),
            (
                "dropped_packets_to_cloud_num",
                "Packets from the customer the edge dropped.",
                t.dropped_packets_to_cloud,
            ),
            (
                "dropped_packets_from_cloud_num",
                "Packets to the customer the edge dropped.",
                t.dropped_packets_from_cloud,
            ),
            (
                "error_packets_to_cloud_num",
                "Packets from the customer received in error.",
                t.error_packets_to_cloud,
            ),
            (
                "error_packets_from_cloud_num",
                "Packets to the customer that failed to send.",
                t.error_packets_from_cloud,
            ),
        ] {
            self.sample(name, c, help, labels.clone(), v as f64);
        }
    }

    /// One trunk: its state, a LAG's health, its traffic, and the rates since the last
    /// scrape (the modelled service's trunk metrics, at the scrape's resolution).
    pub fn trunk(&mut self, t: &Trunk, labels: Labels) {
        self.sample(
            "connection_state_up_down",
            "gauge",
            "1 while the trunk is up (its port has carrier), else 0.",
            labels.clone(),
            f64::from(u8::from(t.up)),
        );
        if let Some(h) = t.lag_health {
            self.sample(
                "lag_health",
                "gauge",
                "The share of the LAG's member ports that are up (1: all).",
                labels.clone(),
                h,
            );
        }
        if let Some(r) = &t.rates {
            self.trunk_rates(r, labels.clone());
        }
        self.traffic(&t.traffic, labels);
    }

    /// A trunk's rates since the last scrape.
    fn trunk_rates(&mut self, r: &Rates, labels: Labels) {
        for (name, help, v) in [
            (
                "bitrate_to_cloud_bps",
                "Bits per second from the customer, since the last scrape.",
                r.bits_to_cloud,
            ),
            (
                "bitrate_from_cloud_bps",
                "Bits per second to the customer, since the last scrape.",
                r.bits_from_cloud,
            ),
            (
                "packet_rate_to_cloud_pps",
                "Packets per second from the customer, since the last scrape.",
                r.packets_to_cloud,
            ),
            (
                "packet_rate_from_cloud_pps",
                "Packets per second to the customer, since the last scrape.",
                r.packets_from_cloud,
            ),
        ] {
            self.sample(name, "gauge", help, labels.clone(), v);
        }
    }

    /// The text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help) in &self.families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in self.samples.get(name).into_iter().flatten() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                if l.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {v}", l.join(","));
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_render_in_the_text_format_with_escaped_labels() {
        let mut e = Exposition::default();
        let s = SessionStatus {
            resource_id: "pc1".into(),
            kind: SessionKind::Customer,
            family: crate::edge::Family::Ipv4,
            peer: "169.254.0.2".parse().expect("ip"),
            peer_asn: 65001,
            state: "ESTABLISHED".into(),
            uptime_secs: 42,
            established_at: None,
            prefixes_received: 3,
            prefixes_accepted: 2,
            prefixes_advertised: 1,
            prefix_limit_exceeded: false,
            prefix_limit_warning: true,
            idle_hold_remaining_secs: None,
            last_error: None,
            last_failure: None,
            bfd: Some(crate::edge::BfdStatus {
                state: "UP".into(),
                detection_time_ms: 900,
                downs: 2,
                last_diagnostic: None,
            }),
        };
        e.session(&s, vec![("connection_id", "pc\"1\n".into())]);
        let text = e.render();
        assert!(text.starts_with(
            "# HELP bgp_ipv4_session_state_up_down 1 while the BGP session is Established, else 0.\n\
             # TYPE bgp_ipv4_session_state_up_down gauge\n\
             bgp_ipv4_session_state_up_down{connection_id=\"pc\\\"1\\n\",session=\"customer\",peer=\"169.254.0.2\"} 1\n"
        ), "{text}");
        assert!(text.contains("ipv4_announces_accepted_by_cloud_num{"));
        assert!(text.contains("} 2\n"));
        assert!(text.contains("bgp_ipv4_prefix_limit_warning{connection_id=\"pc\\\"1\\n\",session=\"customer\",peer=\"169.254.0.2\"} 1\n"), "{text}");
        assert!(text.contains("bfd_session_state_up_down{connection_id=\"pc\\\"1\\n\",session=\"customer\",peer=\"169.254.0.2\",family=\"ipv4\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE bfd_session_downs_num counter\nbfd_session_downs_num{"));
        let mut down = s.clone();
        down.state = "ACTIVE".into();
        let mut e = Exposition::default();
        e.session(&down, vec![]);
        assert!(e.render().contains(
            "bgp_ipv4_session_state_up_down{session=\"customer\",peer=\"169.254.0.2\"} 0\n"
        ));
        // The IPv6 session of a connection: the modelled names with ipv6.
        let mut v6 = s.clone();
        v6.family = crate::edge::Family::Ipv6;
        v6.peer = "fd00::1".parse().expect("ip");
        let mut e = Exposition::default();
        e.session(&v6, vec![]);
        let text = e.render();
        for name in [
            "bgp_ipv6_session_state_up_down{",
            "ipv6_announces_received_by_cloud_num{",
            "ipv6_announces_accepted_by_cloud_num{",
            "ipv6_announces_advertised_from_cloud_num{",
            "bgp_ipv6_prefix_limit_warning{",
            "bfd_session_state_up_down{session=\"customer\",peer=\"fd00::1\",family=\"ipv6\"} 1",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
        assert!(!text.contains("ipv4"), "{text}");
    }

    #[test]
    fn trunk_rates_come_from_two_readings_and_none_when_a_counter_went_back() {
        let before = Traffic {
            bytes_to_cloud: 1_000,
            bytes_from_cloud: 500,
            packets_to_cloud: 10,
            packets_from_cloud: 5,
            ..Default::default()
        };
        let mut after = before;
        after.add(&Traffic {
            bytes_to_cloud: 2_000,
            bytes_from_cloud: 1_000,
            packets_to_cloud: 20,
            packets_from_cloud: 10,
            ..Default::default()
        });
        let r = Rates::between(&before, &after, 2.0).expect("rates");
        assert_eq!(r.bits_to_cloud, 8_000.0);
        assert_eq!(r.bits_from_cloud, 4_000.0);
        assert_eq!(r.packets_to_cloud, 10.0);
        assert_eq!(r.packets_from_cloud, 5.0);
        assert_eq!(Rates::between(&after, &before, 2.0), None);
        assert_eq!(Rates::between(&before, &after, 0.0), None);

        let mut e = Exposition::default();
        e.trunk(
            &Trunk {
                up: true,
                lag_health: Some(0.5),
                traffic: after,
                rates: Some(r),
            },
            vec![("trunk_connection_id", "tc1".into())],
        );
        let text = e.render();
        for line in [
            "connection_state_up_down{trunk_connection_id=\"tc1\"} 1\n",
            "lag_health{trunk_connection_id=\"tc1\"} 0.5\n",
            "bitrate_to_cloud_bps{trunk_connection_id=\"tc1\"} 8000\n",
            "packet_rate_from_cloud_pps{trunk_connection_id=\"tc1\"} 5\n",
            "bytes_to_cloud_num{trunk_connection_id=\"tc1\"} 3000\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // A trunk without rates yet (the first scrape) and not a LAG: neither family.
        let mut e = Exposition::default();
        e.trunk(&Trunk::default(), vec![]);
        let text = e.render();
        assert!(text.contains("connection_state_up_down 0\n"));
        assert!(!text.contains("lag_health") && !text.contains("bitrate"));
    }
}
