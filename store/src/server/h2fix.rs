//! Accepts HTTP/2 requests whose `:authority` is a whole URL.
//!
//! etcdctl 3.4 dials per-endpoint maintenance calls (`endpoint status`, `endpoint hashkv`,
//! `defrag`, `snapshot save`, …) with the endpoint URL as the gRPC target, so its requests
//! carry `:authority: http://127.0.0.1:2379`. etcd's Go server ignores the authority; the `h2`
//! crate behind tonic rejects it as malformed (RST_STREAM PROTOCOL_ERROR). This wrapper sits on
//! the read side of each client connection and repairs such header blocks before `h2` sees
//! them: it decodes every request header block (to follow the client's HPACK state) and passes
//! it through untouched unless its authority needs fixing. From the first fixed block on, it
//! re-encodes every block of the connection as literals that never touch the dynamic table,
//! so the server's HPACK state can no longer disagree with what it receives.
//!
//! gRPC clients (grpc-go, tonic) send one `:authority` for every request of a connection, so
//! only the first header block is inspected: when it is fine, the wrapper steps aside and the
//! connection's bytes flow to `h2` untouched. Decoding every block cost ~20% of the server's
//! CPU under small-request load (HPACK Huffman tables are rebuilt per decode).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE any HTTP/2 peer accepts.
const MAX_FRAME: usize = 16_384;

struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    raw: Vec<u8>,
}

/// A connection whose incoming header blocks get their `:authority` repaired.
pub struct AuthorityFix<S> {
    inner: S,
    input: BytesMut,
    output: BytesMut,
    preface_done: bool,
    rewriting: bool,
    /// The first header block was fine: everything else passes through unexamined.
    passthrough: bool,
    pending: Option<PendingBlock>,
    decoder: loona_hpack::Decoder<'static>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            input: BytesMut::with_capacity(16 * 1024),
            output: BytesMut::new(),
            preface_done: false,
            rewriting: false,
            passthrough: false,
            pending: None,
            decoder: loona_hpack::Decoder::new(),
            eof: false,
        }
    }

    /// Moves every complete unit of `input` to `output`, repairing header blocks.
    fn process(&mut self) {
        if !self.preface_done {
            if self.input.len() < PREFACE_LEN {
                return;
            }
            let p = self.input.split_to(PREFACE_LEN);
            self.output.extend_from_slice(&p);
            self.preface_done = true;
        }
        while self.input.len() >= FRAME_HEADER_LEN {
            if self.passthrough {
                let rest = self.input.split();
                self.output.extend_from_slice(&rest);
                return;
            }
            let len = (usize::from(self.input[0]) << 16)
                | (usize::from(self.input[1]) << 8)
                | usize::from(self.input[2]);
            if self.input.len() < FRAME_HEADER_LEN + len {
                return;
            }
            let frame = self.input.split_to(FRAME_HEADER_LEN + len);
            let ty = frame[3];
            let flags = frame[4];
            let stream_id =
                u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
            let payload = &frame[FRAME_HEADER_LEN..];
            match (ty, self.pending.take()) {
                (TYPE_HEADERS, None) => {
                    let Some(fragment) = header_fragment(flags, payload) else {
                        self.output.extend_from_slice(&frame);
                        continue;
                    };
                    let block = PendingBlock {
                        stream_id,
                        end_stream: flags & FLAG_END_STREAM != 0,
                        fragment: fragment.to_vec(),
                        raw: frame.to_vec(),
                    };
                    if flags & FLAG_END_HEADERS != 0 {
                        self.finish(block);
                    } else {
                        self.pending = Some(block);
                    }
                }
                (TYPE_CONTINUATION, Some(mut block)) if block.stream_id == stream_id => {
                    block.fragment.extend_from_slice(payload);
                    block.raw.extend_from_slice(&frame);
                    if flags & FLAG_END_HEADERS != 0 {
                        self.finish(block);
                    } else {
                        self.pending = Some(block);
                    }
                }
                (_, pending) => {
                    // Anything else (or a protocol violation we leave for h2 to report).
                    if let Some(block) = pending {
                        self.output.extend_from_slice(&block.raw);
                    }
                    self.output.extend_from_slice(&frame);
                }
            }
        }
    }

    fn finish(&mut self, block: PendingBlock) {
        let headers = match self.decoder.decode(&block.fragment) {
            Ok(h) => h,
            Err(_) => {
                // Not ours to judge: h2 will reject it the same way.
                self.output.extend_from_slice(&block.raw);
                return;
            }
        };
        let bad = headers
            .iter()
            .any(|(n, v)| n.as_slice() == b":authority" && needs_fix(v));
        if !bad && !self.rewriting {
            self.output.extend_from_slice(&block.raw);
            self.passthrough = true;
            return;
        }
        self.rewriting = true;
        let mut encoded = Vec::new();
        for (n, v) in &headers {
            if n.as_slice() == b":authority" && needs_fix(v) {
                match repair(v) {
                    Some(fixed) => encode_literal(&mut encoded, n, &fixed),
                    None => continue,
                }
            } else {
                encode_literal(&mut encoded, n, v);
            }
        }
        let chunks: Vec<&[u8]> = if encoded.is_empty() {
            vec![&[][..]]
        } else {
            encoded.chunks(MAX_FRAME).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let ty = if i == 0 {
                TYPE_HEADERS
            } else {
                TYPE_CONTINUATION
            };
            let mut flags = 0;
            if i == 0 && block.end_stream {
                flags |= FLAG_END_STREAM;
            }
            if i == last {
                flags |= FLAG_END_HEADERS;
            }
            let len = chunk.len();
            self.output.extend_from_slice(&[
                (len >> 16) as u8,
                (len >> 8) as u8,
                len as u8,
                ty,
                flags,
            ]);
            self.output.put_u32(block.stream_id);
            self.output.extend_from_slice(chunk);
        }
    }
}

