//! SPDY/3.1 (draft-mbelshe-httpbis-spdy-00 and the 3.1 amendments) as far as Kubernetes'
//! port-forward protocol uses it: the client (kubectl, through client-go's spdystream)
//! opens streams with SYN_STREAM, the server answers each with SYN_REPLY, and both sides
//! send DATA frames and half-close with FIN. Header blocks are zlib-compressed with the
//! dictionary the specification defines, one compression context per direction for the
//! whole session. spdystream neither sends nor honours WINDOW_UPDATE, so neither does this
//! side: flow control frames are accepted and ignored.

use std::sync::OnceLock;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

pub const VERSION: u16 = 3;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// FIN on a control or data frame: the sender's last frame on that stream.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;

/// The largest frame payload accepted (the length field has 24 bits; port-forward data
/// frames are at most 32 KiB in practice).
const MAX_FRAME: usize = 1 << 20;
/// The largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 256 << 10;
/// Data frames written are cut to this size.
pub const MAX_DATA: usize = 32 << 10;

/// The header names of the specification's compression dictionary, each preceded by its
/// 32-bit length, followed by [`DICTIONARY_TAIL`] (section 2.6.10.1).
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The zlib dictionary of SPDY/3 header compression.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

pub type Headers = Vec<(String, String)>;

/// A frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Bytes,
    },
    /// SETTINGS, WINDOW_UPDATE and control frames of unknown types: read and dropped.
    Ignored {
        kind: u16,
    },
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// The header compression contexts of one session: one inflater for what the peer sends,
/// one deflater for what this side sends.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCodec {
    pub fn new() -> HeaderCodec {
        let mut deflate = Compress::new(Compression::default(), true);
        // A fresh deflater always takes a dictionary.
        let _ = deflate.set_dictionary(dictionary());
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
        }
    }

    /// Decompresses one header block (the continuation of the peer's zlib stream) and
    /// parses its name/value pairs.
    pub fn decode(&mut self, block: &[u8]) -> std::io::Result<Headers> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(invalid("SPDY header block is too large"));
                }
                out.reserve(out.len().max(256));
            }
            let before = self.inflate.total_in();
            let produced = out.len();
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(status) => {
                    let used = (self.inflate.total_in() - before) as usize;
                    input = &input[used..];
                    if status == Status::StreamEnd {
                        return Err(invalid("SPDY header stream ended"));
                    }
                    // Done once the input is consumed and the output was not cut short.
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                    if used == 0 && out.len() == produced && out.len() < out.capacity() {
                        return Err(invalid("SPDY header block is truncated"));
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    let used = (self.inflate.total_in() - before) as usize;
                    input = &input[used..];
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| invalid(format!("SPDY header dictionary: {e}")))?;
                }
                Err(e) => return Err(invalid(format!("SPDY header block: {e}"))),
            }
        }
        parse_headers(&out)
    }

    /// Serializes and compresses one header block (flushed, so the peer can read it alone).
    pub fn encode(&mut self, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for s in [name.to_ascii_lowercase().as_str(), value.as_str()] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("SPDY header compression: {e}")))?;
            let used = (self.deflate.total_in() - before) as usize;
            input = &input[used..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn parse_headers(raw: &[u8]) -> std::io::Result<Headers> {
    let mut at = 0usize;
    let count = raw
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| invalid("SPDY header block has no pair count"))?;
    at += 4;
    if count > raw.len() / 8 {
        return Err(invalid(format!(
            "SPDY header block claims {count} pairs in {} bytes",
            raw.len()
        )));
    }
    let mut take = |what: &str| -> std::io::Result<String> {
        let len = raw
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| invalid(format!("SPDY header block: no length of {what}")))?;
        let v = raw
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| invalid(format!("SPDY header block: {what} is cut short")))?;
        at += 4 + len;
        String::from_utf8(v.to_vec())
            .map_err(|_| invalid(format!("SPDY header {what} is not UTF-8")))
    };
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take("name")?;
        let value = take("value")?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// The first value of header `name` (names are lower case on the wire).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

fn u32_at(b: &[u8], at: usize) -> std::io::Result<u32> {
    b.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| invalid("SPDY control frame is too short"))
}

