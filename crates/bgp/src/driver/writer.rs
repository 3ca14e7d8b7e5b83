//! A connection's writer: its own task, so that a peer that stops reading holds up no one.
//!
//! ```text
//!   session task ── Ctl (OPEN, KEEPALIVE, NOTIFICATION, close) ──┐
//!                                                                 ├─▶ writer task ─▶ socket
//!   instance task ── Chunk (UPDATEs, within the peer's window) ──┘        │
//!        ▲                                                                 │
//!        └──── room: the chunk is written (in_flight down, confirmed up) ──┘
//! ```
//!
//! Messages are written whole; control messages go between them, before the next data.
//! The instance hands a peer data only while its bytes in flight are under
//! [`WINDOW`], so what waits for a slow peer is its outbox (an entry per prefix), not
//! messages. The Send Hold Timer (RFC 9687) ends a connection whose peer has taken no
//! data for the send hold time while we had some to send: a NOTIFICATION (Send Hold Timer
//! Expired) is attempted if it can go without waiting, and the connection is closed.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::wire::{Message, Notification, error_code};

/// Octets of UPDATEs handed to a peer's writer and not yet written, at most.
pub const WINDOW: usize = 512 * 1024;
/// What the instance hands a writer at once, at most (about).
pub const CHUNK: usize = 64 * 1024;
/// Chunks a writer's queue holds: more than [`WINDOW`] can need.
const CHUNKS: usize = 64;
const CONTROL: usize = 64;
/// How long a closing writer tries to get its NOTIFICATION out.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What a writer and the instance share.
#[derive(Debug, Default)]
pub struct WireShared {
    /// Octets handed over and not yet written.
    pub in_flight: AtomicUsize,
    /// Routes the peer holds by what was written to the socket (the sum of the written
    /// chunks' deltas): the advertised count.
    pub confirmed: AtomicI64,
}

/// UPDATEs for the peer, and what they change of what it holds.
#[derive(Debug)]
pub struct Chunk {
    pub msgs: Vec<BytesMut>,
    pub bytes: usize,
    pub delta: i64,
}

#[derive(Debug)]
pub enum Ctl {
    Msg(BytesMut),
    /// Established: the send hold time from now on (None: off).
    SendHold(Option<Duration>),
    /// Close, after this NOTIFICATION if it can be sent.
    Close(Option<Notification>),
}

/// How a writer ended.
#[derive(Debug)]
pub enum WriterEnd {
    Closed,
    Failed(io::Error),
    /// The peer took nothing for this long while we had data for it (RFC 9687).
    SendHoldExpired(Duration),
}

/// The instance's side of a connection's writer.
#[derive(Debug, Clone)]
pub struct Wire {
    pub data: mpsc::Sender<Chunk>,
    pub shared: Arc<WireShared>,
}

/// The session's side.
pub struct Writer {
    pub ctl: mpsc::Sender<Ctl>,
    pub wire: Wire,
    pub done: oneshot::Receiver<WriterEnd>,
}

impl Writer {
    /// Starts the writer of `w`; `room` is told whenever a chunk has been written.
    pub fn spawn(w: OwnedWriteHalf, room: Arc<Notify>) -> Writer {
        let (ctl_tx, ctl_rx) = mpsc::channel(CONTROL);
        let (data_tx, data_rx) = mpsc::channel(CHUNKS);
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::new(WireShared::default());
        let task = Task {
            w,
            ctl: ctl_rx,
            data: data_rx,
            shared: shared.clone(),
            room,
        };
        tokio::spawn(async move {
            let end = task.run().await;
            let _ = done_tx.send(end);
        });
        Writer {
            ctl: ctl_tx,
            wire: Wire {
                data: data_tx,
                shared,
            },
            done: done_rx,
        }
    }

