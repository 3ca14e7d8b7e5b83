//! What `cic server` and `cic edge` need beyond their flags: the settings SIGHUP reloads,
//! the server's config check and sealing key, logs whose levels change at run time, and
//! the signals that stop them.

use std::time::Duration;

use crate::cli::{Cli, Cmd, EdgeArgs, ServerCmd};
use crate::config_file;

/// The settings SIGHUP changes, read again from `argv` and its config file.
pub(crate) fn reload_server(argv: &[std::ffi::OsString]) -> Result<cic_server::Reloadable, String> {
    use clap::{CommandFactory, Parser};
    let args = config_file::expand(&Cli::command(), argv.to_vec()).map_err(|e| format!("{e:#}"))?;
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Cmd::Server(ServerCmd { args: a, .. }) = cli.cmd else {
        return Err("not a server command line".into());
    };
    let usable = a.rate_limit >= 0.0
        && a.rate_limit.is_finite()
        && a.rate_burst >= 1.0
        && a.rate_burst.is_finite();
    if !usable {
        return Err("rate-limit must be 0 or more and rate-burst 1 or more".into());
    }
    set_log_level(cli.log_level.as_deref().unwrap_or("info"))?;
    Ok(cic_server::Reloadable {
        limits: cic_server::limits::Limits {
            rate: a.rate_limit,
            burst: a.rate_burst,
            long_polls: a.max_long_polls,
        },
        audit_retention: Duration::from_secs(a.audit_retention_days * 86_400),
    })
}

/// What `cic edge` was started with that only a restart changes, by flag name (the
/// token shown only as given or not).
pub(crate) fn edge_restart_settings(
    ca_cert: &Option<std::path::PathBuf>,
    log_format: &Option<String>,
    a: &EdgeArgs,
) -> Vec<(&'static str, String)> {
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    vec![
        ("server", a.server.clone().unwrap_or_default()),
        ("token", a.token.clone().unwrap_or_default()),
        ("tls-cert", path(&a.tls_cert)),
        ("tls-key", path(&a.tls_key)),
        ("ca-cert", path(ca_cert)),
        ("netns", a.netns.clone().unwrap_or_default()),
        ("netns-prefix", a.netns_prefix.clone()),
        ("report-every", a.report_every.to_string()),
        (
            "metrics-listen",
            a.metrics_listen.map(|m| m.to_string()).unwrap_or_default(),
        ),
        ("state-dir", a.state_dir.clone()),
        ("log-format", log_format.clone().unwrap_or_default()),
    ]
}

