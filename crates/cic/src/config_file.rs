//! `cic server --config FILE` and `cic edge --config FILE`: a TOML file whose keys are the
//! command's long flags (`tls-cert = "/etc/cic/pki/server.crt"`, `rate-limit = 100`,
//! `allow-edge-tokens = true`). Flags on the command line win over the environment, the
//! environment over the file, the file over the defaults. An unknown key, or a value the
//! flag would refuse, is an error naming the file and the key.
//!
//! The file is turned into flags placed before the command line's, so one parser (clap's)
//! judges every value, wherever it came from.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Command};

/// The subcommands that take `--config`.
const WITH_CONFIG: &[&str] = &["server", "edge"];

/// The value of `--config` in `args` (after the subcommand), if any.
fn config_path(args: &[OsString]) -> Option<(usize, OsString)> {
    let mut it = args.iter().enumerate();
    while let Some((i, a)) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            return it.next().map(|(_, v)| (i, v.clone()));
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some((i, v.into()));
        }
    }
    None
}

/// Flags of `sub` as the file says them, for the keys neither the command line nor the
/// environment sets.
fn flags_from_file(sub: &Command, file: &Path, given: &[OsString]) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message()))?;
    let on_line = |long: &str| {
        given.iter().any(|a| {
            let a = a.to_string_lossy();
            a == format!("--{long}") || a.starts_with(&format!("--{long}="))
        })
    };
    let mut out = Vec::new();
    // The command's own flags, and of the global ones those that concern a server or an
    // edge (not the output format of the resource commands).
    let keys_of = || {
        sub.get_arguments().filter(|a| {
            !a.is_hide_set()
                && (!a.is_global_set()
                    || matches!(
                        a.get_long(),
                        Some("insecure-http" | "ca-cert" | "log-level" | "log-format")
                    ))
        })
    };
    for (key, value) in &table {
        let Some(arg) = keys_of().find(|a| a.get_long() == Some(key.as_str())) else {
            let mut keys: Vec<&str> = keys_of()
                .filter_map(|a| a.get_long())
                .filter(|l| !matches!(*l, "config" | "check-config" | "help"))
                .collect();
            keys.sort();
            bail!(
                "{}: unknown key `{key}`; the keys are the flags of `cic {}`: {}",
                file.display(),
                sub.get_name(),
                keys.join(", ")
            );
        };
        if matches!(key.as_str(), "config" | "check-config") {
            bail!(
                "{}: `{key}` is a flag of the command line only",
                file.display()
            );
        }
        if on_line(key) {
            continue;
        }
        if let Some(env) = arg.get_env()
            && std::env::var_os(env).is_some_and(|v| !v.is_empty())
        {
            continue;
        }
        let flag = OsString::from(format!("--{key}"));
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "{}: key `{key}`: {} is not a value this flag takes",
                    file.display(),
                    other.type_str()
                ),
            })
        };
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(true)) => out.push(flag),
            (ArgAction::SetTrue, toml::Value::Boolean(false)) => {}
            (ArgAction::SetTrue, other) => bail!(
                "{}: key `{key}` is true or false, not {other}",
                file.display()
            ),
            (_, toml::Value::Array(items)) => {
                for v in items {
                    out.push(flag.clone());
                    out.push(scalar(v)?.into());
                }
            }
            (_, v) => {
                out.push(flag);
                out.push(scalar(v)?.into());
            }
        }
    }
    Ok(out)
}

/// `args` (the process's) with the flags of `--config FILE` put in, before the command
/// line's own, for `cic server` and `cic edge`. Other commands pass through.
pub fn expand(root: &Command, args: Vec<OsString>) -> Result<Vec<OsString>> {
    // The subcommand is the first argument that names one (global flags may come first).
    let Some(at) = args
        .iter()
        .position(|a| WITH_CONFIG.contains(&a.to_string_lossy().as_ref()))
    else {
        return Ok(args);
    };
    let name = args[at].to_string_lossy().to_string();
    let Some((_, path)) = config_path(&args[at + 1..]) else {
        return Ok(args);
    };
    // Built, so that the global flags are the subcommand's too.
    let mut root = root.clone();
    root.build();
    let Some(sub) = root.find_subcommand(&name) else {
        return Ok(args);
    };
    let from_file = flags_from_file(sub, Path::new(&path), &args[at + 1..])?;
    let mut out = args[..=at].to_vec();
    out.extend(from_file);
    out.extend_from_slice(&args[at + 1..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cmd() -> Command {
        Command::new("cic").subcommand(
            Command::new("server")
                .arg(Arg::new("config").long("config"))
                .arg(Arg::new("listen").long("listen"))
                .arg(Arg::new("rate-limit").long("rate-limit"))
                .arg(Arg::new("name").long("name").action(ArgAction::Append))
                .arg(
                    Arg::new("insecure")
                        .long("insecure")
                        .action(ArgAction::SetTrue),
                )
                .arg(Arg::new("key").long("key").env("CIC_TEST_CONFIG_FILE_KEY")),
        )
    }

    fn file(text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "cic-config-file-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&p, text).expect("write");
        p
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_keys_become_flags_and_the_command_line_wins() {
        let f = file(
            "listen = \"0.0.0.0:8443\"\nrate-limit = 5\nname = [\"a\", \"b\"]\ninsecure = true\n",
        );
        let out = expand(
            &cmd(),
            args(&[
                "cic",
                "server",
                "--config",
                f.to_str().expect("utf-8"),
                "--rate-limit",
                "7",
            ]),
        )
        .expect("expand");
        let m = cmd().get_matches_from(out);
        let s = m.subcommand_matches("server").expect("server");
        assert_eq!(
            s.get_one::<String>("listen").map(String::as_str),
            Some("0.0.0.0:8443")
        );
        assert_eq!(
            s.get_one::<String>("rate-limit").map(String::as_str),
            Some("7")
        );
        let names: Vec<&String> = s.get_many::<String>("name").expect("names").collect();
        assert_eq!(names, ["a", "b"]);
        assert!(s.get_flag("insecure"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_the_key() {
        let f = file("listen = \"x\"\nlisten-on = 1\n");
        let e = expand(
            &cmd(),
            args(&["cic", "server", "--config", f.to_str().expect("utf-8")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown key `listen-on`") && e.contains(f.to_str().expect("utf-8")),
            "{e}"
        );
        assert!(e.contains("listen, name"), "the keys are listed: {e}");
        let f = file("insecure = \"yes\"\n");
        let e = expand(
            &cmd(),
            args(&["cic", "server", "--config", f.to_str().expect("utf-8")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`insecure` is true or false"), "{e}");
        let f = file("listen = { a = 1 }\n");
        let e = expand(
            &cmd(),
            args(&["cic", "server", "--config", f.to_str().expect("utf-8")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `listen`: table"), "{e}");
        let f = file("listen = \n");
        let e = expand(
            &cmd(),
            args(&["cic", "server", "--config", f.to_str().expect("utf-8")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(f.to_str().expect("utf-8")), "{e}");
        let e = expand(
            &cmd(),
            args(&["cic", "server", "--config", "/nonexistent/cic.toml"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cannot read the config file /nonexistent/cic.toml"),
            "{e}"
        );
    }

    #[test]
    fn other_commands_and_no_config_pass_through() {
        let a = args(&["cic", "pop", "list", "--config", "x"]);
        assert_eq!(expand(&cmd(), a.clone()).expect("same"), a);
        let a = args(&["cic", "server", "--listen", "1"]);
        assert_eq!(expand(&cmd(), a.clone()).expect("same"), a);
    }
}
