//! The little of WebSocket (RFC 6455) the kubelet's exec endpoint needs: the handshake's
//! accept key, and reading and writing frames. Kubernetes' `v4`/`v5.channel.k8s.io`
//! protocols carry one stream per binary message, its first byte the channel.

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The largest message the kubelet accepts from a client (stdin chunks, resizes).
const MAX_FRAME: u64 = 1 << 20;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Writes one unmasked (server) frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(10);
    head.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        head.push(len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        head.push(126);
        head.extend_from_slice(&l.to_be_bytes());
    } else {
        head.push(127);
        head.extend_from_slice(&(len as u64).to_be_bytes());
    }
    w.write_all(&head).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame (unmasking a client's); `None` at the end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let mut len = u64::from(head[1] & 0x7F);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).await?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).await?;
        len = u64::from_be_bytes(b);
    }
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "websocket frame of {len} bytes is too large"
        )));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(Some((opcode, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn frames_round_trip_and_masked_frames_unmask() {
        let mut buf = Vec::new();
        write_frame(&mut buf, OP_BINARY, b"\x01hello")
            .await
            .expect("write");
        let big = vec![7u8; 70_000];
        write_frame(&mut buf, OP_BINARY, &big).await.expect("write");
        let mut r = buf.as_slice();
        assert_eq!(
            read_frame(&mut r).await.expect("read"),
            Some((OP_BINARY, b"\x01hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).await.expect("read").map(|f| f.1.len()),
            Some(70_000)
        );
        assert_eq!(read_frame(&mut r).await.expect("eof"), None);
        // A client's masked frame.
        let mask = [1u8, 2, 3, 4];
        let mut masked = vec![0x82, 0x80 | 3];
        masked.extend_from_slice(&mask);
        masked.extend(b"abc".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let mut r = masked.as_slice();
        assert_eq!(
            read_frame(&mut r).await.expect("read"),
            Some((OP_BINARY, b"abc".to_vec()))
        );
    }
}
