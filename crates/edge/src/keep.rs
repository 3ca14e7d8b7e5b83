//! The config kept in the state directory for a restart while the server is away: the
//! whole config, then a journal of each revision's changes (the format:
//! [`cic_model::edge::kept`]). A revision appends what changed and syncs it; the whole
//! config is written again (and the journal started anew) when the journal has grown to
//! the size of the whole config's file, so the bytes written stay within a small multiple
//! of the changes' (about three times while the config grows, as in a bring-up), and a
//! restart reads at most twice that file. The first keep after a start writes the whole
//! config, so a journal cut short by a crash is never appended to.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cic_model::edge::EdgeConfig;
use cic_model::edge::kept::{JOURNAL, WHOLE, journal_line, journal_start, read};
use tracing::{info, warn};

/// Writes the configs handed to it in `dir`.
pub(crate) struct Keeper {
    dir: PathBuf,
    journal: Option<Journal>,
}

/// The journal being appended to.
struct Journal {
    file: File,
    /// The config its last line gives, and that line's number.
    last: Arc<EdgeConfig>,
    lines: u64,
    /// Its size, and the whole config's it follows.
    bytes: u64,
    whole_bytes: u64,
}

/// How a config was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Written whole (this many bytes), the journal started anew.
    Whole(usize),
    /// Its changes appended to the journal (this many bytes).
    Changes(usize),
}

impl Keeper {
    pub(crate) fn new(dir: PathBuf) -> Keeper {
        Keeper { dir, journal: None }
    }

    /// Keeps `cfg`, synced to disk when this returns.
    pub(crate) fn keep(&mut self, cfg: &Arc<EdgeConfig>) -> io::Result<Kept> {
        // A line that cannot be made, or that would take the journal past the whole
        // config's size: the whole config instead.
        if let Some(j) = &mut self.journal
            && let Ok(line) = journal_line(cfg, &j.last, j.lines + 1)
            && j.bytes + line.len() as u64 <= j.whole_bytes
        {
            match j.file.write_all(&line).and_then(|()| j.file.sync_data()) {
                Ok(()) => {
                    j.lines += 1;
                    j.bytes += line.len() as u64;
                    j.last = cfg.clone();
                    return Ok(Kept::Changes(line.len()));
                }
                // What the file holds now is not known: written whole below.
                Err(e) => warn!("appending to the kept config's journal: {e}"),
            }
        }
        self.journal = None;
        let whole = serde_json::to_vec(&**cfg).map_err(io::Error::other)?;
        let start = journal_start(&whole);
        std::fs::create_dir_all(&self.dir)?;
        replace(&self.dir.join(WHOLE), &whole)?;
        replace(&self.dir.join(JOURNAL), &start)?;
        let file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(JOURNAL))?;
        self.journal = Some(Journal {
            file,
            last: cfg.clone(),
            lines: 0,
            bytes: start.len() as u64,
            whole_bytes: whole.len() as u64,
        });
        Ok(Kept::Whole(whole.len()))
    }
}

