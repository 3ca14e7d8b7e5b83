//! A cold start: the edge agent killed, its namespaces deleted (a rebooted box), and the
//! agent started again with the config on the server.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{WAIT, metric, ping_until_answered, wait_established};
use crate::Pop;
use crate::kmem::{KernelMemory, PerConnection};

/// A rebooted edge box: the agent killed, every namespace it made deleted (and the BFD
/// state it keeps in tmpfs), then started again with the config on the server. Seconds
/// from the start until every session is Established, and until the sample pings.
pub(super) async fn cold_start(
    pop: Pop,
    http: &reqwest::Client,
    metrics: &str,
    want: (usize, usize),
    n: usize,
) -> Result<ColdStart> {
    let (pid, args, env) = crate::failover::edge_process(pop)?;
    let kernel_with = KernelMemory::read()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    cic_peers::wait_until(
        Duration::from_secs(10),
        "the killed agent to be gone",
        || crate::is_zombie(pid).then_some(()),
    )?;
    let prefix = format!("{}-", pop.ns());
    let namespaces = cic_dataplane::netns::list(&prefix)?;
    let made = namespaces.len();
    eprintln!("cold start: deleting the {made} namespaces the edge made");
    use futures::stream::{self, StreamExt};
    let failed: Vec<String> = stream::iter(namespaces)
        .map(|ns| async move { cic_dataplane::purge(&ns).await.err().map(|e| e.to_string()) })
        .buffer_unordered(16)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    if let Some(e) = failed.first() {
        bail!("deleting the edge's namespaces: {e}");
    }
    let _ = fs::remove_dir_all("/run/cic-edge/bfd");
    // Before the agent starts again (the sessions are down already): the kernel's
    // clean-up of the deleted namespaces, waited for so that what it gave back is read.
    let settling = Instant::now();
    let (kernel_without, settled) = KernelMemory::settled(Duration::from_secs(60)).await?;
    eprintln!(
        "cold start: the kernel's clean-up of {made} namespaces {} after {:.1} s",
        if settled {
            "read as done"
        } else {
            "NOT done (read anyway)"
        },
        settling.elapsed().as_secs_f64()
    );
    let kernel_freed = PerConnection::between(&kernel_without, &kernel_with, made);
    let processes0 = crate::cpu::ProcessTimes::read(&crate::processes()?);
    let cpu0 = crate::cpu::CpuTimes::read()?;
    let t = Instant::now();
    crate::failover::start_edge_again(pop, &args, &env)?;
    let established = wait_established(http, metrics, want, t).await?;
    let cpu = crate::cpu::CpuSpent::between(&cpu0, &crate::cpu::CpuTimes::read()?);
    let by_process = super::by_process("cold start", &processes0)?;
    eprintln!("cold start: {cpu}");
    ping_until_answered(n, WAIT)?;
    let pinged = t.elapsed();
    // The agent started again made every instance in one apply: how many at once.
    let at_once = metric(http, metrics, "cic_edge_instances_reconciled_at_once_peak")
        .await
        .context("the edge's cic_edge_instances_reconciled_at_once_peak")?
        as usize;
    let kernel_taken = PerConnection::between(&kernel_without, &KernelMemory::read()?, made);
    eprintln!(
        "cold start: every session Established at {:.1} s, the sample pinged at {:.1} s; at most {at_once} instances made at once; the kernel's memory per instance: {:.0} KiB held freed by the clean-up, {:.0} taken again",
        established.as_secs_f64(),
        pinged.as_secs_f64(),
        kernel_freed.held_kib,
        kernel_taken.held_kib
    );
    Ok(ColdStart {
        established: established.as_secs_f64(),
        pinged: pinged.as_secs_f64(),
        at_once,
        kernel_freed,
        kernel_taken,
        cpu,
        by_process,
    })
}

/// What [`cold_start`] measured.
pub(super) struct ColdStart {
    pub(super) established: f64,
    pub(super) pinged: f64,
    pub(super) at_once: usize,
    pub(super) kernel_freed: PerConnection,
    pub(super) kernel_taken: PerConnection,
    pub(super) cpu: crate::cpu::CpuSpent,
    pub(super) by_process: std::collections::BTreeMap<String, f64>,
}
