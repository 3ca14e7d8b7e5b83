//! One conversation with the kernel's routing netlink: a request and its acknowledgement,
//! a dump, and a batch — many requests in one datagram, each answered on its own. The
//! messages are netlink-packet-route's (built with rtnetlink's builders); the socket,
//! sequence numbers and matching of answers are netlink-proto's.

use std::time::Duration;

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    ErrorMessage, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::proto::ConnectionHandle;
use rtnetlink::sys::SocketAddr;

/// Why a request was not done.
#[derive(Debug, Clone)]
pub(crate) enum NlError {
    /// The kernel refused it (callers read the errno with [`NlError::errno`]).
    Refused(ErrorMessage),
    /// The connection's task or socket is gone.
    Closed,
    /// A dump ended with this error (negative errno) instead of its objects.
    DumpFailed(i32),
    /// No answer in [`ANSWER_WAIT`]: the kernel drops answers a full receive buffer has
    /// no room for, so whether it was done is unknown (read the kernel again).
    NoAnswer,
}

/// Busy, try again, no buffer space: the kernel may do it when asked again.
const EBUSY: i32 = 16;
const EAGAIN: i32 = 11;
const ENOBUFS: i32 = 105;

impl NlError {
    /// Whether asking again may succeed: no answer came (the kernel dropped it), or the
    /// kernel was busy, not a request it refused for what it asked.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, NlError::NoAnswer) || matches!(self.errno(), Some(EBUSY | EAGAIN | ENOBUFS))
    }

    /// The errno the kernel refused with.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            NlError::Refused(m) => m.code.map(|c| -c.get()),
            NlError::DumpFailed(code) => Some(-code),
            _ => None,
        }
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NlError::Refused(m) => match self.errno() {
                Some(code) => write!(f, "{}", std::io::Error::from_raw_os_error(code)),
                None => write!(f, "{m}"),
            },
            NlError::Closed => write!(f, "the netlink connection is closed"),
            NlError::DumpFailed(code) => {
                write!(f, "{}", std::io::Error::from_raw_os_error(-code))
            }
            NlError::NoAnswer => write!(
                f,
                "no answer from the kernel in {} s",
                ANSWER_WAIT.as_secs()
            ),
        }
    }
}

/// How long a request, a dump or a batch's datagram waits for its answers (the kernel
/// gives them at once; one the socket had no room for never comes).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Requests answered with an acknowledgement.
pub(crate) const ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// Creates; refused when it exists (`ip link add`); with RTM_SETLINK, how rtnetlink
/// changes a link.
pub(crate) const CREATE: u16 = ACK | NLM_F_CREATE | NLM_F_EXCL;
/// Creates or replaces (`ip route replace`).
pub(crate) const REPLACE: u16 = ACK | NLM_F_CREATE | NLM_F_REPLACE;
/// A dump of every object of the kind.
pub(crate) const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;
/// One object asked for by its key (a link by name).
pub(crate) const GET: u16 = NLM_F_REQUEST;

/// Requests in one datagram at most. The kernel answers each with a message of its own,
/// queued on the socket before it is read, and drops answers beyond the socket's receive
/// buffer (212,992 octets by default; an acknowledgement takes about 768 of it, one with
/// an error and the request echoed more): 64 keep a batch well inside it, with room for
/// the socket's other callers.
pub const BATCH: usize = 64;

#[derive(Clone)]
pub(crate) struct Rtnl(ConnectionHandle<RouteNetlinkMessage>);

fn message(payload: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut m = NetlinkMessage::from(payload);
    m.header.flags = flags;
    m
}

impl Rtnl {
    pub(crate) fn new(handle: ConnectionHandle<RouteNetlinkMessage>) -> Rtnl {
        Rtnl(handle)
    }

