//! `kubectl port-forward`: Kubernetes' `portforward.k8s.io` protocol over SPDY/3.1, served
//! on an upgraded connection (a plain SPDY upgrade, or SPDY carried in WebSocket binary
//! messages, `SPDY/3.1+portforward.k8s.io`, which kubectl 1.31+ tries first).
//!
//! For every local connection the client opens two streams with the same `requestid`
//! header: an `error` stream (which it half-closes at once and reads to the end) and a
//! `data` stream; both carry the remote `port`. The kubelet connects to that port on the
//! loopback of the pod's network namespace and copies bytes both ways; when the pod side
//! ends it half-closes the data stream and closes the error stream, after writing a message
//! to it if the forwarding failed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use crate::runtime::Runtime;
use crate::spdy::{self, Frame, HeaderCodec, FLAG_FIN, MAX_DATA, PROTOCOL_ERROR, REFUSED_STREAM};

/// The stream protocol (`X-Stream-Protocol-Version`) negotiated on a SPDY upgrade.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled in WebSocket messages.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long the second stream of a pair may take to follow the first (the kubelet's
/// `--streaming-connection-idle-timeout` does this job in Kubernetes; 30 s is its stream
/// creation timeout).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pod whose ports a session forwards to.
#[derive(Clone, Debug)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The streams of one request id seen so far.
struct Pending {
    since: Instant,
    error: Option<u32>,
    data: Option<(u32, Option<String>, mpsc::Receiver<Bytes>)>,
}

/// Serves one port-forward session on `io` until the client goes away.
pub async fn serve<IO>(io: IO, runtime: Arc<dyn Runtime>, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(spdy::write_frames(wr, out_rx));
    let (closed_tx, closed) = watch::channel(false);
    let mut codec = HeaderCodec::new();
    // Where the client's data for each open stream goes (dropped at its FIN or RST).
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut last_stream = 0u32;
    loop {
        let frame = match spdy::read_frame(&mut rd, &mut codec).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, pod = %target.name, "port-forward: bad frame");
                let _ = out
                    .send(Frame::GoAway {
                        last_stream,
                        status: PROTOCOL_ERROR,
                    })
                    .await;
                break;
            }
        };
        // Pairs that never completed.
        pending.retain(|_, p| {
            let keep = p.since.elapsed() < PAIR_TIMEOUT;
            if !keep {
                for s in p.error.iter().chain(p.data.as_ref().map(|d| &d.0)) {
                    let _ = out.try_send(Frame::RstStream {
                        stream: *s,
                        status: REFUSED_STREAM,
                    });
                }
            }
            keep
        });
        match frame {
            Frame::SynStream {
                stream,
                flags,
                headers,
            } => {
                // Client streams are odd and increasing, and of a type this protocol has.
                let fresh = stream % 2 == 1 && stream > last_stream;
                if fresh {
                    last_stream = stream;
                }
                let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                if !fresh || !matches!(kind, "error" | "data") {
                    tracing::debug!(stream, kind, fresh, "port-forward: stream refused");
                    let _ = out
                        .send(Frame::RstStream {
                            stream,
                            status: PROTOCOL_ERROR,
                        })
                        .await;
                    continue;
                }
                if out
                    .send(Frame::SynReply {
                        stream,
                        flags: 0,
                        headers: Vec::new(),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                let (tx, rx) = mpsc::channel(16);
                if flags & FLAG_FIN == 0 {
                    inbound.insert(stream, tx);
                }
                let request = spdy::header(&headers, "requestid")
                    .unwrap_or("")
                    .to_string();
                let p = pending.entry(request.clone()).or_insert_with(|| Pending {
                    since: Instant::now(),
                    error: None,
                    data: None,
                });
                if kind == "error" {
                    p.error = Some(stream);
                } else {
                    let port = spdy::header(&headers, "port").map(str::to_string);
                    p.data = Some((stream, port, rx));
                }
                if p.error.is_some() && p.data.is_some() {
                    if let Some(Pending {
                        error: Some(error),
                        data: Some((data, port, rx)),
                        ..
                    }) = pending.remove(&request)
                    {
                        tokio::spawn(forward(
                            Arc::clone(&runtime),
                            target.clone(),
                            port,
                            error,
                            data,
                            rx,
                            out.clone(),
                            closed.clone(),
                        ));
                    }
                }
            }
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if let Some(tx) = inbound.get(&stream) {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        inbound.remove(&stream);
                    }
                }
                if flags & FLAG_FIN != 0 {
                    inbound.remove(&stream);
                }
            }
            Frame::RstStream { stream, .. } => {
                inbound.remove(&stream);
            }
            Frame::Ping { id } => {
                if out.send(Frame::Ping { id }).await.is_err() {
                    break;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Ignored { .. } => {}
        }
    }
    drop(inbound);
    let _ = closed_tx.send(true);
    drop(out);
    if let Ok(Err(e)) = writer.await {
        tracing::debug!(error = %e, pod = %target.name, "port-forward: write");
    }
}

