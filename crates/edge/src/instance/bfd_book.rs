//! The book of the agent's Up BFD sessions: for each, what a restarted agent needs to carry
//! it on (its discriminators and the peer's timers), kept in one file under `/run` (tmpfs
//! on an edge router; the sessions of namespaces that are gone are left out when it is
//! read, so a rebooted box resumes none wherever it lives).
//!
//! One file for the agent, rewritten whole (to a temporary file, then renamed over the
//! last) on a blocking thread after a change, at most every 100 ms: the changes that come
//! meanwhile go together into the next write. It was a file per session: at a cold start of a thousand
//! instances that was two thousand files and a thousand directories made one by one,
//! a fifth of the agent's time where `/run` is not tmpfs (ext4's inode allocation).
//! What changes in the window before a kill (100 ms, more when the blocking threads are
//! busy) is not in the file: a session that came Up then resumes Down, as at a first
//! start; one that changed since resumes from the snapshot before and fails after the
//! detection time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use cic_bfd::Snapshot;
use tracing::warn;

/// Where the agents keep their books: one file each, named by the agent's namespace
/// prefix (several agents on one box, as in the lab, each have theirs).
pub const BFD_STATE_DIR: &str = "/run/cic-edge/bfd";

/// The least time between two writes of the book.
const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub struct BfdBook {
    /// The file.
    path: PathBuf,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    sessions: BTreeMap<(String, IpAddr), Snapshot>,
    /// Changes not written yet.
    dirty: bool,
    /// A write is under way (it takes what changed meanwhile before it ends).
    writing: bool,
    /// Writes done: how many, for tests.
    written: u64,
}

impl BfdBook {
    /// The book of the agent whose namespaces are named `prefix…`, read from `dir`: its
    /// sessions in namespaces that are gone are left out (a rebooted box has none). An
    /// agent older than the book kept a file per session (`<dir>/<namespace>/<peer>`):
    /// those of its namespaces are read in, and removed once the book is written.
    pub fn open(dir: &Path, prefix: &str) -> Arc<BfdBook> {
        Self::open_with(dir, prefix, cic_dataplane::netns::exists)
    }

