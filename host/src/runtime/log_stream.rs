//! Guest stdout and stderr, forwarded to the host log line by line, tagged
//! with the actor id, with control characters escaped so that a guest
//! cannot forge log lines or terminal sequences.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept, in bytes; longer output is split.
pub const MAX_LOG_LINE_BYTES: usize = 4096;

/// Which guest stream.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A [`StdoutStream`] that writes to the host log.
#[derive(Clone)]
pub struct LogStream {
    actor_id: Arc<str>,
    stream: Stream,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    /// A stream for `actor_id`.
    pub fn new(actor_id: Arc<str>, stream: Stream) -> Self {
        Self {
            actor_id,
            stream,
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn emit(&self, line: &[u8]) {
        let text: String = String::from_utf8_lossy(line)
            .chars()
            .flat_map(char::escape_default)
            .collect();
        match self.stream {
            Stream::Stdout => tracing::info!(actor = %self.actor_id, stream = "stdout", "{text}"),
            Stream::Stderr => tracing::warn!(actor = %self.actor_id, stream = "stderr", "{text}"),
        }
    }

    fn write_bytes(&self, buf: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for &b in buf {
            if b == b'\n' {
                self.emit(&pending);
                pending.clear();
            } else {
                pending.push(b);
                if pending.len() >= MAX_LOG_LINE_BYTES {
                    self.emit(&pending);
                    pending.clear();
                }
            }
        }
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        if Arc::strong_count(&self.pending) == 1
            && let Ok(pending) = self.pending.lock()
            && !pending.is_empty()
        {
            self.emit(&pending);
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
