//! Resource commands: flags in, one API call, a short summary (or `--json`) out. One
//! module per resource group; what they share (output, tables, paging, operations, move)
//! is here.

mod catalog;
mod connections;
mod operations;
mod public;
mod routing;
mod tenancy;
mod trunks;
mod verbs;

pub use catalog::*;
pub use connections::*;
pub use operations::*;
pub use public::*;
pub use routing::*;
pub use tenancy::*;
pub use trunks::*;
pub use verbs::*;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Api;

pub const FORMATS: [&str; 3] = ["table", "json", "yaml"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Lists as tables, single resources as YAML, mutations as one line.
    Table,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

pub struct Output {
    pub format: Format,
    /// `--quiet`: no progress, no summary of a finished mutation in table format.
    pub quiet: bool,
    pub wait: bool,
    pub timeout: Duration,
    /// The folder when a command's `--folder` is not given (CIC_FOLDER, the profile).
    pub folder: Option<String>,
}

impl Output {
    pub fn print(&self, v: &Value, summary: impl FnOnce(&Value) -> String) {
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            Format::Yaml => print!("{}", yaml(v)),
            Format::Table => println!("{}", summary(v)),
        }
    }

    /// The folder of a command: its `--folder`, else CIC_FOLDER or the profile's.
    fn folder(&self, given: Option<String>) -> Result<String> {
        given.or_else(|| self.folder.clone()).ok_or_else(|| {
            anyhow!("no folder: pass --folder, set CIC_FOLDER or `cic config set folder F`")
        })
    }

    /// The folder query of a list: `--folder`, else the default folder, else none (the
    /// server then lists what the caller may see).
    fn folder_query(&self, given: Option<String>) -> String {
        given
            .or_else(|| self.folder.clone())
            .map(|f| format!("?folderId={f}"))
            .unwrap_or_default()
    }

    /// Sends a mutation; unless `--async`, waits for its operation (showing progress on
    /// stderr) and prints the result.
    async fn mutate(
        &self,
        api: &Api,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<()> {
        let op = api.call(method, path, body.as_ref()).await?;
        if !self.wait {
            self.print(&op, |o| {
                format!(
                    "operation {} started: {what}",
                    o["id"].as_str().unwrap_or("?")
                )
            });
            return Ok(());
        }
        let id = op["id"].as_str().unwrap_or("?").to_string();
        let started = std::time::Instant::now();
        let tty = std::io::stderr().is_terminal();
        let progress = !self.quiet;
        let mut shown = false;
        let done = {
            let wait = api.wait(op, self.timeout);
            tokio::pin!(wait);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    r = &mut wait => break r,
                    _ = tick.tick() => {
                        // Quick operations finish without a word; slow ones say so.
                        let t = started.elapsed();
                        if progress && t >= Duration::from_millis(500) {
                            if tty {
                                eprint!("\r{what}: operation {id} running, {:.1} s", t.as_secs_f64());
                                shown = true;
                            } else if !shown {
                                eprintln!("{what}: waiting for operation {id}");
                                shown = true;
                            }
                        }
                    }
                }
            }
        };
        if shown && tty {
            eprint!("\r\x1b[K");
        }
        let done = done?;
        let r = done.get("response").cloned().unwrap_or(Value::Null);
        let rid = done["metadata"]["resourceId"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let t = started.elapsed().as_secs_f64();
        if self.quiet && self.format == Format::Table {
            return Ok(());
        }
        self.print(&done, |_| match r.get("status").and_then(Value::as_str) {
            Some(status) => format!("{what}: {rid} {status} ({t:.1} s)"),
            None => format!("{what}: {rid} done ({t:.1} s)"),
        });
        Ok(())
    }
}

/// The items of a list page (lists are keyed by kind: `"trunkConnections": [...]`).
fn page_items(v: &Value) -> Vec<Value> {
    v.as_object()
        .and_then(|m| m.values().find_map(|x| x.as_array()))
        .cloned()
        .unwrap_or_default()
}

/// A list page as a table: one column per field path (`bgp.state`), headed by the path
/// in capitals. A next page is mentioned under it.
pub(crate) fn table(v: &Value, cols: &[&str]) -> String {
    let items = page_items(v);
    let cell = |it: &Value, path: &str| -> String {
        let x = path.split('.').fold(it, |x, seg| &x[seg]);
        match x {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let head: Vec<String> = cols.iter().map(|c| heading(c)).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|it| cols.iter().map(|c| cell(it, c)).collect())
        .collect();
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |r: &[String]| {
        format!(
            "|{}|",
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!(" {c:<w$} "))
                .collect::<Vec<_>>()
                .join("|")
        )
    };
    let mut out = vec![rule.clone(), line(&head), rule.clone()];
    out.extend(rows.iter().map(|r| line(r)));
    out.push(rule);
    if let Some(t) = v["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
        out.push(format!("(more: --page-token {t})"));
    }
    out.join("\n")
}