    /// [`BfdBook::open`], with `exists` saying which namespaces are there.
    fn open_with(dir: &Path, prefix: &str, exists: impl Fn(&str) -> bool) -> Arc<BfdBook> {
        let path = dir.join(format!("{prefix}sessions"));
        let mut sessions = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warn!(path = %path.display(), "BFD sessions' book: {e}");
                BTreeMap::new()
            }
        };
        let older = read_per_session_files(dir, prefix);
        let migrate = !older.is_empty();
        if migrate {
            // Files of an older agent exist only when one ran after the book was last
            // written (an upgrade, or a rollback and an upgrade again): they are the newer.
            sessions = older.into_iter().collect();
        }
        sessions.retain(|(ns, _), _| exists(ns));
        let book = Arc::new(BfdBook {
            path,
            book: Mutex::new(Book {
                sessions,
                ..Book::default()
            }),
        });
        // The older files are removed once the book holds them on disk.
        if migrate && book.write_now().is_ok() {
            for ns in namespaces_in(dir, prefix) {
                let _ = std::fs::remove_dir_all(dir.join(ns));
            }
        }
        book
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The snapshot of the session with `peer` in namespace `ns`, if it was Up.
    pub fn get(&self, ns: &str, peer: IpAddr) -> Option<Snapshot> {
        self.lock().sessions.get(&(ns.to_string(), peer)).copied()
    }

    /// The session with `peer` in namespace `from` is now in `to` (its namespace renamed),
    /// in one change.
    pub fn move_session(self: &Arc<Self>, from: &str, to: &str, peer: IpAddr) {
        let mut b = self.lock();
        let Some(s) = b.sessions.remove(&(from.to_string(), peer)) else {
            return;
        };
        b.sessions.insert((to.to_string(), peer), s);
        self.changed(b);
    }

    /// Keeps `snapshot` for the session with `peer` in `ns` (none: the session is not Up).
    pub fn set(self: &Arc<Self>, ns: &str, peer: IpAddr, snapshot: Option<Snapshot>) {
        let mut b = self.lock();
        let key = (ns.to_string(), peer);
        let changed = match snapshot {
            Some(s) => b.sessions.insert(key, s) != Some(s),
            None => b.sessions.remove(&key).is_some(),
        };
        if changed {
            self.changed(b);
        }
    }

    /// Forgets every session of namespace `ns` (the instance is gone).
    pub fn forget(self: &Arc<Self>, ns: &str) {
        let mut b = self.lock();
        let before = b.sessions.len();
        b.sessions.retain(|(n, _), _| n != ns);
        if b.sessions.len() != before {
            self.changed(b);
        }
    }

    /// Marks the book changed and, unless a write is under way (which will take this
    /// change too), starts one on a blocking thread.
    fn changed(self: &Arc<Self>, mut b: MutexGuard<'_, Book>) {
        b.dirty = true;
        if b.writing {
            return;
        }
        b.writing = true;
        drop(b);
        let me = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || me.write_while_changed());
            }
            // Outside a runtime (never in the agent): here and now.
            Err(_) => me.write_while_changed(),
        }
    }

    /// Writes the book until no change came during the last write, one write at most
    /// every [`WRITE_EVERY`]: a burst of changes (a thousand sessions coming Up) is a few
    /// writes, not one of the whole book for each.
    fn write_while_changed(&self) {
        let mut last: Option<std::time::Instant> = None;
        loop {
            if let Some(wait) = last.and_then(|l| WRITE_EVERY.checked_sub(l.elapsed())) {
                std::thread::sleep(wait);
            }
            let text = {
                let mut b = self.lock();
                if !b.dirty {
                    b.writing = false;
                    return;
                }
                b.dirty = false;
                render(&b.sessions)
            };
            if let Err(e) = self.write_text(&text) {
                warn!("BFD sessions' book: {e}");
            }
            last = Some(std::time::Instant::now());
            self.lock().written += 1;
        }
    }

    /// Writes the book at once, on this thread.
    fn write_now(&self) -> std::io::Result<()> {
        let text = {
            let mut b = self.lock();
            b.dirty = false;
            render(&b.sessions)
        };
        self.write_text(&text)
    }

    /// Writes `text` to a temporary file of this agent's (`.<book>.tmp` beside it, so
    /// two agents' never meet) and renames it over the book: a crash leaves one or the
    /// other whole.
    fn write_text(&self, text: &str) -> std::io::Result<()> {
        let path = &self.path;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("book");
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Waits until every change so far is written (tests).
    #[cfg(test)]
    async fn written(&self) -> u64 {
        loop {
            {
                let b = self.lock();
                if !b.dirty && !b.writing {
                    return b.written;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// One line a session: namespace, peer, then the snapshot's five numbers.
fn render(sessions: &BTreeMap<(String, IpAddr), Snapshot>) -> String {
    let mut out = String::with_capacity(sessions.len() * 64);
    for ((ns, peer), s) in sessions {
        out.push_str(&format!(
            "{ns} {peer} {} {} {} {} {}\n",
            s.local_disc,
            s.remote_disc,
            s.remote_min_rx,
            s.remote_desired_min_tx,
            s.remote_detect_mult
        ));
    }
    out
}

/// The lines of [`render`]; a line that does not read is left out (its session resumes
/// Down, as at a first start).
fn parse(text: &str) -> BTreeMap<(String, IpAddr), Snapshot> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let ns = w.next()?.to_string();
            let peer: IpAddr = w.next()?.parse().ok()?;
            let s = snapshot_of(&w.collect::<Vec<_>>())?;
            Some(((ns, peer), s))
        })
        .collect()
}

/// The five numbers of a snapshot.
fn snapshot_of(words: &[&str]) -> Option<Snapshot> {
    let v: Vec<u32> = words
        .iter()
        .map(|w| w.parse())
        .collect::<Result<_, _>>()
        .ok()?;
    match v[..] {
        [
            local_disc,
            remote_disc,
            remote_min_rx,
            remote_desired_min_tx,
            mult,
        ] => Some(Snapshot {
            local_disc,
            remote_disc,
            remote_min_rx,
            remote_desired_min_tx,
            remote_detect_mult: u8::try_from(mult).ok()?,
        }),
        _ => None,
    }
}

/// The namespaces named `prefix…` that an older agent kept files in.
fn namespaces_in(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        // Its prefix and an instance's id: not those of an agent whose prefix nests in it.
        .filter(|n| n.strip_prefix(prefix).is_some_and(cic_model::is_made_id))
        .collect()
}

/// The snapshots an agent older than the book kept, a file per session.
fn read_per_session_files(dir: &Path, prefix: &str) -> Vec<((String, IpAddr), Snapshot)> {
    let mut out = Vec::new();
    for ns in namespaces_in(dir, prefix) {
        let Ok(files) = std::fs::read_dir(dir.join(&ns)) else {
            continue;
        };
        for f in files.flatten() {
            let Some(peer) = f
                .file_name()
                .into_string()
                .ok()
                .and_then(|n| n.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(f.path()) else {
                continue;
            };
            if let Some(s) = snapshot_of(&text.split_whitespace().collect::<Vec<_>>()) {
                out.push(((ns.clone(), peer), s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    fn snap(d: u32) -> Snapshot {
        Snapshot {
            local_disc: d,
            remote_disc: d + 1,
            remote_min_rx: 300_000,
            remote_desired_min_tx: 100_000,
            remote_detect_mult: 3,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_book_reads_back_what_it_wrote_and_skips_lines_that_do_not_read() {
        let mut m = BTreeMap::new();
        m.insert(("a-1".to_string(), ip("169.254.0.1")), snap(7));
        m.insert(("a-2".to_string(), ip("fd00::1")), snap(9));
        let text = render(&m);
        assert_eq!(parse(&text), m);
        let damaged = format!(
            "{text}a-3 169.254.0.9 1 2 3\na-4 nonsense 1 2 3 4 5\na-5 10.0.0.1 1 2 3 4 300\n\n"
        );
        assert_eq!(
            parse(&damaged),
            m,
            "short, unparsable and out-of-range lines are left out"
        );
    }

    #[tokio::test]
    async fn changes_are_written_to_one_file_that_a_restarted_agent_resumes_from() {
        let dir = TempDir::new("one-file");
        let all = |_: &str| true;
        let book = BfdBook::open_with(&dir.0, "t-", all);
        let (ns, other) = ("t-ri1", "t-ri2");
        book.set(ns, ip("169.254.0.2"), Some(snap(1)));
        book.set(ns, ip("fd00::2"), Some(snap(2)));
        book.set(other, ip("169.254.0.6"), Some(snap(3)));
        book.set(other, ip("169.254.0.6"), None);
        book.written().await;
        assert_eq!(files(&dir.0), vec!["t-sessions"], "one file for the agent");

        // A restarted agent: the sessions Up when the last one ended.
        let again = BfdBook::open_with(&dir.0, "t-", all);
        assert_eq!(again.get(ns, ip("fd00::2")), Some(snap(2)));
        assert_eq!(again.get(ns, ip("169.254.0.2")), Some(snap(1)));
        assert_eq!(
            again.get(other, ip("169.254.0.6")),
            None,
            "not Up when it ended"
        );
        book.set("t-ri3", ip("169.254.0.10"), Some(snap(4)));
        book.written().await;
        let all_there = BfdBook::open_with(&dir.0, "t-", all);
        assert_eq!(all_there.get("t-ri3", ip("169.254.0.10")), Some(snap(4)));
        let only_ri1 = |n: &str| n == ns;
        let gone = BfdBook::open_with(&dir.0, "t-", only_ri1);
        assert_eq!(
            gone.get("t-ri3", ip("169.254.0.10")),
            None,
            "its namespace is gone"
        );
        assert_eq!(gone.get(ns, ip("fd00::2")), Some(snap(2)));

        // A renamed namespace: its sessions move.
        book.move_session(ns, "t-ri9", ip("169.254.0.2"));
        book.move_session(ns, "t-ri9", ip("fd00::2"));
        book.move_session(ns, "t-ri9", ip("169.254.0.99"));
        book.written().await;
        let read = parse(&std::fs::read_to_string(dir.0.join("t-sessions")).unwrap());
        assert_eq!(read[&("t-ri9".to_string(), ip("169.254.0.2"))], snap(1));
        assert_eq!(read[&("t-ri9".to_string(), ip("fd00::2"))], snap(2));
        assert!(!read.keys().any(|(n, _)| n == ns), "moved, not copied");
        assert_eq!(files(&dir.0), vec!["t-sessions"], "no temporary file left");

        book.forget("t-ri9");
        book.forget("t-ri3");
        book.written().await;
        assert_eq!(
            std::fs::read_to_string(dir.0.join("t-sessions")).unwrap(),
            ""
        );
    }

    #[tokio::test]
    async fn a_burst_of_changes_goes_in_far_fewer_writes_than_changes() {
        let dir = TempDir::new("burst");
        let book = BfdBook::open_with(&dir.0, "t-", |_| true);
        for i in 0..2000u32 {
            let a = std::net::Ipv4Addr::from(0xa9fe_0000 + i);
            book.set(&format!("t-ri{}", i / 2), IpAddr::V4(a), Some(snap(i)));
        }
        let writes = book.written().await;
        let read = parse(&std::fs::read_to_string(dir.0.join("t-sessions")).unwrap());
        assert_eq!(read.len(), 2000, "every change is in the file in the end");
        assert!(
            (1..2000).contains(&writes),
            "{writes} writes for 2000 changes"
        );
    }

    #[test]
    fn an_older_agents_files_of_live_namespaces_are_read_in_and_removed() {
        let dir = TempDir::new("older");
        let mk = |ns: &str, peer: &str, body: &str| {
            std::fs::create_dir_all(dir.0.join(ns)).unwrap();
            std::fs::write(dir.0.join(ns).join(peer), body).unwrap();
        };
        const RI1: &str = "t-ri000000000000000001";
        const GONE: &str = "t-ri000000000000000002";
        const OTHER: &str = "u-ri000000000000000001";
        const NESTED: &str = "t-x-ri000000000000000001";
        mk(RI1, "169.254.0.2", "11 12 300000 300000 3\n");
        mk(RI1, "not-an-address", "1 2 3 4 5\n");
        mk(GONE, "169.254.0.6", "13 14 300000 300000 3\n");
        mk(OTHER, "169.254.0.10", "15 16 300000 300000 3\n");
        mk(NESTED, "169.254.0.14", "17 18 300000 300000 3\n");
        // A book from before a rollback to the older agent: its files are the newer.
        std::fs::write(
            dir.0.join("t-sessions"),
            format!(
                "{RI1} 169.254.0.2 91 92 300000 300000 3\n{RI1} 169.254.0.3 93 94 300000 300000 3\n"
            ),
        )
        .unwrap();
        let book = BfdBook::open_with(&dir.0, "t-", |n| n != GONE);
        assert_eq!(
            book.get(RI1, ip("169.254.0.3")),
            None,
            "the book from before is set aside"
        );
        assert_eq!(
            book.get(RI1, ip("169.254.0.2")).map(|s| s.local_disc),
            Some(11)
        );
        assert_eq!(book.get(GONE, ip("169.254.0.6")), None, "namespace gone");
        assert_eq!(book.get(OTHER, ip("169.254.0.10")), None, "another agent's");
        assert_eq!(
            book.get(NESTED, ip("169.254.0.14")),
            None,
            "an agent's whose prefix (t-x-) nests in this one's"
        );
        assert_eq!(
            files(&dir.0),
            vec!["t-sessions", NESTED, OTHER],
            "this agent's old files removed once the book is written; another agent's kept"
        );
        let read = parse(&std::fs::read_to_string(dir.0.join("t-sessions")).unwrap());
        assert_eq!(read.len(), 1);
    }
}
