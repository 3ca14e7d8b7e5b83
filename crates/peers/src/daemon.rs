//! What every router process here shares: a private directory (config, log, sockets), a
//! child process started in the foreground (inside a network namespace if asked), killed
//! and cleaned up on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub(crate) struct Daemon {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) netns: Option<String>,
    child: Option<Child>,
    keep_dir: bool,
}

impl Daemon {
    /// A fresh directory `<kind>-<name>-<pid>-<seq>` in the system temp dir.
    pub(crate) fn new(kind: &str, name: &str, netns: Option<&str>) -> io::Result<Daemon> {
        let dir = std::env::temp_dir().join(format!(
            "{kind}-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Daemon {
            name: name.to_string(),
            dir,
            netns: netns.map(str::to_string),
            child: None,
            keep_dir: false,
        })
    }

    /// `program`, run inside the daemon's namespace when it has one.
    pub(crate) fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts `cmd` with stdout and stderr appended to `log` in the directory.
    pub(crate) fn spawn(&mut self, mut cmd: Command, log: &str) -> io::Result<()> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(log))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// Fails if the process has already exited (a config it refused, as a rule).
    pub(crate) fn check_running(&mut self, log: &str) -> io::Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            return Err(io::Error::other(format!(
                "{} exited ({status}): {}",
                self.name,
                self.read(log)
            )));
        }
        Ok(())
    }

    /// Waits until `ready` says the daemon answers; fails at once if it exits meanwhile
    /// (with its log, `log`), or after `timeout`.
    pub(crate) fn wait_ready(
        &mut self,
        log: &str,
        timeout: std::time::Duration,
        what: &str,
        mut ready: impl FnMut(&Daemon) -> bool,
    ) -> io::Result<()> {
        let mut exited = None;
        crate::wait_until(timeout, what, || {
            if let Err(e) = self.check_running(log) {
                exited = Some(e);
                return Some(());
            }
            ready(self).then_some(())
        })?;
        exited.map_or(Ok(()), Err)
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub(crate) fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn keep_dir(&mut self) {
        self.keep_dir = true;
    }

    /// SIGTERM (so a daemon stops the helpers it started), SIGKILL after 5 s.
    pub(crate) fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a query command to its end: its stdout, or an error with what it printed.
pub(crate) fn output(mut cmd: Command, what: &str) -> io::Result<String> {
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(text)
}
