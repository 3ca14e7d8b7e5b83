//! The compiler's snapshot of the store ([`Snapshot`]), read once per revision and shared
//! by every edge and by the fabric's attachments asking at it; a new revision reads only
//! the documents written since the last one (each row carries the revision that wrote
//! it), and takes the others from the last snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use cic_store::{Document, Read, Store};

use crate::compile::Snapshot;

/// Each kind's documents, by id in id order, with the revision that wrote each: aligned
/// with the snapshot's lists.
#[derive(Default)]
struct Revisions {
    kinds: HashMap<&'static str, Vec<(String, u64)>>,
}

struct Kept {
    revision: u64,
    snapshot: Arc<Snapshot>,
    revisions: Revisions,
    /// When every kind was last listed id by id (see [`LIST_EVERY`]).
    listed_at: std::time::Instant,
}

/// How often a new revision's snapshot lists every kind id by id even when counts and
/// sums say nothing went: what they cannot see (a document lost and another written
/// under the same revision, as a database failed over to a replica that lost
/// transactions could hold) lasts no longer than this.
const LIST_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The last snapshot, and the lock one reader holds while the others wait for it.
#[derive(Default)]
pub struct Snapshots {
    kept: std::sync::Mutex<Option<Arc<Kept>>>,
    reading: tokio::sync::Mutex<()>,
    last: std::sync::Mutex<Option<LastRead>>,
}

/// How the last snapshot was read: its revision, and how many documents came from the
/// store's rows rather than from the snapshot before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRead {
    pub revision: u64,
    pub decoded: usize,
    pub kept: usize,
    /// Kinds whose every id and revision were listed (all of them at the first read and
    /// once a minute; otherwise those whose count or sum of revisions showed a document
    /// gone or rewritten under an older revision); the others were taken from the last
    /// snapshot with the rows written since.
    pub listed: usize,
}

impl Snapshots {
    fn kept(&self) -> Option<Arc<Kept>> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What the compiler reads, all as of one revision (returned with it).
    pub async fn get(&self, store: &Store) -> Result<(Arc<Snapshot>, u64), cic_store::Error> {
        let at = |now: u64| {
            self.kept()
                .filter(|k| k.revision == now)
                .map(|k| k.snapshot.clone())
        };
        let now = store.revision().await?;
        if let Some(snap) = at(now) {
            return Ok((snap, now));
        }
        // One reads, the others waiting here take what it read.
        let _one = self.reading.lock().await;
        let now = store.revision().await?;
        if let Some(snap) = at(now) {
            return Ok((snap, now));
        }
        let mut r = store.read().await?;
        // Rows written since the last snapshot are read; a database restored from a
        // backup (its revision gone back) is read whole.
        let before = self.kept().filter(|k| k.revision <= r.revision());
        // How many documents of each kind, and the sum of their revisions: when a kind has
        // as many as the last snapshot's plus those added since, and its sum is the last
        // snapshot's with those written since counted in, its documents are taken to be
        // the last snapshot's with those written since put in (no listing of every id).
        // Commits take revisions in order, so a document that went or was rewritten under
        // an older revision changes the count or the sum; changes that cancel out in both
        // are not seen until the next listing of every kind, at least once a minute.
        let list_all = before
            .as_ref()
            .is_none_or(|k| k.listed_at.elapsed() >= LIST_EVERY);
        let counts = if list_all {
            None
        } else {
            Some(r.counts().await?)
        };
        let mut reader = Reader {
            read: &mut r,
            before: before.as_deref(),
            counts,
            revisions: Revisions::default(),
            decoded: 0,
            kept: 0,
            listed: 0,
        };
        let snapshot = Snapshot {
            edges: reader.kind(|s| &s.edges).await?,
            trunks: reader.kind(|s| &s.trunks).await?,
            connections: reader.kind(|s| &s.connections).await?,
            routing_instances: reader.kind(|s| &s.routing_instances).await?,
            slots: reader.kind(|s| &s.slots).await?,
            pops: reader.kind(|s| &s.pops).await?,
            public_connections: reader.kind(|s| &s.public_connections).await?,
            services: reader.kind(|s| &s.services).await?,
        };
        let (revisions, decoded, kept, listed) =
            (reader.revisions, reader.decoded, reader.kept, reader.listed);
        let revision = r.revision();
        let listed_at = match &before {
            Some(k) if !list_all => k.listed_at,
            _ => std::time::Instant::now(),
        };
        let k = Arc::new(Kept {
            revision,
            snapshot: Arc::new(snapshot),
            revisions,
            listed_at,
        });
        // The latest read is kept, even at a lower revision: a revision is only ever
        // matched exactly.
        *self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(k.clone());
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(LastRead {
            revision,
            decoded,
            kept,
            listed,
        });
        Ok((k.snapshot.clone(), revision))
    }

