//! GoBGP's gRPC API, just what the ingest benchmark asks: the size of the global table
//! (`GobgpApi.GetTable`, what `gobgp global rib summary` asks). One HTTP/2 connection is
//! kept open and each poll is one unary call on it, so polling GoBGP costs what polling
//! the others' control sockets does, not a process started every 20 ms.
//!
//! The messages are GoBGP 3's (`api/gobgp.proto`, package `apipb`; GoBGP 4 renamed the
//! service), written out for the
//! three fields asked: an enum travels as its number, which is what protobuf puts on the
//! wire.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

const GET_TABLE: &str = "/apipb.GobgpApi/GetTable";
/// `apipb.TableType.GLOBAL`, `apipb.Family.Afi.AFI_IP`, `apipb.Family.Safi.SAFI_UNICAST`.
const GLOBAL: i32 = 0;
const AFI_IP: i32 = 1;
const SAFI_UNICAST: i32 = 1;

#[derive(Clone, PartialEq, Message)]
struct Family {
    #[prost(int32, tag = "1")]
    afi: i32,
    #[prost(int32, tag = "2")]
    safi: i32,
}

#[derive(Clone, PartialEq, Message)]
struct GetTableRequest {
    #[prost(int32, tag = "1")]
    table_type: i32,
    #[prost(message, optional, tag = "2")]
    family: Option<Family>,
    #[prost(string, tag = "3")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct GetTableResponse {
    #[prost(uint64, tag = "1")]
    num_destination: u64,
    #[prost(uint64, tag = "2")]
    num_path: u64,
    #[prost(uint64, tag = "3")]
    num_accepted: u64,
}

impl GetTableRequest {
    /// The global table, IPv4 unicast (what `gobgp global rib summary` asks).
    fn global_ipv4() -> Self {
        GetTableRequest {
            table_type: GLOBAL,
            family: Some(Family {
                afi: AFI_IP,
                safi: SAFI_UNICAST,
            }),
            name: String::new(),
        }
    }
}

/// A gRPC message on the wire: not compressed, its length, the message.
fn frame(m: &impl Message) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + m.encoded_len());
    b.put_u8(0);
    b.put_u32(m.encoded_len() as u32);
    m.encode(&mut b).expect("a BytesMut grows");
    b.freeze()
}

/// The one message of a unary answer's body.
fn unframe<M: Message + Default>(body: &[u8]) -> Result<M, String> {
    let [0, a, b, c, d, rest @ ..] = body else {
        return Err(format!(
            "an answer of {} bytes is not one uncompressed gRPC message",
            body.len()
        ));
    };
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let msg = rest
        .get(..len)
        .ok_or_else(|| format!("the answer says {len} bytes and holds {}", rest.len()))?;
    M::decode(msg).map_err(|e| e.to_string())
}

/// A client of one gobgpd, on a runtime of its own (the benchmark is not async).
pub struct GoBgpApi {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    send: h2::client::SendRequest<Bytes>,
}

impl GoBgpApi {
    pub fn connect(addr: SocketAddr) -> Result<GoBgpApi, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let send = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("GoBGP's API at {addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let (send, conn) = h2::client::handshake(tcp)
                .await
                .map_err(|e| format!("GoBGP's API at {addr}: HTTP/2: {e}"))?;
            // Driven whenever the runtime is, that is during each call.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, String>(send)
        })?;
        Ok(GoBgpApi { rt, addr, send })
    }

    /// Destinations (prefixes) in the global IPv4 unicast table.
    pub fn global_destinations(&self) -> Result<u64, String> {
        let req = GetTableRequest::global_ipv4();
        // As long as the other speakers' polls may take (their sockets' read timeouts).
        let call = tokio::time::timeout(Duration::from_secs(10), self.unary(GET_TABLE, &req));
        let r: GetTableResponse = self
            .rt
            .block_on(call)
            .map_err(|_| format!("{GET_TABLE}: no answer in 10 s"))??;
        Ok(r.num_destination)
    }

    async fn unary<M: Message + Default>(
        &self,
        path: &str,
        req: &impl Message,
    ) -> Result<M, String> {
        let err = |e: h2::Error| format!("{path}: {e}");
        let mut send = self.send.clone().ready().await.map_err(err)?;
        let head = http::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| e.to_string())?;
        let (answer, mut body_out) = send.send_request(head, false).map_err(err)?;
        body_out.send_data(frame(req), true).map_err(err)?;
        let answer = answer.await.map_err(err)?;
        if answer.status() != http::StatusCode::OK {
            return Err(format!("{path}: HTTP status {}", answer.status()));
        }
        // A call refused at once has its gRPC status in the head ("trailers only").
        let head_status = grpc_status(answer.headers());
        let mut body = answer.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(err)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(err)?;
        match trailers.as_ref().and_then(grpc_status).or(head_status) {
            Some((0, _)) => unframe(&data).map_err(|e| format!("{path}: {e}")),
            Some((code, message)) => Err(format!("{path}: gRPC status {code}: {message}")),
            None => Err(format!("{path}: the answer has no gRPC status")),
        }
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_request_is_the_bytes_protobuf_puts_on_the_wire() {
        let req = GetTableRequest::global_ipv4();
        // Field 2 (family), 4 bytes: afi (1) = 1, safi (2) = 1; GLOBAL and "" omitted.
        assert_eq!(
            &frame(&req)[..],
            &[0, 0, 0, 0, 6, 0x12, 4, 0x08, 1, 0x10, 1]
        );
    }

    #[test]
    fn an_answer_is_read_and_a_short_one_refused() {
        // num_destination (1) = 1,000,000, num_path (2) = 1,000,000.
        let body = [
            0, 0, 0, 0, 8, 0x08, 0xc0, 0x84, 0x3d, 0x10, 0xc0, 0x84, 0x3d,
        ];
        let r: GetTableResponse = unframe(&body).expect("decodes");
        assert_eq!((r.num_destination, r.num_path), (1_000_000, 1_000_000));
        assert!(unframe::<GetTableResponse>(&body[..9]).is_err());
        assert!(
            unframe::<GetTableResponse>(&[1, 0, 0, 0, 0]).is_err(),
            "compressed"
        );
    }
}
