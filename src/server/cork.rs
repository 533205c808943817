//! Output batching: the responses to a client's batch of messages leave in one write.
//!
//! pgwire flushes the socket after many single messages (BindComplete, CommandComplete,
//! ReadyForQuery each end in a flush), so one prepared-statement round trip of pgbench
//! (Bind, Execute, Sync) cost four `send` calls, four TCP segments and up to four
//! wake-ups of the client. PostgreSQL instead collects its output and flushes only when
//! it is about to wait for the client. [`Cork`] does the same: while the connection's
//! message loop holds it corked, flushes keep the bytes in a buffer; the loop uncorks and
//! flushes before it waits for the next message, so nothing the client waits for is
//! ever held back. The buffer is bounded by [`CORK_LIMIT`]: a large result is written
//! out as it grows, not held whole in memory.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held back while corked; beyond this they are written out at once.
pub const CORK_LIMIT: usize = 64 * 1024;

/// A byte stream whose flushes can be held back while its owner knows more output
/// follows.
pub struct Cork<IO> {
    inner: IO,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already written to `inner`.
    written: usize,
    corked: bool,
}

impl<IO> Cork<IO> {
    /// Wraps `inner`, uncorked.
    pub fn new(inner: IO) -> Cork<IO> {
        Cork {
            inner,
            buffer: Vec::new(),
            written: 0,
            corked: false,
        }
    }

    /// Holds flushed output back (up to [`CORK_LIMIT`]) until [`Cork::uncork`].
    pub fn cork(&mut self) {
        self.corked = true;
    }

    /// Lets the next flush write everything out.
    pub fn uncork(&mut self) {
        self.corked = false;
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.inner
    }
}

impl<IO: AsyncWrite + Unpin> Cork<IO> {
    /// Writes the whole buffer to the inner stream and flushes it.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buffer.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buffer[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buffer.clear();
        self.written = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Cork<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Cork<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buffer.len() + bytes.len() > CORK_LIMIT {
            ready!(this.poll_write_out(cx))?;
            if bytes.len() >= CORK_LIMIT {
                return Pin::new(&mut this.inner).poll_write(cx, bytes);
            }
        }
        this.buffer.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.corked {
            return Poll::Ready(Ok(()));
        }
        self.poll_write_out(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_out(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// While corked, flushed bytes stay in the buffer; uncorking and flushing delivers
    /// them all, in order, in one piece.
    #[tokio::test]
    async fn corked_output_waits_for_the_uncorked_flush() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut cork = Cork::new(server);
        let mut client = client;
        cork.cork();
        cork.write_all(b"one ").await.unwrap();
        cork.flush().await.unwrap();
        cork.write_all(b"two").await.unwrap();
        cork.flush().await.unwrap();
        let mut byte = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), client.read(&mut byte))
                .await;
        assert!(early.is_err(), "corked bytes reached the client");
        cork.uncork();
        cork.flush().await.unwrap();
        let mut received = vec![0u8; 7];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(received, b"one two");
    }

    /// Output beyond the limit is written out even while corked, so memory stays bounded.
    #[tokio::test]
    async fn output_beyond_the_limit_is_written_while_corked() {
        let (mut client, server) = tokio::io::duplex(4 * CORK_LIMIT);
        let mut cork = Cork::new(server);
        cork.cork();
        let chunk = vec![7u8; CORK_LIMIT / 2 + 1];
        cork.write_all(&chunk).await.unwrap();
        cork.write_all(&chunk).await.unwrap();
        assert!(cork.buffer.len() <= CORK_LIMIT);
        let mut received = vec![0u8; chunk.len()];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(received, chunk);
    }

    /// Shutting down writes out what is still held back.
    #[tokio::test]
    async fn shutdown_writes_out_held_output() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut cork = Cork::new(server);
        cork.cork();
        cork.write_all(b"bye").await.unwrap();
        cork.shutdown().await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"bye");
    }
}
