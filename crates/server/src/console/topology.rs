//! A folder's topology as an SVG drawing, laid out from its resources: the customer's
//! site → trunks → points of presence (and their edges) → routing instances → VPC
//! networks. Each link is coloured by the state of what it stands for (a trunk's status,
//! a connection's BGP session, a routing instance's status). Pure: resources in, shapes
//! out; the template draws them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

const COLUMN: f64 = 190.0;
const NODE_W: f64 = 150.0;
const NODE_H: f64 = 40.0;
const ROW: f64 = 58.0;
const MARGIN: f64 = 14.0;

#[derive(Debug, Serialize, PartialEq)]
pub struct Node {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Shortened to fit the box; `full` is the whole (the node's tooltip).
    pub label: String,
    pub sub: String,
    pub full: String,
    pub href: Option<String>,
    pub class: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Link {
    /// An SVG path: a curve from the right of one node to the left of the next.
    pub d: String,
    pub class: String,
    pub title: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Drawing {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Good, changing or bad, for a resource status or a BGP state.
fn class(state: &str) -> &'static str {
    super::state_class(state)
}

/// Columns of node keys, in order of first appearance; a node's row is its index.
struct Columns {
    cols: [Vec<String>; 5],
    nodes: BTreeMap<String, (usize, String, String, Option<String>, String)>,
}

impl Columns {
    fn add(
        &mut self,
        col: usize,
        key: &str,
        label: &str,
        sub: &str,
        href: Option<String>,
        cls: &str,
    ) {
        if !self.nodes.contains_key(key) {
            self.cols[col].push(key.to_string());
            self.nodes.insert(
                key.to_string(),
                (
                    col,
                    label.to_string(),
                    sub.to_string(),
                    href,
                    cls.to_string(),
                ),
            );
        }
    }

    fn at(&self, key: &str) -> Option<(f64, f64)> {
        let (col, ..) = self.nodes.get(key)?;
        let row = self.cols[*col].iter().position(|k| k == key)?;
        Some((MARGIN + *col as f64 * COLUMN, MARGIN + row as f64 * ROW))
    }
}

/// The drawing of a folder's trunks, private connections and routing instances (as the
/// API lists them, connections with their live `bgp`).
pub fn draw(trunks: &[Value], connections: &[Value], instances: &[Value]) -> Drawing {
    let mut c = Columns {
        cols: Default::default(),
        nodes: BTreeMap::new(),
    };
    // (from, to, CSS class, tooltip)
    let mut pairs: Vec<(String, String, &'static str, String)> = Vec::new();
    c.add(0, "site", "Your site", "customer routers", None, "site");
    for t in trunks {
        let id = s(t, "id");
        let pop = s(t, "pointOfPresenceId");
        let tk = format!("trunk:{id}");
        let status = s(t, "status");
        c.add(
            1,
            &tk,
            if s(t, "name").is_empty() {
                id
            } else {
                s(t, "name")
            },
            s(t, "capacity"),
            Some(format!("/console/trunkConnections/{id}")),
            class(status),
        );
        let pk = format!("pop:{pop}");
        c.add(2, &pk, pop, s(t, "edgeId"), None, "pop");
        pairs.push((
            "site".into(),
            tk.clone(),
            class(status),
            format!("trunk {id}: {status}"),
        ));
        pairs.push((tk, pk, class(status), format!("trunk {id} at {pop}")));
    }
    let instance_of = |pc: &str| -> Option<&Value> {
        instances.iter().find(|ri| {
            ri.get("cicPrivateConnectionInfo")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|r| s(r, "cicPrivateConnectionId") == pc))
        })
    };
    for ri in instances {
        let id = s(ri, "id");
        let rk = format!("ri:{id}");
        c.add(
            3,
            &rk,
            if s(ri, "name").is_empty() {
                id
            } else {
                s(ri, "name")
            },
            "routing instance",
            Some(format!("/console/routingInstances/{id}")),
            class(s(ri, "status")),
        );
        for vpc in ri
            .get("vpcInfo")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let net = s(vpc, "vpcNetworkId");
            let vk = format!("vpc:{net}");
            c.add(4, &vk, net, "VPC network", None, "vpc");
            pairs.push((
                rk.clone(),
                vk,
                class(s(ri, "status")),
                format!("{id} → {net}"),
            ));
        }
    }
    for pc in connections {
        let id = s(pc, "id");
        let trunk = trunks
            .iter()
            .find(|t| s(t, "id") == s(pc, "trunkConnectionId"));
        let Some(trunk) = trunk else { continue };
        let pk = format!("pop:{}", s(trunk, "pointOfPresenceId"));
        let state = pc.get("bgp").map(|b| s(b, "state")).unwrap_or("NO SESSION");
        let target = match instance_of(id) {
            Some(ri) => format!("ri:{}", s(ri, "id")),
            None => {
                c.add(
                    3,
                    "ri:",
                    "(no instance)",
                    "connections not attached",
                    None,
                    "none",
                );
                "ri:".to_string()
            }
        };
        let vlan = pc
            .get("vlanId")
            .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
            .unwrap_or_default();
        pairs.push((
            pk,
            target,
            super::bgp_class(state),
            format!("{} (VLAN {vlan}): BGP {state}", pc_name(pc)),
        ));
    }
    let rows = c.cols.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut nodes = Vec::new();
    for (key, (_, label, sub, href, cls)) in &c.nodes {
        if let Some((x, y)) = c.at(key) {
            nodes.push(Node {
                x,
                y,
                w: NODE_W,
                h: NODE_H,
                label: fit(label, 18),
                sub: fit(sub, 24),
                full: format!("{label} — {sub}"),
                href: href.clone(),
                class: cls.clone(),
            });
        }
    }
    nodes.sort_by(|a, b| {
        (a.x, a.y)
            .partial_cmp(&(b.x, b.y))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let links = pairs
        .into_iter()
        .filter_map(|(from, to, cls, title)| {
            let (x1, y1) = c.at(&from)?;
            let (x2, y2) = c.at(&to)?;
            let (x1, y1) = (x1 + NODE_W, y1 + NODE_H / 2.0);
            let (x2, y2) = (x2, y2 + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            Some(Link {
                d: format!("M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}"),
                class: cls.to_string(),
                title,
            })
        })
        .collect();
    Drawing {
        width: MARGIN * 2.0 + 4.0 * COLUMN + NODE_W,
        height: MARGIN * 2.0 + (rows as f64 - 1.0) * ROW + NODE_H,
        nodes,
        links,
    }
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

fn pc_name(pc: &Value) -> &str {
    if s(pc, "name").is_empty() {
        s(pc, "id")
    } else {
        s(pc, "name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_link_is_coloured_by_what_it_stands_for() {
        let trunks = [
            json!({"id": "t1", "pointOfPresenceId": "pop1", "edgeId": "e1",
                             "status": "ACTIVE", "capacity": "CAPACITY_10_GBPS"}),
        ];
        let pcs = [
            json!({"id": "pc1", "trunkConnectionId": "t1", "vlanId": "100",
                   "bgp": {"state": "ESTABLISHED"}}),
            json!({"id": "pc2", "trunkConnectionId": "t1", "vlanId": "101",
                   "bgp": {"state": "ACTIVE"}}),
            json!({"id": "pc3", "trunkConnectionId": "gone", "vlanId": "102"}),
        ];
        let ris = [json!({"id": "ri1", "status": "ACTIVE",
                          "vpcInfo": [{"vpcNetworkId": "net1"}],
                          "cicPrivateConnectionInfo": [{"cicPrivateConnectionId": "pc1"}]})];
        let d = draw(&trunks, &pcs, &ris);
        let labels: Vec<&str> = d.nodes.iter().map(|n| n.label.as_str()).collect();
        for want in ["Your site", "t1", "pop1", "ri1", "net1", "(no instance)"] {
            assert!(labels.contains(&want), "{want} in {labels:?}");
        }
        let link = |t: &str| {
            d.links
                .iter()
                .find(|l| l.title.starts_with(t))
                .map(|l| l.class.as_str())
        };
        assert_eq!(link("pc1"), Some("ok"));
        assert_eq!(link("pc2"), Some("bad"));
        assert_eq!(
            link("pc3"),
            None,
            "a connection whose trunk is not listed is not drawn"
        );
        assert_eq!(link("trunk t1:"), Some("ok"));
        assert!(d.height >= NODE_H && d.width > 4.0 * COLUMN);
        assert_eq!(fit("CAPACITY_10_GBPS_AND_MORE", 10), "CAPACITY_…");
    }
}
