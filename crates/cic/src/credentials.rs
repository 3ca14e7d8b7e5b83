//! `cic edge-router issue-certificate | rotate-credentials` and `cic pki init`: an edge's
//! credentials written where its agent reads them (each file replaced atomically, keys
//! 0600), and a CA with a server certificate for a first deployment or the lab.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Api;
use crate::commands::Output;

/// Writes `text` to `path` through a temporary file and a rename: a reader sees the old
/// file or the new one, never half of one.
pub fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("credential");
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The request body of `:issueCertificate` / `:rotateCredentials`.
pub fn request(
    kind: Option<&str>,
    csr: Option<&Path>,
    validity_days: Option<u32>,
    revoke_old_after: Option<u64>,
) -> Result<Value> {
    let mut body = json!({});
    if let Some(k) = kind {
        body["kind"] = json!(k);
    }
    if let Some(p) = csr {
        let pem = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the CSR {}", p.display()))?;
        body["csr"] = json!(pem);
    }
    if let Some(d) = validity_days {
        body["validityDays"] = json!(d);
    }
    if let Some(s) = revoke_old_after {
        body["revokeOldAfterSeconds"] = json!(s);
    }
    Ok(body)
}

/// Calls `:method` of edge `id` and writes or prints what it returns.
pub async fn issue(
    api: &Api,
    out: &Output,
    id: &str,
    method: &str,
    body: Value,
    out_dir: Option<&Path>,
) -> Result<()> {
    let v = api
        .call(
            Method::POST,
            &format!("/cic/v1/edges/{id}:{method}"),
            Some(&body),
        )
        .await?;
    let Some(dir) = out_dir else {
        out.print(&v, |v| {
            let mut s = String::new();
            for (k, what) in [
                ("token", "token (shown once)"),
                ("certificate", "certificate"),
                ("privateKey", "private key (shown once)"),
                ("caCertificate", "CA certificate"),
            ] {
                if let Some(t) = v[k].as_str() {
                    s.push_str(&format!("{what}:\n{}\n", t.trim_end()));
                }
            }
            s.push_str(&revocation(v));
            s
        });
        return Ok(());
    };
    let shown = write(&v, dir)?;
    let written: Vec<String> = shown["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.print(&shown, |v| {
        let mut s = format!(
            "edge {}: new {} written to {}\n",
            v["edgeId"].as_str().unwrap_or(id),
            v["kind"].as_str().unwrap_or("credentials"),
            written.join(", ")
        );
        if let Some(sn) = v["serialNumber"].as_str() {
            s.push_str(&format!(
                "serial {sn}, valid until {}\n",
                v["notAfter"].as_str().unwrap_or("?")
            ));
        }
        s.push_str(&revocation(v));
        s
    });
    Ok(())
}

/// Writes the credentials in `v` to `dir` (key first, each file replaced atomically, keys
/// 0600) and returns `v` with the secrets replaced by "(written)" and the files listed.
pub fn write(v: &Value, dir: &Path) -> Result<Value> {
    let mut written = Vec::<PathBuf>::new();
    // The key before the certificate: an agent that looks between the two sees a pair
    // that does not match, keeps its old one and looks again.
    for (k, file, mode) in [
        ("privateKey", "edge.key", 0o600),
        ("certificate", "edge.crt", 0o644),
        ("caCertificate", "ca.crt", 0o644),
        ("token", "token", 0o600),
    ] {
        if let Some(t) = v[k].as_str() {
            let p = dir.join(file);
            write_atomic(&p, t, mode)?;
            written.push(p);
        }
    }
    let mut shown = v.clone();
    for k in ["privateKey", "token"] {
        if shown.get(k).is_some() {
            shown[k] = json!("(written)");
        }
    }
    shown["files"] = json!(
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    );
    Ok(shown)
}

fn revocation(v: &Value) -> String {
    match v["oldRevokedAt"].as_str() {
        Some(at) => format!(
            "the edge's previous {}s are refused from {at}\n",
            v["kind"].as_str().unwrap_or("credential")
        ),
        None => String::new(),
    }
}

/// `cic pki init`: a CA, and a server certificate for `names` signed by it.
pub fn pki_init(dir: &Path, names: &[String], days: i64, force: bool) -> Result<()> {
    if names.is_empty() {
        bail!("give the server's names: --name cic.example.net [--name 192.0.2.10]");
    }
    let ca_key = dir.join("ca.key");
    if ca_key.exists() && !force {
        bail!(
            "{} exists: this directory has a CA already (--force makes a new one, and every certificate it signed stops being trusted)",
            ca_key.display()
        );
    }
    // A name of its own, so that two CAs are told apart in errors and by their users.
    let tag = cic_server::new_id("");
    let (ca, key_pem) = cic_server::pki::Ca::generate(&format!("cic CA {}", &tag[..6]), days)?;
    let server = ca.issue_server(names, days)?;
    write_atomic(&ca_key, &key_pem, 0o600)?;
    write_atomic(&dir.join("ca.crt"), &ca.cert_pem, 0o644)?;
    write_atomic(
        &dir.join("server.key"),
        server.key_pem.as_deref().unwrap_or_default(),
        0o600,
    )?;
    write_atomic(&dir.join("server.crt"), &server.cert_pem, 0o644)?;
    println!(
        "CA and server certificate for {} in {}:\n  cic server --tls-cert {d}/server.crt --tls-key {d}/server.key --client-ca {d}/ca.crt --client-ca-key {d}/ca.key\n  clients: --ca-cert {d}/ca.crt",
        names.join(", "),
        dir.display(),
        d = dir.display()
    );
    Ok(())
}