/// The header block fragment of a HEADERS frame, without padding and priority fields.
fn header_fragment(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if flags & FLAG_PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if flags & FLAG_PRIORITY != 0 {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

fn needs_fix(v: &[u8]) -> bool {
    v.windows(3).any(|w| w == b"://") || v.contains(&b'/')
}

/// `http://host:port/...` → `host:port`; `None` if nothing usable is left.
fn repair(v: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(v).ok()?;
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let host = rest.split('/').next()?;
    if host.is_empty() {
        None
    } else {
        Some(host.as_bytes().to_vec())
    }
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn encode_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// "Literal header field without indexing — new name", raw (non-Huffman) strings.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_int(out, 0x00, 7, name.len());
    out.extend_from_slice(name);
    encode_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.passthrough && this.output.is_empty() && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = rb.filled();
                    if filled.is_empty() {
                        this.eof = true;
                        // Hand over whatever incomplete bytes remain; h2 reports the error.
                        if let Some(block) = this.pending.take() {
                            this.output.extend_from_slice(&block.raw);
                        }
                        let rest = this.input.split();
                        this.output.extend_from_slice(&rest);
                    } else {
                        this.input.extend_from_slice(filled);
                        this.process();
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    async fn filter(input: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        AuthorityFix::new(std::io::Cursor::new(input))
            .read_to_end(&mut out)
            .await
            .expect("read");
        out
    }

    fn headers_of(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut dec = loona_hpack::Decoder::new();
        let mut out = Vec::new();
        let mut p = &bytes[PREFACE_LEN..];
        let mut block = Vec::new();
        while p.len() >= FRAME_HEADER_LEN {
            let len = (usize::from(p[0]) << 16) | (usize::from(p[1]) << 8) | usize::from(p[2]);
            let (ty, flags) = (p[3], p[4]);
            if ty == TYPE_HEADERS {
                block = header_fragment(flags, &p[9..9 + len])
                    .expect("fragment")
                    .to_vec();
            } else if ty == TYPE_CONTINUATION {
                block.extend_from_slice(&p[9..9 + len]);
            }
            if (ty == TYPE_HEADERS || ty == TYPE_CONTINUATION) && flags & FLAG_END_HEADERS != 0 {
                out.push(dec.decode(&block).expect("decodes"));
            }
            p = &p[9 + len..];
        }
        out
    }

    #[tokio::test]
    async fn good_requests_pass_through_byte_for_byte() {
        let mut enc = loona_hpack::Encoder::new();
        let block = enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Range"),
        ]);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
        // Later blocks of the connection are not examined any more (gRPC clients keep one
        // authority per connection): they reach h2 exactly as sent.
        let later = enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Put"),
        ]);
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 3, &later));
        input.extend(frame(0x0, FLAG_END_STREAM, 3, &[7u8; 40_000][..16_000]));
        assert_eq!(filter(input.clone()).await, input);
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input.clone()));
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.expect("read");
        assert!(
            fix.passthrough,
            "a clean first block switches to pass-through"
        );
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn url_authority_is_repaired_and_later_blocks_stay_decodable() {
        let mut enc = loona_hpack::Encoder::new();
        let first = enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b"x-big", &[b'a'; 20_000][..]),
        ]);
        // The second block leans on the dynamic table entries the first one created.
        let second = enc.encode(vec![
            (&b":method"[..], &b"POST"[..]),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
        ]);
        let mut input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // The first block arrives split over HEADERS + CONTINUATION.
        let (a, b) = first.split_at(10);
        input.extend(frame(TYPE_HEADERS, FLAG_END_STREAM, 1, a));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 3, &{
            let mut p = vec![2u8];
            p.extend_from_slice(&second);
            p.extend_from_slice(&[0, 0]);
            p
        }));
        let out = filter(input).await;
        let blocks = headers_of(&out);
        assert_eq!(blocks.len(), 2);
        for h in &blocks {
            let auth = h
                .iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| v.clone());
            assert_eq!(auth.as_deref(), Some(&b"127.0.0.1:2379"[..]));
            assert!(h
                .iter()
                .any(|(n, v)| n == b":path" && v == b"/etcdserverpb.Maintenance/Status"));
        }
        assert!(blocks[0]
            .iter()
            .any(|(n, v)| n == b"x-big" && v.len() == 20_000));
    }
}
