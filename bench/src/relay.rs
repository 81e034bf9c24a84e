//! The floor's relay (`roomhooks-bench relay`): the smallest tonic service with the sidecar's
//! shape. Each unary `Call` gets an id, is sent down the stream the echo peer opened with
//! `Attach`, and is answered when the reply with that id comes back up, exactly as the sidecar
//! correlates a HookCall with its HookResult (mutex-guarded map of oneshot senders, bounded
//! outbound queue, one reader task per stream).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Request, Response, Status, Streaming,
    transport::{Server, server::TcpIncoming},
};

use crate::{
    child::stdin_closed,
    cli::RelayArgs,
    error::Error,
    relay_proto::{
        Payload,
        relay_server::{Relay, RelayServer},
    },
};

/// Requests that may wait in the peer's outbound queue (the sidecar's OUTBOUND_CAPACITY).
const OUTBOUND_CAPACITY: usize = 1024;

/// The attached peer: where requests go down, and the task reading its replies.
struct Peer {
    down: mpsc::Sender<Result<Payload, Status>>,
    reader: JoinHandle<()>,
}

/// Calls waiting for the peer's reply, by id.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// Serves `relay.v1.Relay`.
#[derive(Default)]
struct RelayService {
    peer: RwLock<Option<Peer>>,
    waiting: Waiting,
    next_id: AtomicU64,
}

fn lock(waiting: &Waiting) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<u8>>>> {
    waiting.lock().unwrap_or_else(|p| p.into_inner())
}

#[tonic::async_trait]
impl Relay for RelayService {
    async fn call(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let down = self
            .peer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|peer| peer.down.clone())
            .ok_or_else(|| Status::unavailable("no echo peer attached"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, answer) = oneshot::channel();
        lock(&self.waiting).insert(id, reply);
        let body = request.into_inner().body;
        if down.try_send(Ok(Payload { id, body })).is_err() {
            lock(&self.waiting).remove(&id);
            return Err(Status::unavailable("the echo peer is not reading"));
        }
        match answer.await {
            Ok(body) => Ok(Response::new(Payload { id: 0, body })),
            Err(_) => Err(Status::unavailable("the echo peer went away")),
        }
    }

    async fn echo(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type AttachStream = ReceiverStream<Result<Payload, Status>>;

    async fn attach(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut up = request.into_inner();
        let (down, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let waiting = Arc::clone(&self.waiting);
        let reader = tokio::spawn(async move {
            while let Ok(Some(reply)) = up.message().await {
                // An unknown id (never sent, or already answered) is ignored.
                if let Some(waiter) = lock(&waiting).remove(&reply.id) {
                    let _ = waiter.send(reply.body);
                }
            }
        });
        let replaced = self
            .peer
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Peer { down, reader });
        if let Some(old) = replaced {
            old.reader.abort();
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl Drop for RelayService {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.get_mut().unwrap_or_else(|p| p.into_inner()) {
            peer.reader.abort();
        }
    }
}

/// Serves the relay on a free loopback port, prints `listening ADDR`, and stops when stdin
/// closes.
pub async fn run(_args: RelayArgs) -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("the relay cannot bind 127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("the relay has no local address", e))?;
    // The sidecar's settings: TCP_NODELAY on both the builder and the accepted sockets.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .tcp_nodelay(true)
        .add_service(RelayServer::new(RelayService::default()))
        .serve_with_incoming_shutdown(incoming, stdin_closed());
    println!("listening {addr}");
    server
        .await
        .map_err(|e| Error::Child(format!("the relay failed: {e}")))
}
