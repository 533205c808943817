//! A limit on the size of the messages a client may send.
//!
//! Every frontend message announces its length in its header before its body arrives.
//! pgwire's decoder buffers a whole message before decoding it and accepts up to 1 GiB,
//! so a client could make the server hold a gigabyte per connection. [`FrameLimit`] sits
//! between the socket (after TLS) and the decoder, reads each header as the bytes pass
//! through, and fails the read as soon as a header announces more than the configured
//! `max_message_size` (or a length too small to be valid): the connection is closed with
//! a FATAL error before the body is buffered, and other connections are unaffected.
//!
//! The first message of a connection (startup or cancel request) has no type byte,
//! every later one has: `[type: u8][length: u32, counting itself][body]`. An 8-byte
//! untyped message is an SSL or GSSENC request, after which the startup message, again
//! untyped, follows.

use futures::{FutureExt, Stream, StreamExt};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireFrontendMessage;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Reads the next message, turning a panic of the protocol decoder into an error for
/// this connection. pgwire 0.42's decoder panics (reads past the body) on some
/// truncated extended-protocol messages; a client must not be able to crash its
/// connection's task that way, let alone see the panic propagate. After such an error
/// the connection is closed: the decoder's buffer may be half-consumed.
pub async fn read_message<S>(stream: &mut S) -> Option<PgWireResult<PgWireFrontendMessage>>
where
    S: Stream<Item = PgWireResult<PgWireFrontendMessage>> + Unpin,
{
    match AssertUnwindSafe(stream.next()).catch_unwind().await {
        Ok(next) => next,
        Err(_) => Some(Err(PgWireError::IoError(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed message (its contents do not match its declared length)",
        )))),
    }
}

/// Default `max_message_size`: large enough for a multi-megabyte bulk INSERT, small
/// enough that a hundred connections cannot exhaust memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// A request to negotiate encryption (SSLRequest, GSSENCRequest) is 8 bytes long.
const ENCRYPTION_REQUEST_LENGTH: u32 = 8;

/// Why a client's message was refused before it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The header announced a body larger than the limit.
    TooLarge {
        /// Announced body size in bytes.
        announced: u64,
        /// The limit.
        limit: usize,
    },
    /// The header's length is smaller than the length field itself.
    InvalidLength(u32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { announced, limit } => write!(
                f,
                "message of {announced} bytes exceeds max_message_size ({limit} bytes)"
            ),
            FrameError::InvalidLength(length) => write!(f, "invalid message length {length}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Follows message boundaries in a byte stream and checks each header.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    limit: usize,
    typed: bool,
    header: [u8; 5],
    header_filled: usize,
    body_left: u64,
}

impl FrameScanner {
    /// A scanner at the start of a connection (first message untyped).
    pub fn new(limit: usize) -> FrameScanner {
        FrameScanner {
            limit,
            typed: false,
            header: [0; 5],
            header_filled: 0,
            body_left: 0,
        }
    }

    fn header_len(&self) -> usize {
        if self.typed {
            5
        } else {
            4
        }
    }

    /// Accounts for `bytes`, the next bytes of the stream; errors at the first header
    /// that is invalid or too large. After an error the scanner must not be used again.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.body_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let want = self.header_len() - self.header_filled;
            let take = want.min(bytes.len());
            self.header[self.header_filled..self.header_filled + take]
                .copy_from_slice(&bytes[..take]);
            self.header_filled += take;
            bytes = &bytes[take..];
            if self.header_filled == self.header_len() {
                self.finish_header()?;
            }
        }
        Ok(())
    }

    fn finish_header(&mut self) -> Result<(), FrameError> {
        let start = self.header_len() - 4;
        let length = u32::from_be_bytes([
            self.header[start],
            self.header[start + 1],
            self.header[start + 2],
            self.header[start + 3],
        ]);
        if length < 4 {
            return Err(FrameError::InvalidLength(length));
        }
        let body = u64::from(length - 4);
        if body > self.limit as u64 {
            return Err(FrameError::TooLarge {
                announced: u64::from(length),
                limit: self.limit,
            });
        }
        // Untyped messages continue only after an encryption request.
        if !self.typed && length != ENCRYPTION_REQUEST_LENGTH {
            self.typed = true;
        }
        self.header_filled = 0;
        self.body_left = body;
        Ok(())
    }
}

