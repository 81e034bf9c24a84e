//! Connecting to NATS (the first reachable server, retried until `--cluster-wait` runs out, with
//! the configured credentials and TLS) and making the cluster's streams and buckets.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::time::Instant;

use super::{Buckets, ClusterError, ClusterSettings, names::Names, settings::NatsAuth};
use crate::config::ClusterWait;

/// Connects to the first reachable NATS server, retrying until `--cluster-wait` runs out.
pub(super) async fn connect_nats(
    settings: &ClusterSettings,
) -> Result<async_nats::Client, ClusterError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let options = options(settings).await?;
        let last = match options.connect(settings.urls.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(err) => err.to_string(),
        };
        let waited = started.elapsed();
        match settings.wait {
            ClusterWait::Bounded(limit) if waited >= limit => {
                return Err(ClusterError::Unreachable {
                    urls: settings.urls.join(","),
                    waited,
                    last,
                });
            }
            _ => {}
        }
        tracing::warn!(nats = %settings.urls.join(","), waited = ?waited,
            "cannot reach NATS yet ({last}); retrying (--cluster-wait)");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The client's options: credentials, TLS, and the connection events logged and tracked.
async fn options(settings: &ClusterSettings) -> Result<async_nats::ConnectOptions, ClusterError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("roomhooks {}", settings.sidecar_id))
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(5)))
        // Reconnects for ever: a NATS outage ends when NATS is back, not when we give up.
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connection is up"),
                async_nats::Event::Disconnected => {
                    tracing::warn!(
                        "NATS connection lost; reconnecting (post events are refused \
                             with UNAVAILABLE meanwhile, Pre calls use local instances)"
                    );
                }
                other => tracing::info!("NATS: {other}"),
            }
        });
    options = match &settings.auth {
        NatsAuth::None => options,
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::UserPassword(user, password) => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Creds(path) => options.credentials_file(path).await.map_err(|e| {
            ClusterError::Credentials(format!("cannot read {}: {e}", path.display()))
        })?,
    };
    if let Some(ca) = &settings.tls.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &settings.tls.client {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options)
}

/// Creates (or updates to these settings) the streams and buckets of the cluster.
pub(super) async fn ensure_objects(
    js: &jetstream::Context,
    names: &Names,
    settings: &ClusterSettings,
) -> Result<Buckets, ClusterError> {
    let replicas = settings.replicas;
    let posts = stream::Config {
        name: names.posts_stream(),
        subjects: names.posts_subjects(),
        // One stored message per event however many apps take it: each app's durable consumer
        // is an interest, and the message goes once every consumer that wants it acknowledged.
        retention: stream::RetentionPolicy::Interest,
        duplicate_window: settings.dedupe_window,
        // --post-queue-max-events / -bytes bound the stream; when it is full a new post is
        // refused (UNAVAILABLE, the backend retries) instead of an accepted one being dropped.
        max_messages: i64::try_from(settings.max_queued).unwrap_or(i64::MAX),
        max_bytes: i64::try_from(settings.max_bytes).unwrap_or(i64::MAX),
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        description: Some("roomhooks post events, once each (interest retention)".into()),
        ..Default::default()
    };
    js.create_or_update_stream(posts)
        .await
        .map_err(|e| ClusterError::setup("stream", names.posts_stream(), replicas, e))?;
    let dead = stream::Config {
        name: names.dead_stream(),
        subjects: names.dead_subjects(),
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        description: Some("roomhooks dead letters, per app subject".into()),
        ..Default::default()
    };
    js.create_or_update_stream(dead)
        .await
        .map_err(|e| ClusterError::setup("stream", names.dead_stream(), replicas, e))?;
    let sidecars = bucket(
        js,
        names.sidecars_bucket(),
        settings.member_ttl,
        replicas,
        "live roomhooks sidecars (heartbeat keys)",
    )
    .await?;
    let apps = bucket(
        js,
        names.apps_bucket(),
        Duration::ZERO,
        replicas,
        "roomhooks app declarations",
    )
    .await?;
    Ok(Buckets { sidecars, apps })
}

/// Creates or opens one KV bucket (`max_age` zero: keys never expire).
async fn bucket(
    js: &jetstream::Context,
    name: String,
    max_age: Duration,
    replicas: usize,
    description: &str,
) -> Result<kv::Store, ClusterError> {
    js.create_or_update_key_value(kv::Config {
        bucket: name.clone(),
        description: description.to_owned(),
        history: 1,
        max_age,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::setup("KV bucket", name, replicas, e))
}
