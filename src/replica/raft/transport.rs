//! The peer transport: request/response calls between nodes over TCP.
//!
//! Every group hosted on a node, and every node-to-node call that is not Raft's own
//! (forwarded writes, oracle timestamps, read indexes, cluster status), shares one
//! connection per pair of nodes: a call carries a request id, responses come back in
//! any order, and many calls are in flight on one connection at once. One connection
//! rather than one per group keeps the count of sockets, and of heartbeats' TCP
//! segments, independent of how many groups there are.
//!
//! Frames are `length u32 BE | bincode`, at most [`MAX_FRAME_BYTES`]. The outgoing
//! socket is bound to the node's own address before connecting, so a rule that cuts a
//! node's address off (the fault tests use iptables on 127.0.0.x) cuts its outgoing
//! traffic too, as it would on separate machines.
//!
//! Limits: at most [`MAX_IN_FLIGHT`] calls wait for answers per connection and at most
//! as many requests are being handled per incoming connection; beyond that callers wait
//! (back-pressure) within their own timeouts.

use crate::encoding;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// Largest frame sent or accepted: a batch of log entries or a snapshot chunk. A larger
/// length on the wire means a broken peer, and must not make us allocate it.
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// Calls waiting for answers on one connection; requests handled at once per incoming
/// connection.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Longest wait for a TCP connection to be set up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call has no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No connection could be made: the request was certainly not delivered.
    Unreachable(String),
    /// No answer in time: the request may or may not have been handled.
    Timeout,
    /// The connection broke after the request was sent: it may or may not have been
    /// handled.
    Broken(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "peer unreachable: {why}"),
            CallError::Timeout => write!(f, "peer did not answer in time"),
            CallError::Broken(why) => write!(f, "connection to peer broke: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// What serves incoming calls.
pub trait Handler<Request, Response>: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Outgoing connections to peers, one per address, made when first needed.
pub struct Peers<Request, Response> {
    /// The address outgoing sockets are bound to.
    local_ip: IpAddr,
    slots: Mutex<HashMap<String, Slot<Response>>>,
    _request: PhantomData<fn(Request)>,
}

/// The connection to one address, if any; locked while connecting so that one connect
/// at a time is made per address.
type Slot<Response> = Arc<tokio::sync::Mutex<Option<Arc<Connection<Response>>>>>;

/// One live outgoing connection.
struct Connection<Response> {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
    next_id: AtomicU64,
    in_flight: Semaphore,
    closed: CancellationToken,
}

impl<Request, Response> Peers<Request, Response>
where
    Request: Serialize + Send + 'static,
    Response: DeserializeOwned + Send + 'static,
{
    /// Outgoing connections from `local_ip`.
    pub fn new(local_ip: IpAddr) -> Peers<Request, Response> {
        Peers {
            local_ip,
            slots: Mutex::new(HashMap::new()),
            _request: PhantomData,
        }
    }

    /// Sends `request` to the node at `address` and waits up to `timeout` for its answer.
    pub async fn call(
        &self,
        address: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let connection = tokio::time::timeout_at(deadline, self.connection(address))
            .await
            .map_err(|_| CallError::Unreachable(format!("connecting to {address} timed out")))??;
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encoding::encode(&(id, request))
            .map_err(|error| CallError::Unreachable(error.to_string()))?;
        if frame.len() > MAX_FRAME_BYTES {
            return Err(CallError::Unreachable(format!(
                "a request of {} bytes is over the {MAX_FRAME_BYTES}-byte limit",
                frame.len()
            )));
        }
        tokio::time::timeout_at(deadline, connection.call(id, frame))
            .await
            .map_err(|_| CallError::Timeout)?
    }

    /// The live connection to `address`, connecting if there is none.
    async fn connection(&self, address: &str) -> Result<Arc<Connection<Response>>, CallError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            Arc::clone(slots.entry(address.to_string()).or_default())
        };
        // One connect at a time per address; other addresses are not held up.
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.closed.is_cancelled() {
                return Ok(Arc::clone(connection));
            }
        }
        let stream = connect(self.local_ip, address).await?;
        let connection = Connection::start(stream);
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }
}