    /// Sends one request and waits for its acknowledgement: a batch of one.
    pub(crate) async fn ack(
        &self,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NlError> {
        self.batch(vec![(payload, flags)])
            .await
            .pop()
            .unwrap_or(Err(NlError::Closed))
    }

    /// Sends a request the kernel answers with objects (a dump, or one object asked for
    /// by its key) and collects them. A dump counts only when its end came (the
    /// connection passes it on: `forward_done`) without an error, one object only when
    /// it came: not a part cut off by a closed connection.
    pub(crate) async fn objects(
        &self,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        tokio::time::timeout(ANSWER_WAIT, self.objects_now(payload, flags))
            .await
            .unwrap_or(Err(NlError::NoAnswer))
    }

    async fn objects_now(
        &self,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut answers = self
            .0
            .request(message(payload, flags), SocketAddr::new(0, 0))
            .map_err(|_| NlError::Closed)?;
        let mut out = Vec::new();
        let dump = flags & NLM_F_DUMP != 0;
        let mut ended = false;
        while let Some(m) = answers.next().await {
            match m.payload {
                NetlinkPayload::InnerMessage(o) => {
                    out.push(o);
                    ended |= !dump;
                }
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(NlError::Refused(e));
                }
                NetlinkPayload::Done(d) if d.code < 0 => return Err(NlError::DumpFailed(d.code)),
                NetlinkPayload::Done(_) => ended = true,
                _ => {}
            }
        }
        if !ended {
            return Err(NlError::Closed);
        }
        Ok(out)
    }

    /// Sends `requests` (each with its flags, each asking for an acknowledgement), up to
    /// [`BATCH`] in one datagram, a datagram only when the one before is answered; the
    /// kernel applies them in order and goes on past one it refuses. The answer of each,
    /// in the order given. Once a datagram is not answered in full (the connection
    /// closed, or answers were lost), the rest are not sent: they and it count as not
    /// done, and the caller reads the kernel again.
    pub(crate) async fn batch(
        &self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), NlError>> {
        let mut out: Vec<Result<(), NlError>> = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        let mut failed: Option<NlError> = None;
        while requests.peek().is_some() {
            if let Some(why) = &failed {
                out.extend(requests.by_ref().map(|_| Err(why.clone())));
                break;
            }
            let chunk: Vec<_> = requests
                .by_ref()
                .take(BATCH)
                .map(|(p, flags)| message(p, flags | NLM_F_ACK))
                .collect();
            let n = chunk.len();
            let first = out.len();
            out.extend((0..n).map(|_| Ok(())));
            let mut answers = match self.0.request_batch(chunk, SocketAddr::new(0, 0)) {
                Ok(a) => a,
                Err(_) => {
                    for r in &mut out[first..] {
                        *r = Err(NlError::Closed);
                    }
                    failed = Some(NlError::Closed);
                    continue;
                }
            };
            // netlink-proto numbers a batch's requests one after another and forwards
            // each answer with its request's number (acknowledgements too: the
            // connection is opened with `forward_ack`); the stream ends when every
            // request is answered. The kernel answers in order, so the first answer is
            // the first request's, and a refusal's place is its number less that one.
            let mut refused: Vec<(u32, NlError)> = Vec::new();
            let mut answered = 0usize;
            let all = async {
                let mut base = None;
                while let Some(m) = answers.next().await {
                    let seq = m.header.sequence_number;
                    let base = *base.get_or_insert(seq);
                    if let NetlinkPayload::Error(e) = m.payload {
                        answered += 1;
                        if e.code.is_some() {
                            refused.push((seq.wrapping_sub(base), NlError::Refused(e)));
                        }
                    }
                }
            };
            let in_time = tokio::time::timeout(ANSWER_WAIT, all).await.is_ok();
            if answered < n {
                // The socket closed under the batch, or answers were lost: what was not
                // answered is unknown (nor which answer is whose), so none of the
                // datagram counts as done.
                let why = if in_time {
                    NlError::Closed
                } else {
                    NlError::NoAnswer
                };
                for r in &mut out[first..] {
                    *r = Err(why.clone());
                }
                failed = Some(why);
                continue;
            }
            for (i, e) in refused {
                if let Some(r) = out.get_mut(first + i as usize) {
                    *r = Err(e);
                }
            }
        }
        out
    }
}
