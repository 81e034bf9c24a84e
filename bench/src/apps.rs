//! The synthetic apps (`roomhooks-bench apps`): real SDK apps, each instance on its own
//! connection, as separate app processes would be, or all on one shared connection
//! (`--shared-connection`), as one process hosting several apps should be. Prints `ready` once
//! every instance is registered; then, for each `expect N` line on stdin, prints `reached N` once
//! every app has handled N post events in total. Stops when stdin closes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use roomhooks_sdk::{App, AppHandle, Connection, Extension, Modification, Veto};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::Notify,
};

use crate::{
    cli::{AppKind, AppsArgs},
    error::Error,
};

/// How long every instance has to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(120);

/// Post events handled, per app, and a wake-up for whoever waits on them.
#[derive(Default)]
struct Delivered {
    per_app: Vec<AtomicU64>,
    changed: Notify,
}

impl Delivered {
    fn new(apps: usize) -> Self {
        Self {
            per_app: (0..apps).map(|_| AtomicU64::new(0)).collect(),
            changed: Notify::new(),
        }
    }

    fn least(&self) -> u64 {
        self.per_app
            .iter()
            .map(|n| n.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// Waits until every app handled at least `target` events.
    async fn reach(&self, target: u64) {
        while self.least() < target {
            // The timeout covers a wake-up that slipped between the check and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(5), self.changed.notified()).await;
        }
    }
}

/// Builds app number `index` of `kind`.
fn app(kind: AppKind, index: usize, delivered: &Arc<Delivered>) -> App {
    match kind {
        AppKind::Veto => App::builder(format!("veto-{index:02}"))
            .pre_room_user_joined(|_ctx, _joined| async { Ok(()) })
            .build(),
        AppKind::Create => {
            let field = format!("bench-{index}");
            let suffix = format!(" / checked by create-{index}");
            App::builder(format!("create-{index}"))
                .priority(i32::try_from(index).unwrap_or(i32::MAX))
                .pre_room_create_prevent(|_ctx, _room| async { Ok(Veto::Allow) })
                .pre_room_create_extend(move |_ctx, _room| {
                    let field = field.clone();
                    async move { Ok(Extension::new().field(field, "bench".to_owned())) }
                })
                .pre_room_create_modify(move |_ctx, mut room| {
                    room.description.push_str(&suffix);
                    async move { Ok(Modification::Changed(room)) }
                })
                .build()
        }
        AppKind::Post => {
            let delivered = Arc::clone(delivered);
            App::builder(format!("post-{index}"))
                .post_room_create(move |_ctx, _room| {
                    if let Some(count) = delivered.per_app.get(index) {
                        count.fetch_add(1, Ordering::AcqRel);
                    }
                    delivered.changed.notify_waiters();
                    async { Ok(()) }
                })
                .build()
        }
    }
}

/// Runs `args.apps` apps with `args.instances` instances each until stdin closes.
pub async fn run(args: AppsArgs) -> Result<(), Error> {
    let delivered = Arc::new(Delivered::new(args.apps));
    let shared = if args.shared_connection {
        Some(Connection::new(args.endpoint.clone())?)
    } else {
        None
    };
    let endpoints: Vec<&str> = args.endpoint.split(',').collect();
    let mut handles: Vec<AppHandle> = Vec::with_capacity(args.apps * args.instances);
    for index in 0..args.apps {
        let app = app(args.kind, index, &delivered);
        let endpoint = if args.spread {
            endpoints[index % endpoints.len()].to_owned()
        } else {
            args.endpoint.clone()
        };
        for _ in 0..args.instances {
            handles.push(match &shared {
                Some(connection) => app.clone().spawn_on(connection),
                None => app.clone().spawn(endpoint.clone()),
            });
        }
    }
    let registered = async {
        for handle in &mut handles {
            handle.registered().await?;
        }
        Ok::<(), Error>(())
    };
    tokio::time::timeout(REGISTER_TIMEOUT, registered)
        .await
        .map_err(|_| {
            Error::Child(format!(
                "the apps did not all register within {REGISTER_TIMEOUT:?}"
            ))
        })??;
    println!("ready");

    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = commands.next_line().await {
        match line.strip_prefix("expect ").map(str::parse::<u64>) {
            Some(Ok(target)) => {
                delivered.reach(target).await;
                println!("reached {target}");
            }
            _ => tracing::warn!("apps: ignored the command {line:?}"),
        }
    }
    // Dropping the handles stops every app.
    drop(handles);
    Ok(())
}