/// Connects to `address` from `local_ip`.
async fn connect(local_ip: IpAddr, address: &str) -> Result<TcpStream, CallError> {
    let unreachable = |error: std::io::Error| CallError::Unreachable(format!("{address}: {error}"));
    let target: SocketAddr = tokio::net::lookup_host(address)
        .await
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| CallError::Unreachable(format!("{address}: no address")))?;
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(unreachable)?;
    if local_ip.is_ipv4() == target.is_ipv4() && !local_ip.is_unspecified() {
        socket
            .bind(SocketAddr::new(local_ip, 0))
            .map_err(unreachable)?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| CallError::Unreachable(format!("{address}: connect timed out")))?
        .map_err(unreachable)?;
    stream.set_nodelay(true).map_err(unreachable)?;
    Ok(stream)
}

impl<Response: DeserializeOwned + Send + 'static> Connection<Response> {
    /// Starts the reader and writer tasks of a new connection.
    fn start(stream: TcpStream) -> Arc<Connection<Response>> {
        let (reader, writer) = stream.into_split();
        let (frames, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
        let connection = Arc::new(Connection {
            frames,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            closed: CancellationToken::new(),
        });
        tokio::spawn(write_frames(writer, outgoing, connection.closed.clone()));
        let reading = Arc::clone(&connection);
        tokio::spawn(async move {
            let outcome = reading.read_responses(reader).await;
            reading.close(outcome.err().unwrap_or_else(|| "closed by peer".into()));
        });
        connection
    }

    /// Sends a frame carrying call `id` and waits for the answer to it.
    async fn call(&self, id: u64, frame: Vec<u8>) -> Result<Response, CallError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CallError::Broken("connection closed".into()))?;
        let (answer, answered) = oneshot::channel();
        self.pending_map().insert(id, answer);
        let _forget = RemovePending {
            connection: self,
            id,
        };
        if self.closed.is_cancelled() || self.frames.send(frame).await.is_err() {
            return Err(CallError::Unreachable("connection closed".into()));
        }
        answered
            .await
            .map_err(|_| CallError::Broken("connection closed before the answer".into()))
    }

    fn pending_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Response>>> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    async fn read_responses(&self, reader: tokio::net::tcp::OwnedReadHalf) -> Result<(), String> {
        let mut reader = BufReader::new(reader);
        loop {
            let frame = tokio::select! {
                frame = read_frame(&mut reader) => frame?,
                () = self.closed.cancelled() => return Ok(()),
            };
            let Some(frame) = frame else {
                return Ok(());
            };
            let (id, response): (u64, Response) =
                encoding::decode(&frame).map_err(|error| error.to_string())?;
            if let Some(answer) = self.pending_map().remove(&id) {
                let _ = answer.send(response);
            }
        }
    }

    /// Marks the connection dead and fails every waiting call.
    fn close(&self, why: String) {
        tracing::debug!(%why, "peer connection closed");
        self.closed.cancel();
        self.pending_map().clear();
    }
}

/// Forgets a call's pending slot however the call ends (answered, timed out, dropped).
struct RemovePending<'a, Response> {
    connection: &'a Connection<Response>,
    id: u64,
}

impl<Response> Drop for RemovePending<'_, Response> {
    fn drop(&mut self) {
        self.connection
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&self.id);
    }
}

/// Writes queued frames until the queue closes or the connection is cancelled.
async fn write_frames(
    writer: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    closed: CancellationToken,
) {
    let mut writer = BufWriter::new(writer);
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame,
            () = closed.cancelled() => None,
        };
        let Some(frame) = frame else {
            break;
        };
        if let Err(error) = write_frame(&mut writer, &frame).await {
            tracing::debug!(%error, "peer connection write failed");
            break;
        }
        // Send at once unless more frames are already queued (they share the send).
        if frames.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    closed.cancel();
}

async fn write_frame(
    writer: &mut (impl AsyncWriteExt + Unpin),
    frame: &[u8],
) -> std::io::Result<()> {
    let length = u32::try_from(frame.len())
        .ok()
        .filter(|&length| length as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other("frame over the size limit"))?;
    writer.write_all(&length.to_be_bytes()).await?;
    writer.write_all(frame).await
}