/// Reads one frame; `None` at a clean end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    codec: &mut HeaderCodec,
) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = (usize::from(head[5]) << 16) | (usize::from(head[6]) << 8) | usize::from(head[7]);
    if len > MAX_FRAME {
        return Err(invalid(format!("SPDY frame of {len} bytes is too large")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if head[0] & 0x80 == 0 {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        return Ok(Some(Frame::Data {
            stream,
            flags,
            data: Bytes::from(body),
        }));
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(invalid(format!(
            "SPDY version {version} is not supported (only {VERSION})"
        )));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let stream = || u32_at(&body, 0).map(|s| s & 0x7fff_ffff);
    let frame = match kind {
        TYPE_SYN_STREAM => {
            if body.len() < 10 {
                return Err(invalid("SYN_STREAM is too short"));
            }
            Frame::SynStream {
                stream: stream()?,
                flags,
                headers: codec.decode(&body[10..])?,
            }
        }
        TYPE_SYN_REPLY => Frame::SynReply {
            stream: stream()?,
            flags,
            headers: codec.decode(body.get(4..).unwrap_or_default())?,
        },
        TYPE_HEADERS => Frame::Headers {
            stream: stream()?,
            flags,
            headers: codec.decode(body.get(4..).unwrap_or_default())?,
        },
        TYPE_RST_STREAM => Frame::RstStream {
            stream: stream()?,
            status: u32_at(&body, 4)?,
        },
        TYPE_PING => Frame::Ping {
            id: u32_at(&body, 0)?,
        },
        TYPE_GOAWAY => Frame::GoAway {
            last_stream: stream()?,
            status: u32_at(&body, 4).unwrap_or(0),
        },
        TYPE_SETTINGS | TYPE_WINDOW_UPDATE => Frame::Ignored { kind },
        other => Frame::Ignored { kind: other },
    };
    Ok(Some(frame))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> std::io::Result<Vec<u8>> {
    if body.len() > 0x00ff_ffff {
        return Err(invalid("SPDY frame is too large"));
    }
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(body);
    Ok(f)
}

/// Encodes one frame (header blocks through `codec`, so frames must be written in the
/// order they are encoded).
pub fn encode_frame(frame: &Frame, codec: &mut HeaderCodec) -> std::io::Result<Vec<u8>> {
    match frame {
        Frame::SynStream {
            stream,
            flags,
            headers,
        } => {
            let mut body = Vec::new();
            body.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
            body.extend_from_slice(&0u32.to_be_bytes());
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&codec.encode(headers)?);
            control(TYPE_SYN_STREAM, *flags, &body)
        }
        Frame::SynReply {
            stream,
            flags,
            headers,
        }
        | Frame::Headers {
            stream,
            flags,
            headers,
        } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                TYPE_SYN_REPLY
            } else {
                TYPE_HEADERS
            };
            let mut body = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
            body.extend_from_slice(&codec.encode(headers)?);
            control(kind, *flags, &body)
        }
        Frame::RstStream { stream, status } => {
            let mut body = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(TYPE_RST_STREAM, 0, &body)
        }
        Frame::Ping { id } => control(TYPE_PING, 0, &id.to_be_bytes()),
        Frame::GoAway {
            last_stream,
            status,
        } => {
            let mut body = (last_stream & 0x7fff_ffff).to_be_bytes().to_vec();
            body.extend_from_slice(&status.to_be_bytes());
            control(TYPE_GOAWAY, 0, &body)
        }
        Frame::Data {
            stream,
            flags,
            data,
        } => {
            if data.len() > 0x00ff_ffff {
                return Err(invalid("SPDY data frame is too large"));
            }
            let mut f = Vec::with_capacity(8 + data.len());
            f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
            f.push(*flags);
            f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            f.extend_from_slice(data);
            Ok(f)
        }
        Frame::Ignored { kind } => Err(invalid(format!("cannot encode frame type {kind}"))),
    }
}

/// Writes frames to `w` in order until the channel closes (or a write fails).
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut w: W,
    mut frames: tokio::sync::mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut codec = HeaderCodec::new();
    while let Some(frame) = frames.recv().await {
        let bytes = encode_frame(&frame, &mut codec)?;
        w.write_all(&bytes).await?;
        while let Ok(frame) = frames.try_recv() {
            let bytes = encode_frame(&frame, &mut codec)?;
            w.write_all(&bytes).await?;
        }
        w.flush().await?;
    }
    let _ = w.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dictionary_has_the_specified_length() {
        // Section 2.6.10.1: 1423 bytes; it starts with "\0\0\0\x07options".
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[tokio::test]
    async fn frames_round_trip_through_one_compression_context_per_direction() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                flags: 0,
                headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream: 3,
                flags: 0,
                headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
            },
            Frame::SynReply {
                stream: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Ping { id: 7 },
            Frame::RstStream {
                stream: 5,
                status: CANCEL,
            },
            Frame::GoAway {
                last_stream: 3,
                status: 0,
            },
        ];
        let mut tx = HeaderCodec::new();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&encode_frame(f, &mut tx).expect("encode"));
        }
        let mut rx = HeaderCodec::new();
        let mut r = wire.as_slice();
        let mut back = Vec::new();
        while let Some(f) = read_frame(&mut r, &mut rx).await.expect("decode") {
            back.push(f);
        }
        assert_eq!(back, frames);
        // The second header block reused the first one's window: it is shorter.
        let first = encode_frame(&frames[0], &mut HeaderCodec::new()).expect("encode");
        let mut c = HeaderCodec::new();
        let _ = encode_frame(&frames[0], &mut c).expect("encode");
        let second = encode_frame(&frames[1], &mut c).expect("encode");
        assert!(
            second.len() < first.len(),
            "{} vs {}",
            second.len(),
            first.len()
        );
    }

    #[tokio::test]
    async fn bad_input_is_an_error_not_a_panic() {
        let mut c = HeaderCodec::new();
        // A SYN_STREAM whose header block is not zlib.
        let mut f =
            control(TYPE_SYN_STREAM, 0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3]).expect("frame");
        assert!(read_frame(&mut f.as_slice(), &mut c).await.is_err());
        // SPDY/2.
        f[1] = 2;
        assert!(read_frame(&mut f.as_slice(), &mut HeaderCodec::new())
            .await
            .is_err());
        // A header block claiming more pairs than it holds.
        assert!(parse_headers(&[0, 0, 0, 9, 0, 0, 0, 1, b'a']).is_err());
        // A frame cut short.
        let data = encode_frame(
            &Frame::Data {
                stream: 1,
                flags: 0,
                data: Bytes::from_static(b"hello"),
            },
            &mut HeaderCodec::new(),
        )
        .expect("encode");
        assert!(read_frame(&mut &data[..10], &mut HeaderCodec::new())
            .await
            .is_err());
    }
}