    /// How the last snapshot was read (None before the first).
    pub fn last_read(&self) -> Option<LastRead> {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Reader<'a> {
    read: &'a mut Read,
    before: Option<&'a Kept>,
    /// Each kind's number of documents and sum of revisions as of the read; None when
    /// every kind is to be listed.
    counts: Option<HashMap<String, (u64, u64)>>,
    revisions: Revisions,
    decoded: usize,
    kept: usize,
    listed: usize,
}

impl Reader<'_> {
    /// One kind's documents as of the read: the last snapshot's with the rows written
    /// since put in, when the kind's count and sum of revisions allow (see
    /// [`Reader::merge`]); otherwise listed id by id, those whose row still has the
    /// revision it had in the last snapshot taken from it, the others decoded.
    async fn kind<T: Document + Clone>(
        &mut self,
        list: impl Fn(&Snapshot) -> &Vec<T>,
    ) -> Result<Vec<T>, cic_store::Error> {
        let since = self.before.map_or(0, |k| k.revision);
        let mut written = self.read.written_after::<T>(since).await?;
        if let (Some(k), Some(counts)) = (self.before, &self.counts) {
            let revs: &[(String, u64)] = k.revisions.kinds.get(T::KIND).map_or(&[], |r| r);
            let mut count = revs.len() as u64;
            let mut sum: u64 = revs.iter().map(|(_, r)| r).sum();
            for (id, (rev, _)) in &written {
                match revs.binary_search_by(|(i, _)| i.as_str().cmp(id)) {
                    Ok(at) => sum = sum - revs[at].1 + rev,
                    Err(_) => (count, sum) = (count + 1, sum + rev),
                }
            }
            if counts.get(T::KIND).copied().unwrap_or((0, 0)) == (count, sum) {
                return Ok(self.merge(revs, list(&k.snapshot), written));
            }
        }
        self.listed += 1;
        let rows = self.read.revisions::<T>().await?;
        let before: HashMap<&str, (u64, &T)> = match self.before {
            Some(k) => k
                .revisions
                .kinds
                .get(T::KIND)
                .map(|revs| {
                    revs.iter()
                        .zip(list(&k.snapshot))
                        .map(|((id, rev), doc)| (id.as_str(), (*rev, doc)))
                        .collect()
                })
                .unwrap_or_default(),
            None => HashMap::new(),
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, rev) in &rows {
            if let Some((_, doc)) = written.remove(id) {
                self.decoded += 1;
                out.push(doc);
            } else if let Some((_, doc)) = before.get(id.as_str()).filter(|(r, _)| r == rev) {
                self.kept += 1;
                out.push((*doc).clone());
            } else if let Some(doc) = self.read.get::<T>(id).await? {
                // Changed, yet written at or before the last snapshot's revision: read it.
                self.decoded += 1;
                out.push(doc);
            }
        }
        self.revisions.kinds.insert(T::KIND, rows);
        Ok(out)
    }

    /// A kind none of whose documents went since the last snapshot: its documents (`revs`
    /// and `docs`, aligned, in id order) with those `written` since replacing or joining
    /// them, in id order.
    fn merge<T: Document + Clone>(
        &mut self,
        revs: &[(String, u64)],
        docs: &[T],
        written: HashMap<String, (u64, T)>,
    ) -> Vec<T> {
        let mut new: Vec<(String, (u64, T))> = written.into_iter().collect();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        let mut new = new.into_iter().peekable();
        let mut rows = Vec::with_capacity(revs.len() + new.len());
        let mut out = Vec::with_capacity(revs.len() + new.len());
        for ((id, rev), doc) in revs.iter().zip(docs) {
            // Those added before this id, then this one: as written since, or as it was.
            while let Some((n, (r, d))) = new.next_if(|(n, _)| n < id) {
                self.decoded += 1;
                rows.push((n, r));
                out.push(d);
            }
            if let Some((n, (r, d))) = new.next_if(|(n, _)| n == id) {
                self.decoded += 1;
                rows.push((n, r));
                out.push(d);
            } else {
                self.kept += 1;
                rows.push((id.clone(), *rev));
                out.push(doc.clone());
            }
        }
        for (n, (r, d)) in new {
            self.decoded += 1;
            rows.push((n, r));
            out.push(d);
        }
        self.revisions.kinds.insert(T::KIND, rows);
        out
    }
}
