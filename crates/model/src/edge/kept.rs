//! The config an edge keeps for a restart while the server is away, as two files: the
//! whole config at some revision ([`WHOLE`], the file agents before the journal kept
//! alone) and a journal of the changes since ([`JOURNAL`]). Each revision adds a line of
//! what changed, so keeping it costs what changed, not the whole config again (with a
//! thousand instances, half a megabyte a revision, and a bring-up is a thousand
//! revisions). Pure: the edge does the I/O.
//!
//! The journal's first line names the whole config it follows (the SHA-256 of its
//! bytes); each line after it is an [`EdgeConfigUpdate`] with the changes since the line
//! before (tagged `1`, `2`, …; the whole config is `0`). A journal that follows another
//! whole config (a crash between writing a new whole config and starting its journal)
//! is not read; a line that does not read ends the journal (a crash while it was
//! appended: the edge had not synced it, so had not reported its revision).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{EdgeConfig, EdgeConfigUpdate};

/// The file of the whole config.
pub const WHOLE: &str = "config.json";
/// The file of the changes since it.
pub const JOURNAL: &str = "config.journal";

#[derive(Deserialize)]
struct Header {
    /// The SHA-256 (hex) of the whole config's file this journal follows.
    follows: String,
}

fn digest(whole: &[u8]) -> String {
    hex::encode(Sha256::digest(whole))
}

/// The first line of a journal following the whole config `whole` (its file's bytes).
pub fn journal_start(whole: &[u8]) -> Vec<u8> {
    format!("{{\"follows\":\"{}\"}}\n", digest(whole)).into_bytes()
}

/// Line `n` (from 1) of a journal: the changes that turn `old` (the config of line
/// `n - 1`, or the whole config for the first) into `new`.
pub fn journal_line(
    new: &EdgeConfig,
    old: &EdgeConfig,
    n: u64,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut l =
        serde_json::to_vec(&new.changes_from(old, n.to_string(), n.saturating_sub(1).to_string()))?;
    l.push(b'\n');
    Ok(l)
}

/// What [`read`] made of the two files.
#[derive(Debug)]
pub struct Kept {
    pub config: EdgeConfig,
    /// The journal's lines taken.
    pub changes: u64,
    /// Why the journal, or its end, was not taken; `None` when it was taken whole (or
    /// there is none).
    pub left: Option<String>,
}

/// The kept config: the whole one (`whole`, its file's bytes) with the changes in
/// `journal` (that file's bytes, if there is one) made on it. An error only when the
/// whole config does not read.
pub fn read(whole: &[u8], journal: Option<&[u8]>) -> Result<Kept, serde_json::Error> {
    let mut config: EdgeConfig = serde_json::from_slice(whole)?;
    let Some(journal) = journal else {
        return Ok(Kept {
            config,
            changes: 0,
            left: None,
        });
    };
    let mut lines = journal.split_inclusive(|b| *b == b'\n');
    let follows = lines
        .next()
        .and_then(|l| serde_json::from_slice::<Header>(l).ok())
        .map(|h| h.follows);
    if follows.as_deref() != Some(digest(whole).as_str()) {
        return Ok(Kept {
            config,
            changes: 0,
            left: Some("the journal follows another whole config".into()),
        });
    }
    let (mut changes, mut left) = (0, None);
    for (n, l) in (1u64..).zip(lines) {
        match next(&config, n, l) {
            Ok(c) => config = c,
            Err(why) => {
                left = Some(format!("line {n} of the journal {why}"));
                break;
            }
        }
        changes = n;
    }
    Ok(Kept {
        config,
        changes,
        left,
    })
}

