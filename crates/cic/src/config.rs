//! CLI profiles: the endpoint, token, default folder and output format of each profile,
//! in a TOML file (`$CIC_CONFIG`, else `$XDG_CONFIG_HOME/cic/config.toml`, else
//! `~/.config/cic/config.toml`), written with mode 0600 because it holds tokens.
//!
//! A flag or environment variable wins over the profile, the profile over the default.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The CA certificate (PEM file) the server's certificate must chain to.
    #[serde(default, rename = "ca-cert", skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

pub const KEYS: [&str; 5] = ["server", "token", "folder", "format", "ca-cert"];

impl Profile {
    fn slot(&mut self, key: &str) -> Result<&mut Option<String>> {
        Ok(match key {
            "server" => &mut self.server,
            "token" => &mut self.token,
            "folder" => &mut self.folder,
            "format" => &mut self.format,
            "ca-cert" => &mut self.ca_cert,
            other => bail!(
                "unknown setting {other:?}; settings are {}",
                KEYS.join(", ")
            ),
        })
    }
}

pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("CIC_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cic").join("config.toml")
}

/// The file's profiles; no file is an empty configuration, a broken one an error that
/// names the file and what is wrong.
pub fn load(path: &Path) -> Result<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn save(path: &Path, c: &Config) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = toml::to_string_pretty(c)?;
    // Written whole to a temporary file, then renamed: a crash leaves the old file.
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

impl Config {
    /// The profile named by `--profile`/`CIC_PROFILE`, else the current one, else
    /// `default`. A named profile that does not exist is an error; the implicit one may
    /// be absent (all settings then come from flags and defaults).
    pub fn active(&self, named: Option<&str>) -> Result<(String, Profile)> {
        match named {
            Some(n) => match self.profiles.get(n) {
                Some(p) => Ok((n.to_string(), p.clone())),
                None => bail!(
                    "no profile {n:?} in {}; `cic config list` shows them",
                    path().display()
                ),
            },
            None => {
                let n = self.current.clone().unwrap_or_else(|| "default".into());
                let p = self.profiles.get(&n).cloned().unwrap_or_default();
                Ok((n, p))
            }
        }
    }
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// The profiles; `*` marks the current one.
    List,
    /// The settings of a profile (the token masked).
    Show,
    /// Set a setting (server, token, folder, format) of the profile; creates it.
    Set { key: String, value: String },
    /// Remove a setting from the profile.
    Unset { key: String },
    /// Make a profile the current one.
    Use { profile: String },
    /// Delete a profile.
    Delete { profile: String },
}

impl ConfigCmd {
    /// `profile`: the profile named by `--profile`, if any.
    pub fn run(self, profile: Option<&str>) -> Result<()> {
        let file = path();
        let mut c = load(&file)?;
        let name = profile
            .map(String::from)
            .or_else(|| c.current.clone())
            .unwrap_or_else(|| "default".into());
        match self {
            ConfigCmd::List => {
                if c.profiles.is_empty() {
                    println!("(no profiles in {})", file.display());
                }
                for (n, p) in &c.profiles {
                    let mark = if Some(n) == c.current.as_ref() {
                        "*"
                    } else {
                        " "
                    };
                    println!(
                        "{mark} {n}\t{}",
                        p.server.as_deref().unwrap_or("(default server)")
                    );
                }
            }
            ConfigCmd::Show => {
                let (n, p) = c.active(profile)?;
                println!("profile: {n}");
                println!("server: {}", p.server.as_deref().unwrap_or("-"));
                println!(
                    "token: {}",
                    if p.token.is_some() { "********" } else { "-" }
                );
                println!("folder: {}", p.folder.as_deref().unwrap_or("-"));
                println!("format: {}", p.format.as_deref().unwrap_or("-"));
            }
            ConfigCmd::Set { key, value } => {
                if key == "format" && !crate::commands::FORMATS.contains(&value.as_str()) {
                    bail!(
                        "format {value:?} is not one of {}",
                        crate::commands::FORMATS.join(", ")
                    );
                }
                if key == "server"
                    && !(value.starts_with("http://") || value.starts_with("https://"))
                {
                    bail!("server {value:?} is not an http:// or https:// URL");
                }
                *c.profiles.entry(name.clone()).or_default().slot(&key)? = Some(value);
                if c.current.is_none() {
                    c.current = Some(name.clone());
                }
                save(&file, &c)?;
                println!("profile {name}: {key} set");
            }
            ConfigCmd::Unset { key } => {
                let p = c
                    .profiles
                    .get_mut(&name)
                    .with_context(|| format!("no profile {name:?}"))?;
                *p.slot(&key)? = None;
                save(&file, &c)?;
                println!("profile {name}: {key} unset");
            }
            ConfigCmd::Use { profile } => {
                if !c.profiles.contains_key(&profile) {
                    bail!(
                        "no profile {profile:?}; `cic config set --profile {profile} server URL` makes one"
                    );
                }
                c.current = Some(profile.clone());
                save(&file, &c)?;
                println!("current profile: {profile}");
            }
            ConfigCmd::Delete { profile } => {
                if c.profiles.remove(&profile).is_none() {
                    bail!("no profile {profile:?}");
                }
                if c.current.as_deref() == Some(profile.as_str()) {
                    c.current = None;
                }
                save(&file, &c)?;
                println!("profile {profile} deleted");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_must_exist_the_implicit_one_need_not() {
        let mut c = Config::default();
        assert!(c.active(Some("prod")).is_err());
        assert_eq!(c.active(None).expect("implicit").0, "default");
        c.profiles.insert(
            "prod".into(),
            Profile {
                server: Some("https://cic.example".into()),
                ..Default::default()
            },
        );
        c.current = Some("prod".into());
        let (n, p) = c.active(None).expect("current");
        assert_eq!(n, "prod");
        assert_eq!(p.server.as_deref(), Some("https://cic.example"));
    }

    #[test]
    fn the_file_round_trips_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("cic-config-test-{}", std::process::id()));
        let file = dir.join("config.toml");
        let mut c = Config::default();
        c.profiles.entry("lab".into()).or_default().token = Some("t".into());
        save(&file, &c).expect("save");
        assert_eq!(load(&file).expect("load"), c);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "tokens are not for other users");
        std::fs::write(&file, "[profiles.lab]\nsevrer = \"x\"\n").expect("write");
        let e = format!("{:#}", load(&file).unwrap_err());
        assert!(e.contains("sevrer"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(
            load(&dir.join("missing.toml")).expect("none"),
            Config::default()
        );
    }
}