/// A stream whose reads fail once the client announces an oversized message.
pub struct FrameLimit<IO> {
    inner: IO,
    scanner: FrameScanner,
    failed: Option<FrameError>,
}

impl<IO> FrameLimit<IO> {
    /// Wraps `inner`; `already_read` are bytes of the stream a reader has buffered
    /// before the wrapper was put in place (they are checked like any other).
    pub fn new(inner: IO, limit: usize, already_read: &[u8]) -> FrameLimit<IO> {
        let mut scanner = FrameScanner::new(limit);
        let failed = scanner.feed(already_read).err();
        FrameLimit {
            inner,
            scanner,
            failed,
        }
    }

    /// After the stream was refused, reads and discards what the client still sends,
    /// for at most `time` or `bytes`, until it closes its side. Closing a socket with
    /// unread data makes the kernel send a reset, which can destroy the FATAL error
    /// already sent before the client reads it; draining first lets the client see why.
    pub async fn drain(&mut self, time: std::time::Duration, bytes: usize)
    where
        IO: AsyncRead + Unpin,
    {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 16 * 1024];
        let mut left = bytes;
        let _ = tokio::time::timeout(time, async {
            while left > 0 {
                match self.inner.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.inner
    }

    /// The error that stopped the stream, if any.
    pub fn error(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }
}

fn to_io(error: &FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.clone())
}

impl<IO: AsyncRead + Unpin> AsyncRead for FrameLimit<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(error) = &self.failed {
            return Poll::Ready(Err(to_io(error)));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(error) = this.scanner.feed(&buf.filled()[before..]) {
                    let io_error = to_io(&error);
                    this.failed = Some(error);
                    return Poll::Ready(Err(io_error));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FrameLimit<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgwire::api::{ClientInfo, DefaultClient, PgWireConnectionState};
    use pgwire::tokio::server::PgWireMessageServerCodec;
    use proptest::prelude::*;
    use tokio_util::codec::Framed;

    fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![tag];
        message.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00u\x00\x00";
        let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        message.extend_from_slice(body);
        message
    }

    /// A normal session's bytes pass, however they are split into reads.
    #[test]
    fn well_formed_stream_passes_in_any_split() {
        let mut stream = 8u32.to_be_bytes().to_vec();
        stream.extend_from_slice(&80877103u32.to_be_bytes()); // SSLRequest
        stream.extend(startup());
        stream.extend(typed(b'Q', b"SELECT 1\0"));
        stream.extend(typed(b'X', b""));
        for chunk in 1..stream.len() {
            let mut scanner = FrameScanner::new(100);
            for piece in stream.chunks(chunk) {
                scanner.feed(piece).unwrap();
            }
        }
    }

    /// A header announcing more than the limit fails as soon as the header is complete,
    /// before any of the body arrives; a length below 4 is invalid.
    #[test]
    fn oversized_and_invalid_headers_fail() {
        let mut scanner = FrameScanner::new(1024);
        scanner.feed(&startup()).unwrap();
        let mut header = vec![b'Q'];
        header.extend_from_slice(&(1024u32 + 5).to_be_bytes());
        assert_eq!(
            scanner.feed(&header),
            Err(FrameError::TooLarge {
                announced: 1029,
                limit: 1024
            })
        );
        let mut scanner = FrameScanner::new(1024);
        assert_eq!(
            scanner.feed(&3u32.to_be_bytes()),
            Err(FrameError::InvalidLength(3))
        );
        let mut scanner = FrameScanner::new(1024);
        scanner.feed(&startup()).unwrap();
        scanner.feed(&typed(b'Q', &[b'x'; 1024])).unwrap();
    }