    /// Closes the connection after `n` (if it can go) and waits until the writer is done.
    pub async fn close(mut self, n: Option<Notification>) {
        if self.ctl.send(Ctl::Close(n)).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_WAIT * 2, &mut self.done).await;
        }
    }
}

struct Task {
    w: OwnedWriteHalf,
    ctl: mpsc::Receiver<Ctl>,
    data: mpsc::Receiver<Chunk>,
    shared: Arc<WireShared>,
    room: Arc<Notify>,
}

/// A message being written, and how much of it is out.
struct Current {
    buf: BytesMut,
    at: usize,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) -> WriterEnd {
        let mut control: VecDeque<BytesMut> = VecDeque::new();
        let mut chunk: Option<(VecDeque<BytesMut>, usize, i64)> = None;
        let mut cur: Option<Current> = None;
        let mut send_hold: Option<Duration> = None;
        let mut progress = Instant::now();
        loop {
            if cur.is_none() {
                if let Some(m) = control.pop_front() {
                    cur = Some(Current { buf: m, at: 0 });
                } else if let Some((msgs, bytes, delta)) = &mut chunk {
                    match msgs.pop_front() {
                        Some(m) => cur = Some(Current { buf: m, at: 0 }),
                        None => {
                            // The whole chunk is in the socket.
                            self.shared.in_flight.fetch_sub(*bytes, Ordering::AcqRel);
                            self.shared.confirmed.fetch_add(*delta, Ordering::AcqRel);
                            chunk = None;
                            self.room.notify_one();
                            continue;
                        }
                    }
                }
            }
            // The send hold timer runs while something waits to be written.
            let deadline = cur.as_ref().and(send_hold).map(|d| progress + d);
            tokio::select! {
                biased;
                c = self.ctl.recv() => match c {
                    Some(Ctl::Msg(m)) => control.push_back(m),
                    Some(Ctl::SendHold(d)) => {
                        send_hold = d;
                        progress = Instant::now();
                    }
                    Some(Ctl::Close(n)) => {
                        // A NOTIFICATION after half a message would not be one: then the
                        // connection just closes.
                        let whole = cur.as_ref().is_none_or(|c| c.at == 0);
                        if let (Some(n), true) = (n, whole) {
                            let m = Message::Notification(n).encode();
                            let _ = tokio::time::timeout(CLOSE_WAIT, self.w.write_all(&m)).await;
                        }
                        let _ = tokio::time::timeout(CLOSE_WAIT, self.w.shutdown()).await;
                        return WriterEnd::Closed;
                    }
                    None => return WriterEnd::Closed,
                },
                r = write_some(&mut self.w, cur.as_mut()), if cur.is_some() => match r {
                    Ok(n) => {
                        progress = Instant::now();
                        if let Some(c) = cur.as_mut() {
                            c.at += n;
                            if c.at >= c.buf.len() {
                                cur = None;
                            }
                        }
                    }
                    Err(e) => return WriterEnd::Failed(e),
                },
                d = self.data.recv(), if chunk.is_none() && cur.is_none() => match d {
                    Some(c) => chunk = Some((c.msgs.into(), c.bytes, c.delta)),
                    None => return WriterEnd::Closed,
                },
                _ = sleep_until(deadline) => {
                    let d = send_hold.unwrap_or_default();
                    // Only if it can go now, whole, and not after half a message.
                    if cur.as_ref().is_none_or(|c| c.at == 0) {
                        let n = Notification::new(error_code::SEND_HOLD_TIMER_EXPIRED, 0);
                        let _ = self.w.try_write(&Message::Notification(n).encode());
                    }
                    return WriterEnd::SendHoldExpired(d);
                }
            }
        }
    }
}

async fn write_some(w: &mut OwnedWriteHalf, cur: Option<&mut Current>) -> io::Result<usize> {
    match cur {
        Some(c) => match w.write(&c.buf[c.at..]).await {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the connection took nothing",
            )),
            r => r,
        },
        None => std::future::pending().await,
    }
}