/// Replaces `path` with `bytes` (mode 0600: the config holds TCP-MD5 keys): written to a
/// temporary file, synced, renamed over it, the directory synced, so a crash leaves the
/// one or the other.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The config kept in `dir`, if there is one that reads.
pub(crate) fn kept_config(dir: &Path) -> Option<EdgeConfig> {
    let path = dir.join(WHOLE);
    let whole = std::fs::read(&path).ok()?;
    let journal = match std::fs::read(dir.join(JOURNAL)) {
        Ok(j) => Some(j),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            warn!("the kept config's journal does not read ({e}): its whole config alone");
            None
        }
    };
    match read(&whole, journal.as_deref()) {
        Ok(kept) => {
            if let Some(why) = kept.left {
                info!(
                    changes = kept.changes,
                    "the kept config: {why}; taken up to it"
                );
            }
            Some(kept.config)
        }
        Err(e) => {
            warn!("{} does not read: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, edge_config, instance};
    use std::os::unix::fs::PermissionsExt;

    /// `n` instances, each with its own prefix but `changed`, whose prefix says the
    /// revision.
    fn config(revision: u64, n: usize, changed: usize) -> Arc<EdgeConfig> {
        let instances = (0..n)
            .map(|i| {
                let prefix = if i == changed {
                    format!("10.200.{}.0/24", revision % 256)
                } else {
                    format!("10.{}.{}.0/24", i / 256, i % 256)
                };
                instance(&format!("i{i:04}"), &[&prefix])
            })
            .collect();
        Arc::new(edge_config(revision, instances))
    }

    #[test]
    fn each_revision_appends_its_changes_and_a_restart_reads_the_latest() {
        let tmp = TempDir::new("keep-append");
        let dir = tmp.0.clone();
        let mut k = Keeper::new(dir.clone());
        let Kept::Whole(whole) = k.keep(&config(1, 1000, 0)).unwrap() else {
            panic!("the first keep writes the whole config");
        };
        for rev in 2..=5 {
            match k.keep(&config(rev, 1000, rev as usize)).unwrap() {
                Kept::Changes(n) => assert!(
                    n * 20 < whole,
                    "revision {rev} appended {n} bytes: what changed, not the {whole} of the whole"
                ),
                other => panic!("revision {rev}: {other:?}"),
            }
        }
        // An instance gone: gone after a restart too.
        let mut last = (*config(6, 1000, 5)).clone();
        last.instances.retain(|i| i.id != "i0042");
        let last = Arc::new(last);
        assert!(matches!(k.keep(&last).unwrap(), Kept::Changes(_)));
        assert_eq!(kept_config(&dir).as_ref(), Some(&*last));
        for f in [WHOLE, JOURNAL] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}: it holds TCP-MD5 keys");
        }
        // A restarted agent's first keep writes the whole config: it never appends to a
        // journal a crash may have cut short.
        let mut again = Keeper::new(dir.clone());
        assert!(matches!(again.keep(&last).unwrap(), Kept::Whole(_)));
        assert_eq!(kept_config(&dir).as_ref(), Some(&*last));
    }

    #[test]
    fn the_whole_config_is_written_again_once_the_journal_has_grown_to_its_size() {
        let tmp = TempDir::new("keep-compact");
        let dir = tmp.0.clone();
        let mut k = Keeper::new(dir.clone());
        let (mut appended, mut wholes, mut written, mut changes) = (0, 0, 0, 0);
        for rev in 1..=400u64 {
            let cfg = config(rev, 200, (rev % 200) as usize);
            match k.keep(&cfg).unwrap() {
                Kept::Whole(n) => {
                    wholes += 1;
                    written += n;
                }
                Kept::Changes(n) => {
                    appended += 1;
                    written += n;
                    changes += n;
                }
            }
            let journal = std::fs::metadata(dir.join(JOURNAL)).unwrap().len();
            let whole = std::fs::metadata(dir.join(WHOLE)).unwrap().len();
            assert!(
                journal <= whole,
                "revision {rev}: journal {journal} > whole {whole}"
            );
            assert_eq!(kept_config(&dir).as_ref(), Some(&*cfg), "revision {rev}");
        }
        assert!(
            wholes > 1 && appended > wholes,
            "{wholes} whole, {appended} appended"
        );
        // Within a few times the changes' bytes, and far below a whole config a revision.
        let whole = k.journal.as_ref().unwrap().whole_bytes as usize;
        assert!(
            written < 3 * changes && written * 10 < 400 * whole,
            "{written} bytes written for {changes} of changes (the whole config: {whole})"
        );
    }

    #[test]
    fn a_state_directory_with_no_config_or_one_that_does_not_read_gives_none() {
        let tmp = TempDir::new("keep-none");
        let dir = tmp.0.join("state");
        assert_eq!(kept_config(&dir), None);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(WHOLE), b"{ not json").unwrap();
        assert_eq!(kept_config(&dir), None);
    }
}