    proptest! {
        /// Arbitrary bytes never panic the scanner, and it refuses a stream exactly when
        /// a header it reaches is out of bounds (checked against a plain re-parse).
        #[test]
        fn scanner_agrees_with_a_plain_parse(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            split in 1usize..64,
            limit in 0usize..300,
        ) {
            let mut scanner = FrameScanner::new(limit);
            let mut outcome = Ok(());
            for piece in bytes.chunks(split) {
                outcome = scanner.feed(piece);
                if outcome.is_err() { break; }
            }
            prop_assert_eq!(outcome, plain_parse(&bytes, limit));
        }

        /// Arbitrary bytes after a valid startup, read through [`read_message`] the way
        /// the message loop reads them: every outcome is a message, an error or the
        /// end of the stream, never a panic, and reading always ends.
        #[test]
        fn read_message_survives_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut stream = startup();
            stream.extend_from_slice(&bytes);
            // Startup, then at most one message per 5 bytes (the smallest), then the end.
            prop_assert!(read_all(stream) <= bytes.len() / 5 + 2);
        }

        /// Well-framed messages of every type with arbitrary (often truncated) bodies:
        /// pgwire 0.42's decoder panics on short Bind, Close, Describe, Execute and
        /// Parse bodies; read_message turns that into an error for the connection.
        #[test]
        fn read_message_survives_malformed_bodies(
            tag in any::<u8>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut stream = startup();
            stream.extend(typed(tag, &body));
            stream.extend(typed(b'S', b""));
            // Startup, the message, Sync, the end.
            prop_assert!(read_all(stream) <= 4);
        }
    }

    /// Every short Bind/Parse/Describe/Execute/Close body, through read_message.
    #[test]
    fn truncated_extended_protocol_messages_are_errors() {
        for tag in [b'B', b'C', b'D', b'E', b'P'] {
            for body in [&b""[..], b"\0", b"\0\0\x01"] {
                let mut stream = startup();
                stream.extend(typed(tag, body));
                read_all(stream);
            }
        }
    }

    /// Reads `stream` to its end or first error with read_message, as the server's
    /// loop would; returns how many reads that took.
    fn read_all(stream: Vec<u8>) -> usize {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1024);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = client.write_all(&stream).await;
            });
            let codec = PgWireMessageServerCodec::<()>::new(DefaultClient::new(
                "127.0.0.1:1".parse().expect("address"),
                false,
            ));
            let mut framed = Framed::new(FrameLimit::new(server, 1024, &[]), codec);
            framed.set_state(PgWireConnectionState::AwaitingStartup);
            let mut reads = 0;
            loop {
                reads += 1;
                match read_message(&mut framed).await {
                    Some(Ok(_)) => {
                        // After startup, the loop would be ready for queries.
                        framed.set_state(PgWireConnectionState::ReadyForQuery);
                    }
                    Some(Err(_)) | None => break,
                }
            }
            writer.abort();
            reads
        })
    }

    /// The reference: walk the stream header by header.
    fn plain_parse(bytes: &[u8], limit: usize) -> Result<(), FrameError> {
        let mut at = 0usize;
        let mut typed = false;
        loop {
            let header = if typed { 5 } else { 4 };
            if bytes.len() < at + header {
                return Ok(());
            }
            let start = at + header - 4;
            let length = u32::from_be_bytes(bytes[start..start + 4].try_into().unwrap());
            if length < 4 {
                return Err(FrameError::InvalidLength(length));
            }
            if (length - 4) as usize > limit {
                return Err(FrameError::TooLarge {
                    announced: u64::from(length),
                    limit,
                });
            }
            if !typed && length != 8 {
                typed = true;
            }
            at += header + (length as usize - 4);
        }
    }
}