/// Reads one frame; `None` at a clean end of stream.
async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin)) -> Result<Option<Vec<u8>>, String> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(format!("a frame of {length} bytes is over the limit"));
    }
    let mut frame = vec![0u8; length];
    reader
        .read_exact(&mut frame)
        .await
        .map_err(|error| error.to_string())?;
    Ok(Some(frame))
}

/// Serves calls arriving on `listener` with `handler` until `stop` is cancelled.
pub async fn serve<Request, Response, H>(
    listener: TcpListener,
    handler: Arc<H>,
    stop: CancellationToken,
) where
    Request: DeserializeOwned + Send + 'static,
    Response: Serialize + Send + 'static,
    H: Handler<Request, Response>,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                tokio::spawn(serve_connection(stream, handler, stop.child_token()));
            }
            Err(error) => {
                tracing::warn!(%error, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads requests from one peer, handles each on a task of its own (a slow snapshot
/// chunk does not hold up heartbeats), and writes the answers as they come.
async fn serve_connection<Request, Response, H>(
    stream: TcpStream,
    handler: Arc<H>,
    stop: CancellationToken,
) where
    Request: DeserializeOwned + Send + 'static,
    Response: Serialize + Send + 'static,
    H: Handler<Request, Response>,
{
    let (reader, writer) = stream.into_split();
    let (answers, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
    tokio::spawn(write_frames(writer, outgoing, stop.clone()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut reader = BufReader::new(reader);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame,
            () = stop.cancelled() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%error, "peer connection read failed");
                break;
            }
        };
        let (id, request): (u64, Request) = match encoding::decode(&frame) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(%error, "undecodable request from a peer; closing");
                break;
            }
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let (handler, answers) = (Arc::clone(&handler), answers.clone());
        tokio::spawn(async move {
            let response = handler.handle(request).await;
            match encoding::encode(&(id, response)) {
                Ok(frame) => {
                    let _ = answers.send(frame).await;
                }
                Err(error) => tracing::error!(%error, "cannot encode an answer to a peer"),
            }
            drop(permit);
        });
    }
    stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Doubles numbers, slowly for odd ones, so answers come back out of order.
    struct Doubler;

    impl Handler<u64, u64> for Doubler {
        async fn handle(&self, request: u64) -> u64 {
            if request % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            request * 2
        }
    }

    async fn start() -> (String, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(Doubler), stop.clone()));
        (address, stop)
    }

    /// Many calls share one connection and each gets its own answer, even out of order.
    #[tokio::test]
    async fn concurrent_calls_get_their_own_answers() {
        let (address, stop) = start().await;
        let peers = Arc::new(Peers::<u64, u64>::new(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let calls = (0..200u64).map(|n| {
            let (peers, address) = (Arc::clone(&peers), address.clone());
            tokio::spawn(async move {
                let answer = peers.call(&address, &n, Duration::from_secs(5)).await;
                (n, answer)
            })
        });
        for call in futures::future::join_all(calls).await {
            let (n, answer) = call.unwrap();
            assert_eq!(answer, Ok(n * 2));
        }
        assert_eq!(peers.slots.lock().unwrap().len(), 1);
        stop.cancel();
    }

    /// A dead address is Unreachable; a peer that stops answering is a Timeout or a
    /// broken connection, and a later call reconnects once it is back.
    #[tokio::test]
    async fn failures_are_told_apart_and_recovered() {
        let peers = Peers::<u64, u64>::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap().to_string();
        drop(closed);
        assert!(matches!(
            peers.call(&dead, &1, Duration::from_secs(1)).await,
            Err(CallError::Unreachable(_))
        ));
        let (address, stop) = start().await;
        assert_eq!(
            peers.call(&address, &3, Duration::from_secs(1)).await,
            Ok(6)
        );
        assert_eq!(
            peers.call(&address, &5, Duration::from_millis(1)).await,
            Err(CallError::Timeout)
        );
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_stop = peers.call(&address, &2, Duration::from_millis(500)).await;
        assert!(after_stop.is_err(), "{after_stop:?}");
        let listener = TcpListener::bind(&address).await.unwrap();
        let again = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::new(Doubler), again.clone()));
        let mut answer = Err(CallError::Timeout);
        for _ in 0..20 {
            answer = peers.call(&address, &4, Duration::from_secs(1)).await;
            if answer.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(answer, Ok(8));
        again.cancel();
    }
}
