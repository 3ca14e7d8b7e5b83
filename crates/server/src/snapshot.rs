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
}

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
        let mut reader = Reader {
            read: &mut r,
            before: before.as_deref(),
            revisions: Revisions::default(),
            decoded: 0,
            kept: 0,
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
        let (revisions, decoded, kept) = (reader.revisions, reader.decoded, reader.kept);
        let revision = r.revision();
        let k = Arc::new(Kept {
            revision,
            snapshot: Arc::new(snapshot),
            revisions,
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
    revisions: Revisions,
    decoded: usize,
    kept: usize,
}

impl Reader<'_> {
    /// One kind's documents as of the read: those whose row still has the revision it had
    /// in the last snapshot are taken from it, the others decoded from their rows.
    async fn kind<T: Document + Clone>(
        &mut self,
        list: impl Fn(&Snapshot) -> &Vec<T>,
    ) -> Result<Vec<T>, cic_store::Error> {
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
        let since = self.before.map_or(0, |k| k.revision);
        let mut written = self.read.written_after::<T>(since).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, rev) in &rows {
            if let Some(doc) = written.remove(id) {
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
}
