//! Container logs from Podman (`GET /containers/{id}/logs`), as a stream of their bytes.

use bytes::Bytes;
use futures::StreamExt as _;
use http::Method;
use http_body_util::BodyExt as _;

use super::client::{encode, status_error, PodmanClient};
use crate::error::{KubeletError, Result};
use crate::runtime::{LogOptions, LogStream};

/// Splits a Docker-multiplexed stream (frames of an 8-byte header: stream, 0, 0, 0, u32
/// big-endian length; then the payload) into payloads; a stream without headers (a
/// terminal's) passes as it is.
#[derive(Default)]
pub struct Frames {
    header: Vec<u8>,
    remaining: usize,
    raw: bool,
    stream: u8,
}

impl Frames {
    /// The payload bytes in `data` (frames may span calls).
    pub fn feed(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.feed_streams(data)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    /// The payloads in `data` with their stream (1 stdout, 2 stderr; raw streams are 1).
    pub fn feed_streams(&mut self, mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.raw {
                out.push((1, data.to_vec()));
                return out;
            }
            if self.remaining == 0 {
                let take = (8 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < 8 {
                    return out;
                }
                let header = std::mem::take(&mut self.header);
                if header[0] > 2 || header[1..4] != [0, 0, 0] {
                    self.raw = true;
                    out.push((1, header));
                    continue;
                }
                self.stream = header[0].max(1);
                self.remaining =
                    u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                continue;
            }
            let take = self.remaining.min(data.len());
            out.push((self.stream, data[..take].to_vec()));
            self.remaining -= take;
            data = &data[take..];
        }
        out
    }
}

/// The error of a Podman answer that is not a success, with its body's message.
async fn failed(
    resp: hyper::Response<hyper::body::Incoming>,
    method: &Method,
    path: &str,
) -> KubeletError {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    status_error(method, path, status, &body)
}

/// The query of a logs request.
fn query(options: &LogOptions) -> String {
    let mut q = String::from("stdout=true&stderr=true");
    if options.follow {
        q.push_str("&follow=true");
    }
    if let Some(n) = options.tail_lines {
        q.push_str(&format!("&tail={n}"));
    }
    if let Some(t) = options.since {
        q.push_str(&format!("&since={}", t.as_second()));
    }
    if options.timestamps {
        q.push_str("&timestamps=true");
    }
    q
}

/// Opens the log of container `id`; the stream ends with the log (or, following, when the
/// container stops).
pub async fn open(client: &PodmanClient, id: &str, options: &LogOptions) -> Result<LogStream> {
    let path = format!("/containers/{}/logs?{}", encode(id), query(options));
    let resp = tokio::time::timeout(
        super::client::DEFAULT_TIMEOUT,
        client.send(&Method::GET, &path, None),
    )
    .await
    .map_err(|_| KubeletError::Runtime(format!("GET {path}: no answer from podman")))??;
    let status = resp.status();
    if !status.is_success() {
        return Err(failed(resp, &Method::GET, &path).await);
    }
    let mut frames = Frames::default();
    let body = http_body_util::BodyStream::new(resp.into_body());
    let stream = body.flat_map(move |frame| {
        let chunks: Vec<Result<Bytes>> = match frame {
            Ok(f) => match f.into_data() {
                Ok(data) => frames
                    .feed(&data)
                    .into_iter()
                    .map(|c| Ok(Bytes::from(c)))
                    .collect(),
                Err(_) => Vec::new(),
            },
            Err(e) => vec![Err(KubeletError::Runtime(format!("reading a log: {e}")))],
        };
        futures::stream::iter(chunks)
    });
    Ok(Box::pin(stream))
}

/// Opens a stream of Podman's (exec start, attach): its output with stream ids (all stream
/// 1 with a tty) and, with `stdin`, Podman's hijacked connection fed from it.
async fn open_stream(
    client: &PodmanClient,
    start: &str,
    body: Option<(Bytes, &str)>,
    tty: bool,
    stdin: Option<tokio::sync::mpsc::Receiver<Bytes>>,
) -> Result<futures::stream::BoxStream<'static, Result<(u8, Bytes)>>> {
    let start = start.to_string();
    let mut frames = Frames::default();
    let mut demux = move |data: &[u8]| -> Vec<Result<(u8, Bytes)>> {
        if tty {
            vec![Ok((1, Bytes::copy_from_slice(data)))]
        } else {
            frames
                .feed_streams(data)
                .into_iter()
                .map(|(s, c)| Ok((s, Bytes::from(c))))
                .collect()
        }
    };
    let output: futures::stream::BoxStream<'static, Result<(u8, Bytes)>> = match stdin {
        None => {
            let resp = client.send(&Method::POST, &start, body).await?;
            let status = resp.status();
            if !status.is_success() {
                return Err(failed(resp, &Method::POST, &start).await);
            }
            http_body_util::BodyStream::new(resp.into_body())
                .flat_map(move |frame| {
                    let chunks = match frame {
                        Ok(f) => match f.into_data() {
                            Ok(data) => demux(&data),
                            Err(_) => Vec::new(),
                        },
                        Err(e) => vec![Err(KubeletError::Runtime(format!(
                            "reading exec output: {e}"
                        )))],
                    };
                    futures::stream::iter(chunks)
                })
                .boxed()
        }
        Some(mut stdin) => {
            let mut resp = client.send_upgrade(&Method::POST, &start, body).await?;
            let status = resp.status();
            if status != http::StatusCode::SWITCHING_PROTOCOLS && !status.is_success() {
                return Err(failed(resp, &Method::POST, &start).await);
            }
            let io = hyper::upgrade::on(&mut resp).await.map_err(|e| {
                KubeletError::Runtime(format!("{start}: hijacking the connection: {e}"))
            })?;
            let (rd, mut wr) = tokio::io::split(hyper_util::rt::TokioIo::new(io));
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                while let Some(data) = stdin.recv().await {
                    if wr.write_all(&data).await.is_err() {
                        return;
                    }
                }
                // The end of stdin: the command reads EOF.
                let _ = wr.shutdown().await;
            });
            futures::stream::unfold((rd, demux), |(mut rd, mut demux)| async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = vec![0u8; 16 * 1024];
                match rd.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => Some((demux(&buf[..n]), (rd, demux))),
                    Err(e) => Some((
                        vec![Err(KubeletError::Runtime(format!(
                            "reading exec output: {e}"
                        )))],
                        (rd, demux),
                    )),
                }
            })
            .flat_map(futures::stream::iter)
            .boxed()
        }
    };
    Ok(output)
}

