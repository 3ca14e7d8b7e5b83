//! `cic bgp`: our BGP speaker run by hand against a peer, and what it learned.

use crate::cli::{BgpCmd, BgpShow, NeighborRoutes};
use crate::daemon::{init_tracing, shutdown_signal};

pub(crate) async fn run(cmd: BgpCmd, json_flag: bool) -> anyhow::Result<()> {
    use cic_speaker::control::{self, Request};
    let show = |b: Vec<u8>| -> anyhow::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&b)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    // Routes as JSON (`json`), or as a table.
    let routes = |body: Vec<u8>, json: bool| -> anyhow::Result<()> {
        if json || json_flag {
            return show(body);
        }
        let routes: Vec<control::Route> = serde_json::from_slice(&body)?;
        print!("{}", control::routes_table(&routes));
        Ok(())
    };
    match cmd {
        BgpCmd::Run {
            config,
            socket,
            check,
        } => {
            let cfg = cic_speaker::Config::load(&config).map_err(anyhow::Error::msg)?;
            if check {
                println!(
                    "{}: AS{}, {} neighbors, {} originated prefixes",
                    config.display(),
                    cfg.params.local_asn,
                    cfg.neighbors.len(),
                    cfg.params.announce.len()
                );
                return Ok(());
            }
            init_tracing();
            let mut speaker = cic_speaker::Speaker::start(cfg, &socket)
                .await
                .map_err(anyhow::Error::msg)?;
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            let stop = shutdown_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = hup.recv() => match cic_speaker::Config::load(&config) {
                        Ok(cfg) => match speaker.reload(cfg).await {
                            Ok(done) => tracing::info!("reloaded {}: {done}", config.display()),
                            Err(e) => tracing::warn!("reload refused: {e}"),
                        },
                        // A config that does not load changes nothing; the speaker runs on.
                        Err(e) => tracing::warn!("reload refused: {e}"),
                    },
                }
            }
            speaker.stop("cic bgp run is stopping").await;
            Ok(())
        }
        BgpCmd::Show(BgpShow::Summary { socket }) => {
            let body = control::query(&socket, Request::Summary)
                .await
                .map_err(anyhow::Error::msg)?;
            if json_flag {
                return show(body);
            }
            let s: control::Summary = serde_json::from_slice(&body)?;
            print!("{}", control::summary_table(&s));
            Ok(())
        }
        BgpCmd::Show(BgpShow::Routes {
            socket,
            count,
            json,
        }) => {
            if count {
                let body = control::query(&socket, Request::Count)
                    .await
                    .map_err(anyhow::Error::msg)?;
                return show(body);
            }
            let body = control::query(&socket, Request::Routes)
                .await
                .map_err(anyhow::Error::msg)?;
            routes(body, json)
        }
        BgpCmd::Show(BgpShow::Neighbor {
            address,
            which,
            socket,
            json,
        }) => {
            let which = match which {
                NeighborRoutes::Received => control::Which::Received,
                NeighborRoutes::Accepted => control::Which::Accepted,
                NeighborRoutes::Advertised => control::Which::Advertised,
            };
            let body = control::query(&socket, Request::Neighbor { address, which })
                .await
                .map_err(anyhow::Error::msg)?;
            routes(body, json)
        }
    }
}
