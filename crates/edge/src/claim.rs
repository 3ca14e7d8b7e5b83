//! One agent for a set of namespaces. Two agents given the same namespace prefix on one
//! machine would each take the other's namespaces for leftovers and delete them, and write
//! the same kept config and BFD book: the second refuses to start. The claim is a lock
//! (`flock`) on a file named by the prefix, held while the agent runs and let go by the
//! kernel however it ends (`kill -9` included), so a restarted agent finds it free.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Where the claims are, beside the BFD book.
pub const CLAIM_DIR: &str = "/run/cic-edge";

/// The agent's hold on its namespace prefix, for as long as it lives.
#[derive(Debug)]
pub struct Claim {
    _lock: Flock<File>,
    pub path: PathBuf,
}

/// The claim file of `prefix` in `dir`. A prefix is a namespace name's start, which has no
/// `/`; one that had would be kept from naming another directory.
fn claim_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("agent-{}.lock", prefix.replace('/', "%2F")))
}

/// Claims the namespaces named `prefix`…, waiting up to `wait` for an agent stopping
/// (one restarted by its supervisor may start while the old one is still exiting). The
/// error names the agent holding them.
pub fn claim(dir: &Path, prefix: &str, wait: Duration) -> Result<Claim, String> {
    let path = claim_path(dir, prefix);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        // Root's alone: anyone who could open it could lock it and keep the agent out.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // Who holds it, for the message another agent gives.
                // (One made by an older agent may be readable by others.)
                let _ = lock.set_permissions(std::fs::Permissions::from_mode(0o600));
                let pid = std::process::id().to_string();
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = lock.write_all(pid.as_bytes());
                return Ok(Claim { _lock: lock, path });
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                if Instant::now() >= deadline {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => String::from("another cic edge"),
                        pid => format!("another cic edge (pid {pid})"),
                    };
                    return Err(format!(
                        "{holder} runs with --netns-prefix {prefix:?} (it holds {}): \
                         stop it first, or give this agent a prefix of its own",
                        path.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, e)) => return Err(format!("{}: lock: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn a_second_claim_of_one_prefix_is_refused_and_names_the_holder() {
        let dir = TempDir::new("claim");
        let first = claim(&dir.0, "cicl-pop1-", Duration::ZERO).expect("first claim");
        let err = claim(&dir.0, "cicl-pop1-", Duration::from_millis(300)).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("cicl-pop1-"),
            "{err}"
        );
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // Another prefix is another agent's.
        let other = claim(&dir.0, "cicl-pop2-", Duration::ZERO).expect("another prefix");
        drop(first);
        // Let go, it is free at once.
        claim(&dir.0, "cicl-pop1-", Duration::ZERO).expect("claimed again");
        drop(other);
    }

    #[test]
    fn a_claim_let_go_while_waiting_is_taken() {
        let dir = TempDir::new("claim-wait");
        let first = claim(&dir.0, "cic-", Duration::ZERO).expect("first claim");
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        claim(&dir.0, "cic-", Duration::from_secs(10)).expect("taken once let go");
        letting_go.join().unwrap();
    }

    #[test]
    fn a_prefix_with_a_slash_stays_in_the_directory() {
        let p = claim_path(Path::new("/run/cic-edge"), "../x/");
        assert_eq!(p.parent(), Some(Path::new("/run/cic-edge")));
    }
}
