//! The kernel's own memory, from `/proc/meminfo`: what the scale benchmark sets beside the
//! edge agent's RSS, to say whether a connection costs the agent more than its kernel
//! objects (namespace, links, addresses, routes, sockets) cost the kernel.
//!
//! Machine-wide figures: every process's kernel objects count, so a benchmark reads them
//! around a change that only it makes, and says what else changed meanwhile.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

/// `/proc/meminfo`'s kernel fields, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelMemory {
    /// Slab the kernel cannot give back under pressure (net devices, sockets, netns,
    /// sysctl tables, routes, kernfs nodes…).
    pub slab_unreclaimable: i64,
    /// Slab it can (dentries and inodes, mostly: /proc and /sys entries of the
    /// namespaces and links, and every file anyone touched meanwhile).
    pub slab_reclaimable: i64,
    pub percpu: i64,
    pub kernel_stack: i64,
    pub page_tables: i64,
    pub vmalloc: i64,
}

impl KernelMemory {
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/meminfo").context("/proc/meminfo")?;
        Self::parse(&text).context("/proc/meminfo: a kernel field is missing")
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| -> Option<i64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        Some(Self {
            slab_unreclaimable: field("SUnreclaim")?,
            slab_reclaimable: field("SReclaimable")?,
            percpu: field("Percpu")?,
            kernel_stack: field("KernelStack")?,
            page_tables: field("PageTables")?,
            vmalloc: field("VmallocUsed")?,
        })
    }

    /// What the kernel must keep: everything but the reclaimable slab.
    pub fn held(&self) -> i64 {
        self.slab_unreclaimable + self.percpu + self.kernel_stack + self.page_tables + self.vmalloc
    }

    /// Reads once the kernel has freed what was deleted, at most `within` (then `false`
    /// beside the reading): a deleted namespace is freed by the kernel's clean-up worker
    /// after `ip netns del` returns, in batches with pauses between them, so the reading
    /// waits until the unreclaimable slab is within 1 MiB over four reads 500 ms apart
    /// (one quiet interval is not enough: 500 namespaces read as 7 % freed; four read
    /// 336 of 341 KiB each, `scripts/kernel-memory-probe`). The `net_namespace` slab's
    /// object count is no help: SLUB's per-CPU slabs make it read 49 with a thousand alive.
    pub async fn settled(within: Duration) -> Result<(Self, bool)> {
        let start = Instant::now();
        let mut anchor = Self::read()?;
        let mut quiet = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = Self::read()?;
            if (anchor.slab_unreclaimable - now.slab_unreclaimable).abs() < 1024 {
                quiet += 1;
            } else {
                (quiet, anchor) = (0, now);
            }
            if quiet >= 3 {
                return Ok((now, true));
            }
            if start.elapsed() > within {
                return Ok((now, false));
            }
        }
    }
}

/// What a change cost the kernel, KiB per connection (the difference of two readings
/// divided by the connections it concerned).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerConnection {
    /// Everything but the reclaimable slab.
    pub held_kib: f64,
    pub slab_unreclaimable_kib: f64,
    pub percpu_kib: f64,
    /// Reclaimable slab, which the kernel gives back under pressure.
    pub slab_reclaimable_kib: f64,
}

impl PerConnection {
    pub fn between(before: &KernelMemory, after: &KernelMemory, connections: usize) -> Self {
        let n = connections.max(1) as f64;
        let per = |a: i64, b: i64| (a - b) as f64 / n;
        Self {
            held_kib: per(after.held(), before.held()),
            slab_unreclaimable_kib: per(after.slab_unreclaimable, before.slab_unreclaimable),
            percpu_kib: per(after.percpu, before.percpu),
            slab_reclaimable_kib: per(after.slab_reclaimable, before.slab_reclaimable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24576000 kB
Slab:             798604 kB
SReclaimable:     679404 kB
SUnreclaim:       119200 kB
KernelStack:        1736 kB
PageTables:         1372 kB
SecPageTables:         0 kB
VmallocUsed:       10220 kB
Percpu:              848 kB
";

    #[test]
    fn the_kernel_fields_are_read_by_name_and_not_by_a_longer_one() {
        let m = KernelMemory::parse(MEMINFO).expect("every field");
        assert_eq!(m.slab_unreclaimable, 119_200);
        assert_eq!(m.slab_reclaimable, 679_404);
        // "SecPageTables" is not "PageTables".
        assert_eq!(m.page_tables, 1_372);
        assert_eq!(m.held(), 119_200 + 848 + 1_736 + 1_372 + 10_220);
        assert!(KernelMemory::parse("MemTotal: 1 kB\n").is_none());
    }

    #[test]
    fn a_difference_is_divided_among_the_connections() {
        let before = KernelMemory::parse(MEMINFO).expect("fields");
        let after = KernelMemory {
            slab_unreclaimable: before.slab_unreclaimable + 200_000,
            percpu: before.percpu + 6_000,
            ..before
        };
        let p = PerConnection::between(&before, &after, 1_000);
        assert_eq!(p.slab_unreclaimable_kib, 200.0);
        assert_eq!(p.percpu_kib, 6.0);
        assert_eq!(p.held_kib, 206.0);
        assert_eq!(p.slab_reclaimable_kib, 0.0);
    }
}