/// Forwards one client connection (a data/error stream pair) to `port` in the pod.
#[allow(clippy::too_many_arguments)]
async fn forward(
    runtime: Arc<dyn Runtime>,
    target: Target,
    port: Option<String>,
    error_stream: u32,
    data_stream: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
    mut closed: watch::Receiver<bool>,
) {
    let fin = |stream: u32, data: Bytes| Frame::Data {
        stream,
        flags: FLAG_FIN,
        data,
    };
    let port_text = port.unwrap_or_default();
    let conn = match port_text.parse::<u16>().ok().filter(|p| *p > 0) {
        None => Err(format!("invalid port {port_text:?}")),
        Some(p) => {
            match tokio::time::timeout(CONNECT_TIMEOUT, runtime.port_forward(&target.uid, p)).await
            {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("connecting timed out after {CONNECT_TIMEOUT:?}")),
            }
        }
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port_text} to pod {}/{}, uid {}: {e}",
                target.namespace, target.name, target.uid
            );
            tracing::info!("{msg}");
            let _ = out.send(fin(error_stream, Bytes::from(msg))).await;
            let _ = out.send(fin(data_stream, Bytes::new())).await;
            return;
        }
    };
    let (mut pod_rd, mut pod_wr) = conn.into_split();
    let upstream = tokio::spawn(async move {
        while let Some(b) = from_client.recv().await {
            if pod_wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = pod_wr.shutdown().await;
    });
    let mut buf = vec![0u8; MAX_DATA];
    let mut failure = None;
    loop {
        tokio::select! {
            n = pod_rd.read(&mut buf) => match n {
                Ok(0) => break,
                Ok(n) => {
                    let frame = Frame::Data {
                        stream: data_stream,
                        flags: 0,
                        data: Bytes::copy_from_slice(&buf[..n]),
                    };
                    if out.send(frame).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            },
            _ = closed.changed() => break,
        }
    }
    let _ = out.send(fin(data_stream, Bytes::new())).await;
    let message = failure
        .map(|e| {
            format!(
                "error forwarding port {port_text} to pod {}/{}, uid {}: {e}",
                target.namespace, target.name, target.uid
            )
        })
        .unwrap_or_default();
    let _ = out.send(fin(error_stream, Bytes::from(message))).await;
    // The client's side ends with its FIN, a reset or the session.
    if *closed.borrow() {
        upstream.abort();
    }
}

/// Carries a byte stream in WebSocket binary messages (the server side of
/// `SPDY/3.1+portforward.k8s.io`): returns the byte stream's end for the SPDY session.
pub fn websocket_tunnel<IO>(io: IO) -> tokio::io::DuplexStream
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (ours, theirs) = tokio::io::duplex(4 * MAX_DATA);
    let (mut ws_rd, mut ws_wr) = tokio::io::split(io);
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(ours);
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<(u8, Vec<u8>)>(4);
    // WebSocket → byte stream (answering pings, ending at a close).
    tokio::spawn(async move {
        loop {
            match crate::ws::read_frame(&mut ws_rd).await {
                Ok(Some((crate::ws::OP_BINARY | crate::ws::OP_CONTINUATION, payload))) => {
                    if pipe_wr.write_all(&payload).await.is_err() {
                        break;
                    }
                }
                Ok(Some((crate::ws::OP_PING, payload))) => {
                    let _ = ctl_tx.send((crate::ws::OP_PONG, payload)).await;
                }
                Ok(Some((crate::ws::OP_CLOSE, _))) | Ok(None) | Err(_) => {
                    let _ = ctl_tx.send((crate::ws::OP_CLOSE, Vec::new())).await;
                    break;
                }
                Ok(Some(_)) => {}
            }
        }
        let _ = pipe_wr.shutdown().await;
    });
    // Byte stream → WebSocket binary messages.
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATA + 64];
        loop {
            tokio::select! {
                n = pipe_rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        let _ = crate::ws::write_frame(&mut ws_wr, crate::ws::OP_CLOSE, &[0x03, 0xe8]).await;
                        break;
                    }
                    Ok(n) => {
                        if crate::ws::write_frame(&mut ws_wr, crate::ws::OP_BINARY, &buf[..n]).await.is_err() {
                            break;
                        }
                    }
                },
                ctl = ctl_rx.recv() => match ctl {
                    Some((crate::ws::OP_CLOSE, _)) | None => {
                        let _ = crate::ws::write_frame(&mut ws_wr, crate::ws::OP_CLOSE, &[0x03, 0xe8]).await;
                        break;
                    }
                    Some((op, payload)) => {
                        if crate::ws::write_frame(&mut ws_wr, op, &payload).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = ws_wr.shutdown().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;
    use crate::spdy::{encode_frame, read_frame};

    fn h(pairs: &[(&str, &str)]) -> spdy::Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The fake runtime has no network namespace: the session must answer the pair with
    /// replies and an error message, and echo pings, exactly as kubectl expects.
    #[tokio::test]
    async fn a_failed_forward_reports_on_the_error_stream() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime::new(Duration::ZERO, 1));
        let target = Target {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
        };
        let session = tokio::spawn(serve(server, runtime, target));
        let (mut rd, mut wr) = tokio::io::split(client);
        let mut tx = HeaderCodec::new();
        let mut send = Vec::new();
        for f in [
            Frame::SynStream {
                stream: 1,
                flags: 0,
                headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::Data {
                stream: 1,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::SynStream {
                stream: 3,
                flags: 0,
                headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::Ping { id: 1 },
            // A stream of no known type is refused.
            Frame::SynStream {
                stream: 5,
                flags: 0,
                headers: h(&[("streamtype", "bogus")]),
            },
        ] {
            send.extend_from_slice(&encode_frame(&f, &mut tx).expect("encode"));
        }
        wr.write_all(&send).await.expect("write");
        let mut rx = HeaderCodec::new();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 6 {
            let f = tokio::time::timeout_at(deadline, read_frame(&mut rd, &mut rx))
                .await
                .expect("frames in time")
                .expect("a frame")
                .expect("not the end");
            got.push(f);
        }
        let replies: Vec<u32> = got
            .iter()
            .filter_map(|f| match f {
                Frame::SynReply { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect();
        assert_eq!(replies, vec![1, 3]);
        assert!(got.contains(&Frame::Ping { id: 1 }));
        assert!(got.contains(&Frame::RstStream {
            stream: 5,
            status: PROTOCOL_ERROR
        }));
        let error = got
            .iter()
            .find_map(|f| match f {
                Frame::Data {
                    stream: 1,
                    flags: FLAG_FIN,
                    data,
                } => Some(String::from_utf8_lossy(data).to_string()),
                _ => None,
            })
            .expect("an error message");
        assert!(
            error.starts_with("error forwarding port 80 to pod default/web, uid u1:"),
            "{error}"
        );
        assert!(got.contains(&Frame::Data {
            stream: 3,
            flags: FLAG_FIN,
            data: Bytes::new()
        }));
        drop(wr);
        drop(rd);
        tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .expect("the session ends with its connection")
            .expect("no panic");
    }
}