/// A channel of terminal sizes, each posted to `<base>/resize` (an exec session's or a
/// container's).
fn resizer(client: &PodmanClient, base: String) -> tokio::sync::mpsc::UnboundedSender<(u16, u16)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u16)>();
    let client = client.clone();
    tokio::spawn(async move {
        while let Some((w, h)) = rx.recv().await {
            let path = format!("{base}/resize?h={h}&w={w}");
            if let Err(e) = client
                .call(Method::POST, &path, None, super::client::DEFAULT_TIMEOUT)
                .await
            {
                tracing::debug!(error = %e, "terminal resize");
            }
        }
    });
    tx
}

/// Attaches to the main process of container `id` (`kubectl attach`): its output, and its
/// stdin when asked for (the container must have been created with stdin open). The stream
/// ends when the process does.
pub async fn attach(
    client: &PodmanClient,
    id: &str,
    tty: bool,
    stdin: Option<tokio::sync::mpsc::Receiver<Bytes>>,
) -> Result<crate::runtime::ExecStream> {
    let path = format!(
        "/containers/{}/attach?stream=true&stdout=true&stderr=true&stdin={}",
        encode(id),
        stdin.is_some()
    );
    let output = open_stream(client, &path, None, tty, stdin).await?;
    let resize = tty.then(|| resizer(client, format!("/containers/{}", encode(id))));
    Ok(crate::runtime::ExecStream {
        output,
        exit_code: Box::pin(async { Ok(0) }),
        resize,
    })
}

/// Runs a command in container `id`: its output streamed with stream ids (all stream 1 with
/// a tty), its stdin (when asked for) written to Podman's hijacked connection; the exit code
/// once it ends.
pub async fn exec_stream(
    client: &PodmanClient,
    id: &str,
    req: crate::runtime::ExecRequest,
) -> Result<crate::runtime::ExecStream> {
    #[derive(serde::Deserialize)]
    struct Created {
        #[serde(rename = "Id")]
        id: String,
    }
    #[derive(serde::Deserialize)]
    struct Inspect {
        #[serde(rename = "ExitCode", default)]
        exit_code: i32,
        #[serde(rename = "Running", default)]
        running: bool,
    }
    let crate::runtime::ExecRequest {
        command,
        tty,
        stdin,
    } = req;
    let created: Created = client
        .json(
            Method::POST,
            &format!("/containers/{}/exec", encode(id)),
            Some(
                serde_json::json!({"Cmd": command, "AttachStdin": stdin.is_some(),
                "AttachStdout": true, "AttachStderr": true, "Tty": tty}),
            ),
        )
        .await?;
    let eid = encode(&created.id);
    let start = format!("/exec/{eid}/start");
    let body = Some((
        Bytes::from(serde_json::json!({"Detach": false, "Tty": tty}).to_string()),
        "application/json",
    ));
    let output = open_stream(client, &start, body, tty, stdin).await?;
    let client = client.clone();
    let resize = tty.then(|| resizer(&client, format!("/exec/{eid}")));
    let exit_code = async move {
        // Called once the output has ended; the session may take a moment to say so.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let i: Inspect = client
                .json(Method::GET, &format!("/exec/{eid}/json"), None)
                .await?;
            if !i.running {
                return Ok(i.exit_code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KubeletError::Runtime("the exec session did not end".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    Ok(crate::runtime::ExecStream {
        output,
        exit_code: Box::pin(exit_code),
        resize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_and_raw_streams() {
        let mut f = Frames::default();
        let mut stream = vec![1u8, 0, 0, 0, 0, 0, 0, 3];
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        stream.extend_from_slice(b"de");
        let mut got = Vec::new();
        for piece in stream.chunks(3) {
            for c in f.feed(piece) {
                got.extend(c);
            }
        }
        assert_eq!(got, b"abcde");
        let mut f = Frames::default();
        let streams: Vec<u8> = f
            .feed_streams(&stream)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(streams, [1, 2]);
        let mut raw = Frames::default();
        let out: Vec<u8> = raw.feed(b"plain terminal output").concat();
        assert_eq!(out, b"plain terminal output");
        let o = LogOptions {
            follow: true,
            tail_lines: Some(5),
            since: None,
            timestamps: true,
        };
        assert_eq!(
            query(&o),
            "stdout=true&stderr=true&follow=true&tail=5&timestamps=true"
        );
    }
}