/// `pointOfPresenceId` → `POINT_OF_PRESENCE_ID`; `bgp.state` → `BGP_STATE`.
fn heading(path: &str) -> String {
    let mut h = String::new();
    for c in path.chars() {
        if c == '.' {
            h.push('_');
        } else if c.is_ascii_uppercase() {
            h.push('_');
            h.push(c);
        } else {
            h.push(c.to_ascii_uppercase());
        }
    }
    h
}

fn yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// A single resource in table format: YAML, like the modelled CLI.
fn pretty(v: &Value) -> String {
    yaml(v).trim_end().to_string()
}

/// `cic … list-operations ID`: a resource's operations, newest first.
async fn list_operations(api: &Api, out: &Output, path: &str) -> Result<()> {
    let v = api.get(&format!("{path}/operations")).await?;
    out.print(&v, |v| {
        let ops = v["operations"].as_array().cloned().unwrap_or_default();
        if ops.is_empty() {
            return "(none)".into();
        }
        ops.iter()
            .map(|o| {
                format!(
                    "{}\t{}\t{}\t{}",
                    o["id"].as_str().unwrap_or(""),
                    o["createdAt"].as_str().unwrap_or(""),
                    if o["done"] == true { "done" } else { "running" },
                    o["description"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_name_them_from_the_field_paths() {
        let v = json!({"privateConnections": [
            {"id": "pc1", "vlanId": "100", "bgp": {"state": "ESTABLISHED"}},
            {"id": "pc22", "vlanId": "7"},
        ], "nextPageToken": "2"});
        let t = table(&v, &["id", "vlanId", "bgp.state"]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "| ID   | VLAN_ID | BGP_STATE   |");
        assert_eq!(lines[3], "| pc1  | 100     | ESTABLISHED |");
        assert_eq!(lines[4], "| pc22 | 7       |             |");
        assert_eq!(lines[0].len(), lines[1].len());
        assert_eq!(lines.last(), Some(&"(more: --page-token 2)"));
    }

    #[test]
    fn the_modelled_peering_flag_reads_into_the_api_shape() {
        let p = peering_from_kv(
            "peering-subnet=10.0.0.0/31, peer-ip=10.0.0.1,cloud-ip=10.0.0.0,peer-bgp-asn=4200000001",
        )
        .expect("peering");
        assert_eq!(
            p,
            json!({"peeringSubnet": "10.0.0.0/31", "peerIp": "10.0.0.1", "cloudIp": "10.0.0.0", "peerBgpAsn": "4200000001"})
        );
        for (bad, why) in [
            ("peering-subnet", "is not key=value"),
            ("peer-ip=1,peer-ip=2", "given twice"),
            ("vlan=3", "unknown key"),
        ] {
            let e = peering_from_kv(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_ipv6_peering_flag_takes_the_same_keys_and_names_itself_in_errors() {
        let p = connections::peering_kv(
            "--ipv6-peering",
            "peering-subnet=fd00::/127,peer-ip=fd00::1,cloud-ip=fd00::,peer-bgp-asn=65001",
        )
        .expect("peering");
        assert_eq!(p["peeringSubnet"], "fd00::/127");
        let e = connections::peering_kv("--ipv6-peering", "peering-subnet=fd00::/127")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--ipv6-peering: peer-ip= is missing"), "{e}");
        // Static routes go to the list of their family.
        let b = connections::routes_by_family(&["10.9.0.0/16".into(), "2a00:1::/48".into()]);
        assert_eq!(b["ipv4StaticRoutes"], json!([{"prefix": "10.9.0.0/16"}]));
        assert_eq!(b["ipv6StaticRoutes"], json!([{"prefix": "2a00:1::/48"}]));
    }

    #[test]
    fn capacities_read_as_people_write_them() {
        assert_eq!(capacity("1g").unwrap(), "CAPACITY_1_GBPS");
        assert_eq!(capacity("500M").unwrap(), "CAPACITY_500_MBPS");
        assert_eq!(capacity("10Gbps").unwrap(), "CAPACITY_10_GBPS");
        assert_eq!(capacity("CAPACITY_2_GBPS").unwrap(), "CAPACITY_2_GBPS");
        assert!(capacity("fast").is_err());
        assert!(capacity("10x").is_err());
    }
}
