//! The machine's CPU time by kind (`/proc/stat`'s first line) over a span: what the scale
//! benchmark sets beside a phase's wall time, so that a slow run says whether the machine
//! was busy with the benchmark's own processes, idle (waiting on something), or not given
//! its CPUs at all (steal: a virtual machine's host ran something else); and each of the
//! lab's processes' CPU time (`/proc/<pid>/stat`), which says whose it was.

use anyhow::{Context, Result};
use serde::Serialize;

/// Cumulative CPU time of every CPU, in clock ticks (USER_HZ, 100 a second on Linux).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

/// Ticks a second as `/proc/stat` counts them (USER_HZ, which `sysconf(_SC_CLK_TCK)`
/// says; 100 on every Linux architecture that runs this, if it cannot).
fn ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100.0, |t| t as f64)
}

impl CpuTimes {
    pub fn read() -> Result<Self> {
        let text = std::fs::read_to_string("/proc/stat").context("/proc/stat")?;
        Self::parse(&text).context("/proc/stat: no cpu line")
    }

    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        Some(Self {
            user: at(0),
            nice: at(1),
            system: at(2),
            idle: at(3),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
        })
    }
}

/// CPU seconds, all CPUs together, spent between two readings.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuSpent {
    /// User time (nice included).
    pub user_secs: f64,
    /// System time, interrupts included.
    pub system_secs: f64,
    pub idle_secs: f64,
    pub iowait_secs: f64,
    /// Time the hypervisor gave the CPUs to something else.
    pub steal_secs: f64,
}

impl CpuSpent {
    pub fn between(before: &CpuTimes, after: &CpuTimes) -> Self {
        let ticks = ticks();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / ticks;
        Self {
            user_secs: d(after.user + after.nice, before.user + before.nice),
            system_secs: d(
                after.system + after.irq + after.softirq,
                before.system + before.irq + before.softirq,
            ),
            idle_secs: d(after.idle, before.idle),
            iowait_secs: d(after.iowait, before.iowait),
            steal_secs: d(after.steal, before.steal),
        }
    }
}

impl std::fmt::Display for CpuSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU user {:.1} s, system {:.1} s, idle {:.1} s, iowait {:.1} s, steal {:.1} s",
            self.user_secs, self.system_secs, self.idle_secs, self.iowait_secs, self.steal_secs
        )
    }
}

/// Each of the lab's processes' CPU ticks at one reading (user and system, and those of
/// children it waited for, such as an agent's `tc`), by its name in the lab's pid file and
/// its pid; `bench` is the process running the benchmark, which drives the API and reads
/// the routers. [`ProcessTimes::since`] gives the seconds between two readings.
#[derive(Debug, Clone, Default)]
pub struct ProcessTimes(Vec<(String, u32, u64)>);

impl ProcessTimes {
    /// Reads each named process's ticks; one gone (or never there) is left out.
    pub fn read(pids: &[(String, u32)]) -> Self {
        let mut v: Vec<(String, u32, u64)> = pids
            .iter()
            .filter_map(|(name, pid)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                Some((name.clone(), *pid, Self::ticks_of(&stat)?))
            })
            .collect();
        if let Some(own) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| Self::ticks_of(&s))
        {
            v.push(("bench".into(), std::process::id(), own));
        }
        Self(v)
    }

    /// utime + stime + cutime + cstime of one `/proc/<pid>/stat` line: proc(5)'s fields
    /// 14–17 (numbered from the pid), found as 11–14 counting from the field after the `)`
    /// that ends the command name (which may hold spaces and parentheses).
    fn ticks_of(stat: &str) -> Option<u64> {
        let after = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = after.split_whitespace().collect();
        (11..=14).map(|i| f.get(i)?.parse::<u64>().ok()).sum()
    }

    /// Seconds each process took since `before`, by name. A process in `before` too
    /// counts the difference; one only in this reading started in between (an agent
    /// started again), and all its time counts; one only in `before` exited, and is left
    /// out.
    pub fn since(&self, before: &Self) -> std::collections::BTreeMap<String, f64> {
        let ticks = ticks();
        self.0
            .iter()
            .map(|(name, pid, t)| {
                let b = before
                    .0
                    .iter()
                    .find(|(n, p, _)| n == name && p == pid)
                    .map_or(0, |(_, _, b)| *b);
                (name.clone(), t.saturating_sub(b) as f64 / ticks)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_s_ticks_are_read_past_a_command_name_with_spaces_and_parentheses() {
        // proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime ...
        let stat = "4242 (bird (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 7 3 20 0 1 0";
        assert_eq!(ProcessTimes::ticks_of(stat), Some(410));
        assert_eq!(ProcessTimes::ticks_of("4242 (short) S 1"), None);
        let me = ProcessTimes::read(&[("gone".into(), u32::MAX)]);
        assert_eq!(me.0.len(), 1, "only the bench itself: {me:?}");
        let (name, pid, t) = me.0[0].clone();
        assert_eq!((name.as_str(), pid), ("bench", std::process::id()));
        // The bench 200 ticks on; an agent started again in between (a new pid under a
        // name seen before): all of its 70; one that exited: left out.
        let before = ProcessTimes(vec![
            me.0[0].clone(),
            ("edge".into(), 10, 900),
            ("gone".into(), 11, 5),
        ]);
        let later = ProcessTimes(vec![
            ("bench".into(), pid, t + 200),
            ("edge".into(), 12, 70),
        ]);
        let spent = later.since(&before);
        assert_eq!(spent.get("bench").copied(), Some(200.0 / ticks()));
        assert_eq!(
            spent.get("edge").copied(),
            Some(70.0 / ticks()),
            "{spent:?}"
        );
        assert!(!spent.contains_key("gone"), "{spent:?}");
    }

    #[test]
    fn the_first_cpu_line_is_read_and_differences_are_seconds() {
        let before = CpuTimes::parse(
            "cpu  6425447 10707 2292081 5303346 41729 0 230838 52685 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
        )
        .expect("cpu line");
        let after = CpuTimes {
            user: before.user + 150,
            nice: before.nice + 50,
            system: before.system + 30,
            softirq: before.softirq + 20,
            steal: before.steal + 400,
            ..before
        };
        let s = CpuSpent::between(&before, &after);
        assert_eq!(s.user_secs, 2.0);
        assert_eq!(s.system_secs, 0.5);
        assert_eq!(s.steal_secs, 4.0);
        assert_eq!(s.idle_secs, 0.0);
        assert!(CpuTimes::parse("intr 1 2 3\n").is_none());
    }
}