/// The config line `n` of a journal (`l`, its bytes) makes of `config`, or why it does not.
fn next(config: &EdgeConfig, n: u64, l: &[u8]) -> Result<EdgeConfig, String> {
    if !l.ends_with(b"\n") {
        return Err("is not whole".into());
    }
    let update: EdgeConfigUpdate =
        serde_json::from_slice(l).map_err(|e| format!("does not read: {e}"))?;
    if update.tag != n.to_string() {
        return Err(format!("is tagged {:?}", update.tag));
    }
    update
        .into_config(Some((&(n - 1).to_string(), config)))
        .map_err(|e| format!("does not follow the line before: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, instance};
    use super::*;

    /// `n` instances, each with its own prefix.
    fn instances(n: usize, changed: &str) -> Vec<crate::edge::InstanceConfig> {
        (0..n)
            .map(|i| {
                let id = format!("i{i:03}");
                let prefix = if id == changed {
                    "10.99.0.0/24".to_string()
                } else {
                    format!("10.{}.{}.0/24", i / 256, i % 256)
                };
                instance(&id, &prefix)
            })
            .collect()
    }

    #[test]
    fn the_journal_holds_each_revision_as_its_changes_and_reads_back_the_latest() {
        let c0 = config(1, instances(50, ""));
        let c1 = config(2, instances(50, "i007"));
        let mut c2 = config(3, instances(50, "i007"));
        c2.instances.retain(|i| i.id != "i010");
        c2.instances
            .push(std::sync::Arc::new(instance("z", "10.77.0.0/24")));
        c2.sort_instances();
        let mut c3 = c2.clone();
        c3.revision = 4;
        c3.drain = true;
        let whole = serde_json::to_vec(&c0).unwrap();
        let mut journal = journal_start(&whole);
        for (n, (new, old)) in (1..).zip([(&c1, &c0), (&c2, &c1), (&c3, &c2)]) {
            let l = journal_line(new, old, n).unwrap();
            assert!(
                l.len() * 10 < whole.len(),
                "line {n} holds what changed, not the whole config: {} bytes of {}",
                l.len(),
                whole.len()
            );
            journal.extend(l);
        }
        let kept = read(&whole, Some(&journal)).unwrap();
        assert_eq!(kept.left, None);
        assert_eq!(kept.changes, 3);
        assert_eq!(kept.config, c3, "the latest, the removed instance gone");
        // Without a journal, the whole config alone.
        assert_eq!(read(&whole, None).unwrap().config, c0);
    }

    #[test]
    fn a_line_cut_short_or_unreadable_ends_the_journal_at_the_line_before() {
        let c0 = config(1, instances(5, ""));
        let c1 = config(2, instances(5, "i001"));
        let c2 = config(3, instances(4, "i001"));
        let whole = serde_json::to_vec(&c0).unwrap();
        let mut journal = journal_start(&whole);
        journal.extend(journal_line(&c1, &c0, 1).unwrap());
        let good = journal.len();
        journal.extend(journal_line(&c2, &c1, 2).unwrap());
        // Cut in the middle of the last line (a crash while it was written).
        let cut = read(&whole, Some(&journal[..journal.len() - 5])).unwrap();
        assert_eq!((cut.changes, &cut.config), (1, &c1));
        assert!(
            cut.left
                .unwrap()
                .contains("line 2 of the journal is not whole")
        );
        // Cut just before its newline: whole JSON, still not a whole line.
        let cut = read(&whole, Some(&journal[..journal.len() - 1])).unwrap();
        assert_eq!(cut.config, c1);
        // A line that is not JSON, and one that skips a tag.
        let mut bad = journal[..good].to_vec();
        bad.extend(b"{\"tag\":\n");
        let got = read(&whole, Some(&bad)).unwrap();
        assert_eq!(got.config, c1);
        assert!(
            got.left
                .unwrap()
                .contains("line 2 of the journal does not read")
        );
        let mut skipped = journal[..good].to_vec();
        skipped.extend(journal_line(&c2, &c1, 3).unwrap());
        let got = read(&whole, Some(&skipped)).unwrap();
        assert_eq!(got.config, c1);
        assert!(got.left.unwrap().contains("is tagged \"3\""));
    }

    #[test]
    fn a_journal_that_follows_another_whole_config_is_not_read() {
        let c0 = config(1, instances(3, ""));
        let c1 = config(2, instances(3, "i002"));
        let old_whole = serde_json::to_vec(&c0).unwrap();
        let mut journal = journal_start(&old_whole);
        journal.extend(journal_line(&c1, &c0, 1).unwrap());
        // A crash after the whole config was written anew, before its journal was.
        let new_whole = serde_json::to_vec(&c1).unwrap();
        let got = read(&new_whole, Some(&journal)).unwrap();
        assert_eq!((got.changes, &got.config), (0, &c1));
        assert!(got.left.unwrap().contains("follows another whole config"));
        // A whole config that does not read is an error.
        assert!(read(b"{", None).is_err());
    }
}
