//! How an app reaches the sidecar: on a connection of its own, or on one HTTP/2 connection that
//! every app of the process shares, one stream per app.

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::SdkError;

/// One HTTP/2 connection to the sidecar that any number of apps in this process share, each on
/// its own stream (see [`App::spawn_on`](crate::App::spawn_on)).
///
/// A process that hosts several apps should give them one `Connection`: a call fanned out to
/// them then travels as one write and one read instead of one per app, which is most of what a
/// fan-out costs. Nothing is sent until the first app starts; the connection opens then and
/// reopens by itself when it drops (each app re-registers with its own backoff). Cloning is
/// cheap and shares the connection. The apps' own `tls` option is not used on it: set TLS here.
#[derive(Clone)]
pub struct Connection {
    endpoint: Endpoint,
    channel: Arc<OnceLock<Channel>>,
}

impl Connection {
    /// A connection to the sidecar at `endpoint` (e.g. `http://127.0.0.1:50051`; without a
    /// scheme `http://` is assumed); it opens when the first app starts on it.
    pub fn new(endpoint: impl Into<String>) -> Result<Self, SdkError> {
        Ok(Self::from_endpoint(endpoint_for(endpoint.into(), None)?))
    }

    /// The same connection over TLS (mutual TLS when the config carries an identity); use an
    /// `https://` endpoint.
    pub fn tls(self, tls: ClientTlsConfig) -> Result<Self, SdkError> {
        let endpoint = with_tls(self.endpoint, &tls)?;
        Ok(Self::from_endpoint(endpoint))
    }

    fn from_endpoint(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            channel: Arc::new(OnceLock::new()),
        }
    }

    /// The shared channel, created on first use (it needs a Tokio runtime, which every caller
    /// is running in).
    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", self.endpoint.uri())
            .field("open", &self.channel.get().is_some())
            .finish()
    }
}

/// Where one app's sessions get their channel from.
// One per app, made once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    /// A fresh connection for every session: the app is the only one on it.
    Own(Endpoints),
    /// A connection shared with the other apps of the process.
    Shared(Connection),
}

/// The sidecars an app may connect to (several in cluster mode), and the one it used last.
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    current: AtomicUsize,
}

impl Link {
    /// A connection of the app's own to `endpoints`: one sidecar's URL, or several separated
    /// by commas (cluster mode: when one cannot be reached, the next one is tried).
    pub(crate) fn own(endpoints: String, tls: Option<&ClientTlsConfig>) -> Result<Self, SdkError> {
        let list = endpoints
            .split(',')
            .map(|endpoint| endpoint_for(endpoint.to_owned(), tls))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Own(Endpoints {
            list,
            current: AtomicUsize::new(0),
        }))
    }

    /// The sidecar's address, for logs (the one in use, with several).
    pub(crate) fn uri(&self) -> &tonic::codegen::http::Uri {
        match self {
            Self::Own(endpoints) => endpoints.list[endpoints.current()].uri(),
            Self::Shared(connection) => connection.endpoint.uri(),
        }
    }

    /// A channel for one session: a new connection, or the shared one (which opens, or reopens,
    /// when the session's stream starts). With several endpoints, the one used last is tried
    /// first, then each of the others in turn; the first that connects is used from then on.
    pub(crate) async fn channel(&self) -> Result<Channel, SdkError> {
        match self {
            Self::Own(endpoints) => {
                let first = endpoints.current();
                let mut last = None;
                for step in 0..endpoints.list.len() {
                    let at = (first + step) % endpoints.list.len();
                    match endpoints.list[at].connect().await {
                        Ok(channel) => {
                            endpoints.current.store(at, Ordering::Relaxed);
                            return Ok(channel);
                        }
                        Err(e) => last = Some(e),
                    }
                }
                // Start from the next one at the following attempt.
                endpoints
                    .current
                    .store((first + 1) % endpoints.list.len(), Ordering::Relaxed);
                Err(match last {
                    Some(e) => SdkError::Connect(e),
                    None => SdkError::InvalidEndpoint("no endpoint given".into()),
                })
            }
            Self::Shared(connection) => Ok(connection.channel()),
        }
    }
}

impl Endpoints {
    fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.list.len()
    }
}

/// The sidecar's URL with its scheme: `127.0.0.1:50051` is taken as `http://127.0.0.1:50051`
/// (`https://` when TLS is configured); a scheme other than `http` or `https` is refused at once
/// rather than retried for ever.
pub(crate) fn with_scheme(endpoint: String, tls: bool) -> Result<String, SdkError> {
    let endpoint = endpoint.trim().to_owned();
    if endpoint.is_empty() {
        return Err(SdkError::InvalidEndpoint(
            "the endpoint is empty: give the sidecar's address, e.g. http://127.0.0.1:50051".into(),
        ));
    }
    match endpoint.split_once("://") {
        None if tls => Ok(format!("https://{endpoint}")),
        None => Ok(format!("http://{endpoint}")),
        Some(("http" | "https", _)) => Ok(endpoint),
        Some((scheme, _)) => Err(SdkError::InvalidEndpoint(format!(
            "{endpoint}: the scheme {scheme}:// is not supported; add http:// or https:// (e.g. http://127.0.0.1:50051)"
        ))),
    }
}

/// The endpoint settings every app connection uses.
fn endpoint_for(endpoint: String, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, SdkError> {
    let endpoint = with_scheme(endpoint, tls.is_some())?;
    let built = Endpoint::from_shared(endpoint.clone())
        .map_err(|e| SdkError::InvalidEndpoint(format!("{endpoint}: {e}")))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    match tls {
        Some(tls) => with_tls(built, tls),
        None => Ok(built),
    }
}

fn with_tls(endpoint: Endpoint, tls: &ClientTlsConfig) -> Result<Endpoint, SdkError> {
    let uri = endpoint.uri().to_string();
    endpoint
        .tls_config(tls.clone())
        .map_err(|e| SdkError::InvalidEndpoint(format!("{uri}: TLS: {e}")))
}
