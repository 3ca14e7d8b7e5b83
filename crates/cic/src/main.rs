//! `cic`: the one binary. `cic server`, `cic edge`, `cic lab`, and the resource commands.

mod audit;
mod bench;
mod bench_flood;
mod bgp;
mod cli;
mod client;
mod commands;
mod config;
mod config_file;
mod credentials;
mod daemon;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::*;
use crate::client::Refused;
use crate::daemon::*;

/// `cic doctor`.
async fn doctor(
    server: Option<&str>,
    tls: &cic_client::tls::ClientTls,
    json: bool,
) -> anyhow::Result<()> {
    use cic_dataplane::doctor;
    let mut checks = doctor::kernel().await;
    checks.extend(doctor::sockets());
    checks.push(doctor::clock());
    if let Some(url) = server {
        let r = match cic_client::tls::http_client(
            url,
            tls,
            reqwest::Client::builder().timeout(Duration::from_secs(10)),
        ) {
            Ok(c) => match c
                .get(format!("{}/readyz", url.trim_end_matches('/')))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("answers, not ready: HTTP {}", resp.status())),
                Err(e) => Err(cic_client::tls::explain(&e, url, tls)),
            },
            Err(e) => Err(e.to_string()),
        };
        checks.push(doctor::Check {
            name: "the cic server",
            ok: r.is_ok(),
            detail: match r {
                Ok(()) => format!(
                    "{url} is ready{}",
                    if url.starts_with("https") {
                        " (TLS verified)"
                    } else {
                        ""
                    }
                ),
                Err(e) => e,
            },
            without: "the edge runs the config it kept, and nothing new",
        });
    }
    let sysctls = doctor::sysctls();
    if json {
        let v = serde_json::json!({
            "checks": checks.iter().map(|c| serde_json::json!({"name": c.name, "ok": c.ok,
                "detail": c.detail, "without": c.without})).collect::<Vec<_>>(),
            "sysctls": sysctls.iter().map(|(k, host, what)| serde_json::json!({"key": k,
                "host": host, "set": what})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for c in &checks {
        if c.ok {
            println!("  ok    {}: {}", c.name, c.detail);
        } else {
            println!(
                "  MISS  {}: {}\n        without it: {}",
                c.name, c.detail, c.without
            );
        }
    }
    println!("sysctls the edge sets (inside its namespaces; this host's value):");
    for (k, host, what) in &sysctls {
        println!("  {k} = {what} (host: {host})");
    }
    Ok(())
}

/// Writes the man page of `cmd` (named `name`, e.g. cic-edge-router-create) and of each of
/// its subcommands; returns how many.
fn man_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<usize> {
    let cmd = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> ExitCode {
    use clap::CommandFactory;
    // `cic server|edge --config FILE`: the file's keys become flags before the command
    // line's (which win).
    let args = match config_file::expand(&Cli::command(), std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let _ = LOG_JSON.set(cli.log_format.as_deref() == Some("json"));
    if let Some(l) = &cli.log_level {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(l) {
            eprintln!("error: --log-level {l:?}: {e}");
            return ExitCode::from(2);
        }
        let _ = LOG_LEVEL.set(l.clone());
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 3: the server refused the request (bad input, conflict, not found, …);
            // 1: anything else (unreachable, timeout, lab failure).
            if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Where the resource commands go and how they print: flags and environment first, then
/// the profile, then the defaults.
struct Resolved {
    server: String,
    token: String,
    tls: cic_client::tls::ClientTls,
    out: commands::Output,
}

fn resolve(cli: &Cli) -> anyhow::Result<Resolved> {
    let file = config::path();
    let cfg = config::load(&file)?;
    let (_, p) = cfg.active(cli.profile.as_deref())?;
    let format = match (&cli.format, cli.json) {
        (Some(f), _) => f.clone(),
        (None, true) => "json".to_string(),
        (None, false) => p.format.clone().unwrap_or_else(|| "table".into()),
    };
    let format = commands::Format::parse(&format).ok_or_else(|| {
        anyhow::anyhow!(
            "format {format:?} in {} is not one of {}",
            file.display(),
            commands::FORMATS.join(", ")
        )
    })?;
    Ok(Resolved {
        server: cli
            .server
            .clone()
            .or(p.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        token: cli.token.clone().or(p.token).unwrap_or_default(),
        tls: cic_client::tls::ClientTls {
            ca_cert: cli.ca_cert.clone().or(p.ca_cert.map(Into::into)),
            identity: None,
            insecure_http: cli.insecure_http,
        },
        out: commands::Output {
            format,
            quiet: cli.quiet,
            wait: !cli.no_wait,
            timeout: Duration::from_secs(cli.timeout),
            folder: std::env::var("CIC_FOLDER")
                .ok()
                .filter(|f| !f.is_empty())
                .or(p.folder),
        },
    })
}

fn api(r: &Resolved) -> anyhow::Result<client::Api> {
    if r.token.is_empty() {
        anyhow::bail!("no token: pass --token, set CIC_TOKEN or `cic config set token T`");
    }
    client::Api::new(&r.server, &r.token, r.tls.clone())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let needs_api = !matches!(
        cli.cmd,
        Cmd::Server(_)
            | Cmd::Edge(_)
            | Cmd::Lab(_)
            | Cmd::Config(_)
            | Cmd::Bench(_)
            | Cmd::Bgp(_)
            | Cmd::Pki(_)
            | Cmd::Completion { .. }
            | Cmd::Doctor
            | Cmd::Man { .. }
    );
    // Only the resource commands read the profile: a broken config file does not stop
    // a server or an edge.
    let r = if needs_api {
        Some(resolve(&cli)?)
    } else {
        None
    };
    let direct_server = cli
        .server
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let r = r.as_ref();
    let with_api = || -> anyhow::Result<(client::Api, &commands::Output)> {
        let r = r.ok_or_else(|| anyhow::anyhow!("internal: no API settings"))?;
        Ok((api(r)?, &r.out))
    };
    match cli.cmd {
        Cmd::Server(ServerCmd {
            sub:
                Some(ServerSub::RotateSecretsKey {
                    database,
                    secrets_key_file,
                    new_secrets_key_file,
                }),
            ..
        }) => {
            let old = cic_store::Sealer::read_key(&secrets_key_file)?;
            let new = open_or_create_key(&new_secrets_key_file)?;
            let store = cic_store::Store::open(&database)
                .await?
                .with_sealer(cic_store::Sealer::new(new).and_old(old));
            let n = store.reseal().await?;
            // No copy of a row sealed under the old key is left behind.
            store.compact().await?;
            println!(
                "{n} documents sealed again under key {}; start the servers with --secrets-key-file {}",
                store.sealing().0.as_ref().map(|s| s.key_id()).unwrap_or(""),
                new_secrets_key_file.display()
            );
            Ok(())
        }
        Cmd::Server(ServerCmd { args: a, .. }) => {
            init_tracing();
            let bgp = cic_model::edge::BgpSettings {
                min_hold_time_secs: a.min_hold_time,
                max_prefixes: a.max_prefixes,
                max_prefix_action: match a.max_prefix_action.as_str() {
                    "discard" => cic_model::edge::MaxPrefixAction::Discard,
                    "warn" => cic_model::edge::MaxPrefixAction::Warn,
                    _ => cic_model::edge::MaxPrefixAction::Teardown,
                },
                max_prefix_idle_secs: a.max_prefix_idle_minutes * 60,
                max_prefix_warning_percent: a.max_prefix_warning,
                flap_damping_max_secs: a.flap_damping_max_secs,
                bfd: cic_model::edge::BfdSettings {
                    enabled: a.bfd_interval_ms > 0,
                    interval_ms: a.bfd_interval_ms,
                    multiplier: a.bfd_multiplier,
                },
                graceful_restart_secs: a.graceful_restart_secs,
                rpki_caches: a.rpki_caches.clone(),
                rpki_reject_invalid_private: a.rpki_reject_invalid_private,
                ttl_security: a.ttl_security,
                bgp_role: match a.bgp_role.as_str() {
                    "announce" => cic_model::edge::BgpRoleMode::Announce,
                    "strict" => cic_model::edge::BgpRoleMode::Strict,
                    _ => cic_model::edge::BgpRoleMode::Off,
                },
                ..Default::default()
            };
            let usable = a.rate_limit >= 0.0
                && a.rate_limit.is_finite()
                && a.rate_burst >= 1.0
                && a.rate_burst.is_finite();
            if !usable {
                anyhow::bail!("--rate-limit must be 0 or more and --rate-burst 1 or more");
            }
            if a.cloud_asn == 0 || a.cloud_asn == 23456 {
                anyhow::bail!("--cloud-asn {} is not a usable ASN", a.cloud_asn);
            }
            for n in &a.treat_as_public {
                if let Err(why) = cic_model::validate::treatable_as_public(n) {
                    anyhow::bail!("--treat-as-public {n}: {why}");
                }
            }
            if a.bfd_min_interval_ms == 0 {
                anyhow::bail!(
                    "--bfd-min-interval-ms 0: give the shortest interval (50 ms or more)"
                );
            }
            if a.bfd_interval_ms > 0 && a.bfd_min_interval_ms > a.bfd_interval_ms {
                anyhow::bail!(
                    "--bfd-min-interval-ms {} is above --bfd-interval-ms {}: the default must be one a connection may ask for",
                    a.bfd_min_interval_ms,
                    a.bfd_interval_ms
                );
            }
            let config = cic_server::ServerConfig {
                cloud_asn: a.cloud_asn,
                bgp,
                treat_as_public: a.treat_as_public.clone(),
                bfd_min_interval_ms: a.bfd_min_interval_ms,
                peering_mtu: a.peering_mtu,
                max_connections_per_trunk: a.quota_private_connections_per_trunk,
                max_public_connections_per_trunk: a.quota_public_connections_per_trunk,
                max_prefixes_per_instance: a.quota_prefixes_per_instance,
                max_static_routes_per_connection: a.quota_static_routes_per_connection,
                console_secure_cookies: a.console_secure_cookies,
                history: cic_server::history::HistoryConfig {
                    recent: Duration::from_secs(a.history_minutes * 60),
                    day: Duration::from_secs(a.history_hours * 3600),
                    ..Default::default()
                },
                ..Default::default()
            };
            let admin = std::env::var("CIC_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            let edge_auth = cic_server::auth::EdgeAuth {
                certificates: a.client_ca.is_some(),
                tokens: a.client_ca.is_none() || a.allow_edge_tokens,
                issuer: match (&a.client_ca, &a.client_ca_key) {
                    (Some(c), Some(k)) => {
                        Some(std::sync::Arc::new(cic_server::pki::Ca::load(c, k)?))
                    }
                    _ => None,
                },
            };
            let config = cic_server::ServerConfig {
                edge_auth,
                audit_retention: Duration::from_secs(a.audit_retention_days * 86_400),
                limits: cic_server::limits::Limits {
                    rate: a.rate_limit,
                    burst: a.rate_burst,
                    long_polls: a.max_long_polls,
                },
                ..config
            };
            let listen = cic_server::listen::ListenOptions {
                addr: a.listen,
                tls: a.tls_cert.map(|cert| cic_server::listen::TlsFiles {
                    cert,
                    key: a.tls_key.unwrap_or_default(),
                    client_ca: a.client_ca,
                }),
                insecure_http: cli.insecure_http,
                max_connections: a.max_connections.max(1),
                header_timeout: Duration::from_secs(a.header_timeout_secs),
            };
            if a.check_config {
                return check_server_config(
                    &a.database,
                    a.secrets_key_file.as_deref(),
                    a.old_secrets_key_file.as_deref(),
                    &listen,
                );
            }
            let secrets = sealer(
                &a.database,
                a.secrets_key_file.as_deref(),
                a.old_secrets_key_file.as_deref(),
            )?;
            // SIGHUP reads the command line and config file again for what can change
            // without a restart.
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let on_reload: cic_server::OnReload = Box::new(move || reload_server(&argv));
            cic_server::serve(
                listen,
                &a.database,
                secrets,
                config,
                admin,
                Some(on_reload),
                shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Cmd::Edge(a) => {
            init_tracing();
            let started_with = edge_restart_settings(&cli.ca_cert, &cli.log_format, &a);
            let server = a.server.unwrap_or(direct_server);
            let tls = cic_client::tls::ClientTls {
                ca_cert: cli.ca_cert.clone(),
                identity: a.tls_cert.zip(a.tls_key),
                insecure_http: cli.insecure_http,
            };
            if a.check_config {
                cic_client::tls::http_client(&server, &tls, reqwest::Client::builder())?;
                println!(
                    "cic edge: config OK (server {server}{})",
                    if tls.identity.is_some() {
                        ", by certificate"
                    } else {
                        ", by token"
                    }
                );
                return Ok(());
            }
            let opts = cic_edge::EdgeOptions {
                server,
                token: a.token,
                tls,
                host_netns: a.netns,
                netns_prefix: a.netns_prefix,
                report_every: Duration::from_secs(a.report_every.max(1)),
                poll_wait: Duration::from_secs(25),
                metrics_listen: a.metrics_listen,
                state_dir: (a.state_dir != "none").then(|| a.state_dir.into()),
            };
            // SIGHUP reads the command line and config file again: log levels change
            // now; a change to what the agent was started with is named, for a restart.
            // (Its certificate files are read again whenever they change.) Handled
            // before anything else starts, so no SIGHUP ends the agent.
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let agent = cic_edge::Agent::new(opts).await?;
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match reload_edge(&argv, &started_with) {
                        Ok(done) => tracing::info!("config reloaded: {done}"),
                        Err(e) => tracing::warn!("config not reloaded, nothing changed: {e}"),
                    }
                }
            });
            agent.run(shutdown_signal()).await;
            Ok(())
        }
        Cmd::Bgp(b) => bgp::run(b, cli.json || cli.format.as_deref() == Some("json")).await,
        Cmd::Lab(l) => match l {
            LabCmd::Up {
                pops,
                server_args,
                public,
            } => cic_lab::up_and_explain(pops, &server_args, public).await,
            LabCmd::Demo { pops, public, keep } => cic_lab::demo(pops, public, keep).await,
            LabCmd::Http { netns, listens } => cic_lab::public::serve_http(&netns, &listens),
            LabCmd::Down => cic_lab::down(),
            LabCmd::Failover {
                bfd: Some(timers),
                runs,
                side,
                standby,
                public,
            } => {
                cic_lab::failover::set_bfd(&timers)?;
                match (standby, public) {
                    (Some(how), _) => cic_lab::failover::run_standby(runs, how),
                    (None, true) => cic_lab::public_failover::run(runs, side),
                    (None, false) => cic_lab::failover::run(runs, side),
                }
            }
            LabCmd::Failover {
                runs,
                standby: Some(how),
                ..
            } => cic_lab::failover::run_standby(runs, how),
            LabCmd::Failover {
                runs,
                side,
                public: true,
                ..
            } => cic_lab::public_failover::run(runs, side),
            LabCmd::Failover { runs, side, .. } => cic_lab::failover::run(runs, side),
            LabCmd::RestartEdge { runs } => cic_lab::failover::restart_runs(runs),
            LabCmd::Fabric {
                edge_id,
                netns,
                underlay_dev,
                public_services,
            } => {
                init_tracing();
                let tls = cic_client::tls::ClientTls {
                    ca_cert: cli.ca_cert.clone(),
                    identity: None,
                    insecure_http: cli.insecure_http,
                };
                cic_lab::fabric::run(
                    &direct_server,
                    &tls,
                    cli.token.as_deref().unwrap_or_default(),
                    cic_lab::fabric::Segments {
                        edge_id: &edge_id,
                        netns: &netns,
                        underlay_dev: &underlay_dev,
                        public_services,
                    },
                    shutdown_signal(),
                )
                .await
            }
        },
        Cmd::Config(c) => c.run(cli.profile.as_deref()),
        Cmd::Doctor => {
            let server = cli.server.clone();
            let tls = cic_client::tls::ClientTls {
                ca_cert: cli.ca_cert.clone(),
                identity: None,
                insecure_http: cli.insecure_http,
            };
            doctor(
                server.as_deref(),
                &tls,
                cli.json || cli.format.as_deref() == Some("json"),
            )
            .await
        }
        Cmd::Completion { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cic", &mut buf);
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match std::io::Write::write_all(&mut std::io::stdout(), &buf) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Cmd::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)?;
            let n = man_pages(&Cli::command(), "cic", &dir)?;
            println!("{n} man pages in {}", dir.display());
            Ok(())
        }
        Cmd::Pki(PkiCmd::Init {
            dir,
            names,
            days,
            force,
        }) => credentials::pki_init(&dir, &names, days, force),
        Cmd::Bench(BenchCmd::Flood { seconds, flooders }) => {
            if seconds == 0 || flooders == 0 {
                anyhow::bail!("--seconds and --flooders must be at least 1");
            }
            bench_flood::flood(bench_flood::Options { seconds, flooders }).await
        }
        Cmd::Bench(BenchCmd::Api {
            connections,
            database,
            gets,
            list_rounds,
        }) => {
            if connections == 0 || gets == 0 || list_rounds == 0 {
                anyhow::bail!("--connections, --gets and --list-rounds must be at least 1");
            }
            bench::api(bench::Options {
                connections,
                database,
                gets,
                list_rounds,
            })
            .await
        }
        Cmd::Bench(BenchCmd::Bgp {
            mode,
            prefixes,
            peers,
            per_update,
            sets,
            speakers,
        }) => {
            let mode = match mode.as_str() {
                "ingest" => cic_speaker::bench::Mode::Ingest,
                "monitor" => cic_speaker::bench::Mode::Monitor,
                "export" => cic_speaker::bench::Mode::Export,
                other => anyhow::bail!("--mode {other:?}: ingest, monitor or export"),
            };
            if sets > prefixes {
                anyhow::bail!("--sets {sets}: at most --prefixes ({prefixes})");
            }
            let feed = cic_speaker::bench::Feed {
                prefixes,
                peers,
                per_update,
                sets,
            };
            let exe = std::env::current_exe()?;
            let results = tokio::task::spawn_blocking(move || {
                cic_speaker::bench::run(mode, &feed, &speakers, &exe)
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&results)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Scale {
            connections,
            keep,
            bring_up_only,
            bfd_ms,
            bfd_watch_secs,
            in_flight,
            report_every,
            flap_damping_max_secs,
        }) => {
            let opts = cic_lab::scale::Options {
                connections,
                bring_up_only,
                bfd_ms,
                bfd_watch_secs,
                in_flight: usize::from(in_flight),
                report_every,
                flap_damping_max_secs,
            };
            let run = cic_lab::scale::bench(opts, keep).await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Routes { routes, rounds }) => {
            let report = cic_dataplane::bench::routes(routes as usize, rounds as usize).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Cmd::Bench(BenchCmd::Provision { runs }) => {
            if runs == 0 {
                anyhow::bail!("--runs must be at least 1");
            }
            cic_lab::bench::provision(runs).await
        }
        Cmd::Pop(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::EdgeRouter(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Trunk(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Connection(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::PublicConnection(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Partner(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::CloudService(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::RoutingInstance(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Operation(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Folder(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::ApiKey(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
        Cmd::Audit(c) => {
            let (a, o) = with_api()?;
            c.run(&a, o).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command and subcommand says what it does in its help (and so in its man page
    /// and its completion).
    #[test]
    fn every_subcommand_has_help_text() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for s in c.get_subcommands().filter(|s| !s.is_hide_set()) {
                let p = format!("{path} {}", s.get_name());
                if s.get_about().is_none() {
                    missing.push(p.clone());
                }
                walk(s, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "cic", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
