//! One session with the sidecar (one `Connect` stream): register, then answer calls concurrently
//! and post events in order, until the stream ends or the app shuts down.
//!
//! The steps of [`run`]: [`open`] the stream with `Register` queued, [`registration`] waits for
//! the sidecar's `Registered`, [`Session::serve`] reads the stream ([`Session::handle`] for each
//! message) and drains on shutdown, and [`Session::leave`] closes the stream gracefully.

mod calls;
mod dispatch;
mod post;

use std::{sync::Arc, time::Duration};

use roomhooks::v1::{
    AppMessage, HookCall, PostEvent, Registered, RuntimeMessage, app_message::Msg as Up,
    app_runtime_client::AppRuntimeClient, runtime_message::Msg as Down,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use self::{
    calls::Calls,
    dispatch::{error, result},
    post::post_worker,
};
use crate::{SdkError, app::App, connection::Link};

/// Messages waiting to go up to the sidecar, at most.
const UPLINK_CAPACITY: usize = 1024;
/// Post events waiting for the in-order worker, at most (above the sidecar's default window of
/// 1024 in flight, so a full window never overflows it).
const POST_BACKLOG: usize = 4096;
/// How long a leaving instance waits for the sidecar to end its stream after closing its side.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a session ended.
pub(crate) enum SessionEnd {
    /// The app was asked to stop and drained.
    Shutdown,
    /// The connection dropped.
    Disconnected {
        /// Whether the sidecar had accepted the registration.
        was_registered: bool,
    },
}

/// Who this instance is, as the sidecar registered it.
#[derive(Debug)]
struct Identity {
    app_id: String,
    instance_id: String,
}

/// Runs one session: a stream on a new connection or on the shared one.
pub(crate) async fn run(
    app: &App,
    link: &Link,
    shutdown: &CancellationToken,
    registered: &watch::Sender<Option<String>>,
) -> Result<SessionEnd, SdkError> {
    let (uplink, mut inbound) = open(app, link).await?;
    let Some(identity) = registration(&mut inbound).await? else {
        return Ok(SessionEnd::Disconnected {
            was_registered: false,
        });
    };
    tracing::info!(app_id = %identity.app_id, instance_id = %identity.instance_id,
        "registered with the sidecar");
    registered.send_replace(Some(identity.instance_id.clone()));
    Ok(Session::start(app, identity, uplink)
        .serve(inbound, shutdown)
        .await)
}

/// Opens the `Connect` stream with `Register` as its first message (and the app's token, if it
/// has one); returns the send side and the stream from the sidecar.
async fn open(
    app: &App,
    link: &Link,
) -> Result<(mpsc::Sender<AppMessage>, tonic::Streaming<RuntimeMessage>), SdkError> {
    let channel = link.channel().await?;
    let mut client = AppRuntimeClient::new(channel);
    let (uplink, uplink_rx) = mpsc::channel::<AppMessage>(UPLINK_CAPACITY);
    let register = AppMessage {
        msg: Some(Up::Register(app.register_message())),
    };
    uplink
        .try_send(register)
        .map_err(|_| SdkError::Protocol("could not queue Register".into()))?;
    let mut request = tonic::Request::new(ReceiverStream::new(uplink_rx));
    if let Some(token) = &app.options.token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| SdkError::Protocol("the app token is not valid in a header".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let inbound = client
        .connect(request)
        .await
        .map_err(SdkError::Refused)?
        .into_inner();
    Ok((uplink, inbound))
}

/// Waits for the sidecar's answer to `Register`: the identity it registered, or `None` when the
/// stream ended first.
async fn registration(
    inbound: &mut tonic::Streaming<RuntimeMessage>,
) -> Result<Option<Identity>, SdkError> {
    match inbound.message().await.map_err(SdkError::Refused)? {
        Some(RuntimeMessage {
            msg:
                Some(Down::Registered(Registered {
                    app_id,
                    instance_id,
                })),
        }) => Ok(Some(Identity {
            app_id,
            instance_id,
        })),
        Some(_) => Err(SdkError::Protocol(
            "the sidecar did not answer Register with Registered".into(),
        )),
        None => Ok(None),
    }
}

/// A registered session: what its read loop needs to answer the sidecar.
struct Session<'a> {
    app: &'a App,
    identity: Arc<Identity>,
    uplink: mpsc::Sender<AppMessage>,
    /// The in-order post worker's queue.
    post_tx: mpsc::Sender<PostEvent>,
    /// The post worker.
    workers: JoinSet<()>,
    calls: Calls,
    /// Set once shutdown began: when the drain gives up on calls still running.
    draining_until: Option<Instant>,
}

// === impl Session ===

impl<'a> Session<'a> {
    /// Starts the session's post worker.
    fn start(app: &'a App, identity: Identity, uplink: mpsc::Sender<AppMessage>) -> Self {
        let identity = Arc::new(identity);
        let (post_tx, post_rx) = mpsc::channel(POST_BACKLOG);
        let mut workers = JoinSet::new();
        workers.spawn(post_worker(
            app.handlers.clone(),
            post_rx,
            uplink.clone(),
            Arc::clone(&identity),
        ));
        Session {
            app,
            identity,
            uplink,
            post_tx,
            workers,
            calls: Calls::default(),
            draining_until: None,
        }
    }

    /// The read loop: handles the sidecar's messages and finished calls until the stream ends,
    /// or, once `shutdown` fires, until the calls in flight finished or the drain timeout passed.
    async fn serve(
        mut self,
        mut inbound: tonic::Streaming<RuntimeMessage>,
        shutdown: &CancellationToken,
    ) -> SessionEnd {
        let disconnected = SessionEnd::Disconnected {
            was_registered: true,
        };
        loop {
            if let Some(until) = self.draining_until
                && (self.calls.is_empty() || Instant::now() >= until)
            {
                if !self.calls.is_empty() {
                    tracing::warn!(app_id = %self.identity.app_id, left = self.calls.len(),
                        "drain timeout passed with calls still running; abandoning them");
                }
                return self.leave(inbound).await;
            }
            let draining_until = self.draining_until;
            let drain_tick = async move {
                match draining_until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled(), if self.draining_until.is_none() => self.drain(),
                () = drain_tick => {}
                Some(done) = self.calls.set.join_next_with_id(), if !self.calls.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(err) => err.id(),
                    };
                    self.calls.finished(id);
                }
                next = inbound.message() => match next {
                    Ok(Some(RuntimeMessage { msg: Some(message) })) => self.handle(message),
                    Ok(Some(RuntimeMessage { msg: None })) => {}
                    Ok(None) => return disconnected,
                    Err(status) => {
                        tracing::info!(app_id = %self.identity.app_id, "stream ended: {}", status.message());
                        return disconnected;
                    }
                },
            }
        }
    }

    /// Begins the drain: no new calls or post events; calls in flight get the drain timeout.
    fn drain(&mut self) {
        tracing::info!(app_id = %self.identity.app_id, in_flight = self.calls.len(),
            "draining before shutdown");
        self.draining_until = Some(Instant::now() + self.app.options.drain_timeout);
    }

    /// Handles one message from the sidecar.
    fn handle(&mut self, message: Down) {
        match message {
            Down::Call(call) => self.call(call),
            Down::Cancel(cancel) => self.calls.cancel(cancel.call_id),
            Down::PostEvent(event) => {
                if self.draining_until.is_none() && self.post_tx.try_send(event).is_err() {
                    tracing::warn!(app_id = %self.identity.app_id,
                        "post-event backlog full; the event will be redelivered");
                }
            }
            Down::Heartbeat(beat) => {
                let ack = AppMessage {
                    msg: Some(Up::HeartbeatAck(roomhooks::v1::HeartbeatAck {
                        nonce: beat.nonce,
                    })),
                };
                // A full uplink means the sidecar is not reading; it will notice either way.
                let _ = self.uplink.try_send(ack);
            }
            Down::Registered(_) => {}
        }
    }

    /// Starts answering a call, or refuses it while draining or at `max_concurrent_calls`.
    fn call(&mut self, call: HookCall) {
        let refuse = if self.draining_until.is_some() {
            Some("the app instance is shutting down")
        } else if self.calls.len() >= self.app.options.max_concurrent_calls {
            Some("the app instance is at its max_concurrent_calls")
        } else {
            None
        };
        match refuse {
            Some(why) => {
                let _ = self.uplink.try_send(result(call.call_id, error(why)));
            }
            None => self
                .calls
                .start(call, &self.app.handlers, &self.uplink, &self.identity),
        }
    }

    /// Leaves gracefully: closes this instance's send side (once every task holding it has
    /// stopped), so the sidecar retries anything still in flight on siblings and ends the stream
    /// with OK; then waits briefly for that end, so the close reaches the sidecar before the
    /// process exits rather than the connection being cut.
    async fn leave(self, mut inbound: tonic::Streaming<RuntimeMessage>) -> SessionEnd {
        let Session {
            uplink,
            mut workers,
            mut calls,
            ..
        } = self;
        workers.abort_all();
        calls.set.abort_all();
        while workers.join_next().await.is_some() {}
        while calls.set.join_next().await.is_some() {}
        drop(uplink);
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        SessionEnd::Shutdown
    }
}