/// SIGHUP of `cic edge`: `argv` and its config file read again; the log levels put in
/// force; the settings that differ from `started_with` named (they wait for a restart).
pub(crate) fn reload_edge(
    argv: &[std::ffi::OsString],
    started_with: &[(&'static str, String)],
) -> Result<String, String> {
    use clap::{CommandFactory, Parser};
    let args = config_file::expand(&Cli::command(), argv.to_vec()).map_err(|e| format!("{e:#}"))?;
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let Cmd::Edge(a) = &cli.cmd else {
        return Err("not an edge command line".into());
    };
    let now = edge_restart_settings(&cli.ca_cert, &cli.log_format, a);
    let level = cli.log_level.as_deref().unwrap_or("info");
    set_log_level(level)?;
    let waiting: Vec<&str> = now
        .iter()
        .zip(started_with)
        .filter(|(n, w)| n.1 != w.1)
        .map(|(n, _)| n.0)
        .collect();
    Ok(if waiting.is_empty() {
        format!("log level {level}")
    } else {
        format!(
            "log level {level}; changed, in force after a restart: {}",
            waiting.join(", ")
        )
    })
}

/// `cic server --check-config`: everything the server would read before serving, read.
pub(crate) fn check_server_config(
    database: &str,
    key_file: Option<&std::path::Path>,
    old: Option<&std::path::Path>,
    listen: &cic_server::listen::ListenOptions,
) -> anyhow::Result<()> {
    if !(database.starts_with("sqlite:")
        || database.starts_with("postgres://")
        || database.starts_with("postgresql://"))
    {
        anyhow::bail!("--database {database:?} is not sqlite://PATH or postgres://…");
    }
    let tls = cic_server::listen::check(listen)?;
    let key = match key_file {
        Some(p) if p.exists() => {
            cic_store::Sealer::read_key(p)?;
            format!("secrets key {}", p.display())
        }
        Some(p) => format!(
            "secrets key {} (to be made at the first start)",
            p.display()
        ),
        None if database.starts_with("postgres") => anyhow::bail!(
            "--secrets-key-file is required with PostgreSQL: every server on the database must seal secrets with the same key"
        ),
        None => "secrets key beside the SQLite file".to_string(),
    };
    if let Some(o) = old {
        cic_store::Sealer::read_key(o)?;
    }
    println!(
        "cic server: config OK ({}://{}, {key})",
        if tls.is_some() { "https" } else { "http" },
        listen.addr
    );
    Ok(())
}

/// The key in `path`, or a new one written there (mode 0600) if there is no file.
pub(crate) fn open_or_create_key(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    if path.exists() {
        return Ok(cic_store::Sealer::read_key(path)?);
    }
    let k = cic_store::Sealer::create_key_file(path)?;
    eprintln!(
        "created a new secrets key in {} (mode 0600): keep it, and a copy of it apart from the database",
        path.display()
    );
    Ok(k)
}

/// What seals the server's secrets: the key file given, or beside a SQLite file, or (an
/// in-memory database) a key that dies with it.
pub(crate) fn sealer(
    database: &str,
    key_file: Option<&std::path::Path>,
    old: Option<&std::path::Path>,
) -> anyhow::Result<cic_store::Sealer> {
    let path = match key_file {
        Some(p) => p.to_path_buf(),
        None if database.contains(":memory:") => {
            let mut k = [0u8; 32];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut k)?;
            return Ok(cic_store::Sealer::new(k));
        }
        None => match database
            .strip_prefix("sqlite://")
            .or_else(|| database.strip_prefix("sqlite:"))
        {
            Some(file) => {
                let file = file.split('?').next().unwrap_or(file);
                std::path::PathBuf::from(format!("{file}.secrets-key"))
            }
            None => anyhow::bail!(
                "--secrets-key-file is required with PostgreSQL: every server on the database must seal secrets with the same key (`umask 077; openssl rand -hex 32 > /etc/cic/secrets.key`)"
            ),
        },
    };
    let mut s = cic_store::Sealer::new(open_or_create_key(&path)?);
    if let Some(o) = old {
        s = s.and_old(cic_store::Sealer::read_key(o)?);
    }
    Ok(s)
}

/// `--log-format json` (set once in `main`).
pub(crate) static LOG_JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
/// `--log-level` (set once in `main`).
pub(crate) static LOG_LEVEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) type LogFilter =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;
/// Changes the log levels of the running process.
pub(crate) static LOG_FILTER: std::sync::OnceLock<LogFilter> = std::sync::OnceLock::new();

/// Logs of `cic server`, `cic edge` and the lab's daemons: levels per module
/// (`--log-level`, `RUST_LOG`: `info`, `info,cic_bgp=debug`; changed at run time by
/// [`set_log_level`]), text or one JSON object a line (`--log-format json`).
pub(crate) fn init_tracing() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = LOG_LEVEL.get().cloned().unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let json = LOG_JSON.get().copied().unwrap_or(false);
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).boxed()
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

/// Puts new log levels in force; an unreadable directive is an error naming it.
pub(crate) fn set_log_level(level: &str) -> Result<(), String> {
    let f = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("log-level {level:?}: {e}"))?;
    match LOG_FILTER.get() {
        Some(h) => h.reload(f).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
