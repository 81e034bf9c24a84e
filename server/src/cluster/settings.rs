//! The cluster settings as one value, taken from [`Config`] once at start.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::config::{ClusterWait, Config};

/// How this sidecar joins its cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// The NATS servers to try, in order.
    pub urls: Vec<String>,
    /// The prefix of every NATS name.
    pub name: String,
    /// This sidecar's id in the cluster.
    pub sidecar_id: String,
    /// Where this sidecar serves gRPC (shown in `ListSidecars`).
    pub listen: SocketAddr,
    /// Replicas of streams and buckets.
    pub replicas: usize,
    /// How long start-up waits for NATS.
    pub wait: ClusterWait,
    /// A sidecar silent this long is forgotten.
    pub member_ttl: Duration,
    /// How long an acknowledged event id de-duplicates a retried post (the stream's window).
    pub dedupe_window: Duration,
    /// Delivery attempts of a post event before it becomes a dead letter.
    pub max_attempts: u32,
    /// How long an app has to acknowledge a delivery.
    pub ack_timeout: Duration,
    /// Deliveries in flight per app, at most.
    pub window: usize,
    /// Post events the posts stream holds at most (all apps together: each is stored once);
    /// beyond it new posts are refused rather than accepted ones dropped.
    pub max_queued: usize,
    /// Bytes the posts stream holds at most, likewise.
    pub max_bytes: usize,
    /// How the sidecar authenticates to NATS.
    pub auth: NatsAuth,
    /// TLS towards NATS.
    pub tls: NatsTls,
}

/// NATS credentials.
#[derive(Clone, Debug, Default)]
pub enum NatsAuth {
    /// None (a NATS without authorization).
    #[default]
    None,
    /// A token.
    Token(String),
    /// A user and password.
    UserPassword(String, String),
    /// A `.creds` file (JWT and NKey seed).
    Creds(PathBuf),
}

/// TLS towards NATS: off unless a CA or a client certificate is given.
#[derive(Clone, Debug, Default)]
pub struct NatsTls {
    /// The CA that signs the servers' certificates.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl ClusterSettings {
    /// The cluster settings of `config`, or `None` when cluster mode is off. `listen` is the
    /// address actually bound (the default sidecar id uses its port).
    pub fn from_config(config: &Config, listen: SocketAddr) -> Option<Self> {
        let urls = config.cluster_url.as_deref()?;
        let auth = if let Some(creds) = &config.cluster_creds {
            NatsAuth::Creds(creds.clone())
        } else if let Some(token) = &config.cluster_token {
            NatsAuth::Token(token.clone())
        } else if let (Some(user), Some(password)) =
            (&config.cluster_user, &config.cluster_password)
        {
            NatsAuth::UserPassword(user.clone(), password.clone())
        } else {
            NatsAuth::None
        };
        Some(Self {
            urls: urls.split(',').map(|u| u.trim().to_owned()).collect(),
            name: config.cluster_name.clone(),
            sidecar_id: config
                .sidecar_id
                .clone()
                .unwrap_or_else(|| default_sidecar_id(listen.port())),
            listen,
            replicas: config.cluster_replicas,
            wait: config.cluster_wait,
            member_ttl: config.cluster_member_ttl,
            dedupe_window: config.post.dedupe_window,
            max_attempts: config.post.max_attempts,
            ack_timeout: config.post.ack_timeout,
            window: config.post.window,
            max_queued: config.post.max_queued,
            max_bytes: config.post.max_bytes,
            auth,
            tls: NatsTls {
                ca: config.cluster_tls_ca.clone(),
                client: config
                    .cluster_tls_cert
                    .clone()
                    .zip(config.cluster_tls_key.clone()),
            },
        })
    }

    /// How often this sidecar says it is alive: four times per `member_ttl`.
    pub fn heartbeat_every(&self) -> Duration {
        self.member_ttl / 4
    }
}

/// `<hostname>-<port>`, with the hostname cut to the id alphabet (`A-Z a-z 0-9 . _ -`).
fn default_sidecar_id(port: u16) -> String {
    let host = hostname();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    let host = if host.is_empty() {
        "sidecar".into()
    } else {
        host
    };
    format!("{host}-{port}")
}

/// The host's name (`gethostname`), or empty.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
