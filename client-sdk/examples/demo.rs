//! A self-contained tour: an in-process sidecar on 127.0.0.1:0, four apps like the other examples
//! (word filter, extender, slug modifier, audit logger) and a scripted backend session, printed
//! as a table of each call's verdict and per-app outcomes. Exits 1 if a verdict is not the one
//! the script expects.
//!
//! Run: `cargo run -p roomhooks-sdk --example demo`.

use std::{
    error::Error,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use roomhooks_sdk::{
    App, AppHandle, Extension, HookError, Modification, RoomHooksClient, Veto,
    proto::{
        AppOutcome, FailurePolicy, HookInterface, OutcomeStatus, PostRoomCreateRequest,
        PreRoomCreateRequest, PreRoomUserJoinRequest, Room, RoomType, RoomUserJoined, User,
    },
};
use roomhooks_server::{Config, Sidecar, config::MaybeAddr};

/// Every wait in the demo (registration, calls, shutdown) is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

/// Prevents "spam"/"scam" rooms and joins of "troll" (fail-closed, like `word_filter`).
fn word_filter() -> App {
    App::builder("word-filter")
        .priority(10)
        .failure_policy(FailurePolicy::Fail)
        .pre_room_create_prevent(|_, room| async move {
            let name = room.display_name.to_lowercase();
            Ok(
                match ["spam", "scam"].into_iter().find(|w| name.contains(w)) {
                    Some(word) => Veto::prevent(format!("Room names may not contain \"{word}\".")),
                    None => Veto::Allow,
                },
            )
        })
        .pre_room_user_joined(|_, joined| async move {
            match joined.joining_user.map(|u| u.username).as_deref() {
                Some("troll") => Err(HookError::UserNotAllowed("troll is banned.".into())),
                _ => Ok(()),
            }
        })
        .build()
}

/// Adds `created_via` and a welcome bot (like `extender`).
fn extender() -> App {
    App::builder("extender")
        .priority(20)
        .pre_room_create_extend(|_, _| async {
            Ok(Extension::new()
                .field("created_via", "roomhooks")
                .member("welcome-bot"))
        })
        .build()
}

/// Derives the slug from the display name (like `modifier`, simplified).
fn slug_modifier() -> App {
    App::builder("slug-normaliser")
        .priority(30)
        .pre_room_create_modify(|_, mut room| async move {
            let words: Vec<String> = room
                .display_name
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            let slug = words.join("-");
            if slug == room.slugified_name {
                return Ok(Modification::Unchanged);
            }
            room.slugified_name = slug;
            Ok(Modification::Changed(room))
        })
        .build()
}

/// Records post events into `log` (like `audit_logger`, which prints them).
fn audit_logger(log: Arc<Mutex<Vec<String>>>) -> App {
    App::builder("audit-logger")
        .post_room_create(move |ctx, room| {
            let line = format!("{}: room created: {}", ctx.event_id, room.display_name);
            log.lock().map(|mut l| l.push(line)).ok();
            async { Ok(()) }
        })
        .build()
}

/// Rows of the output table, one per app outcome (or one for a call no app was asked about).
#[derive(Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    const HEADER: [&'static str; 7] = ["call", "verdict", "app", "hook", "status", "µs", "detail"];

    /// Adds one call: its verdict on the first row, one row per outcome.
    fn add(&mut self, call: &str, verdict: &str, outcomes: &[AppOutcome]) {
        let mut first = [call.to_owned(), verdict.to_owned()];
        for o in outcomes {
            let hook = HookInterface::try_from(o.hook).map_or("?", |h| h.as_str_name());
            let status = OutcomeStatus::try_from(o.status).map_or("?", |s| s.as_str_name());
            let [c, v] = std::mem::take(&mut first);
            self.rows.push([
                c,
                v,
                o.app_id.clone(),
                hook.trim_start_matches("HOOK_INTERFACE_").to_owned(),
                status.trim_start_matches("OUTCOME_STATUS_").to_owned(),
                o.duration_us.to_string(),
                o.detail.clone(),
            ]);
        }
        if outcomes.is_empty() {
            let [c, v] = first;
            self.rows
                .push([c, v, "-".into(), "".into(), "".into(), "".into(), "".into()]);
        }
    }

    /// Prints the table with aligned columns (µs right-aligned).
    fn print(&self) {
        let header = Self::HEADER.map(String::from);
        let mut widths = [0; 7];
        for row in std::iter::once(&header).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                line += &match i {
                    5 => format!("{cell:>w$}  "),
                    6 => cell.clone(),
                    _ => format!("{cell:<w$}  "),
                };
            }
            println!("{}", line.trim_end());
        }
    }
}

/// A user with a derived id.
fn user(name: &str) -> User {
    User {
        id: format!("u-{name}"),
        username: name.into(),
        ..Default::default()
    }
}

/// `key: "value", ...` for display.
fn fields(custom: Option<prost_types::Struct>) -> String {
    use prost_types::value::Kind;
    let fields = custom.map(|s| s.fields).unwrap_or_default();
    let shown: Vec<String> = fields
        .into_iter()
        .map(|(key, value)| match value.kind {
            Some(Kind::StringValue(s)) => format!("{key}: {s:?}"),
            other => format!("{key}: {other:?}"),
        })
        .collect();
    shown.join(", ")
}

/// The verdict cell; records a failure when `allowed` is not `expected`.
fn verdict(allowed: bool, expected: bool, failures: &mut Vec<String>, call: &str) -> String {
    if allowed != expected {
        failures.push(format!("{call}: allowed = {allowed}, expected {expected}"));
    }
    if allowed { "allowed" } else { "PREVENTED" }.to_owned()
}

/// Plays the backend's calls into `table`; returns the unexpected verdicts and the stored room.
async fn session(
    backend: &RoomHooksClient,
    table: &mut Table,
) -> Result<(Vec<String>, Option<Room>), Box<dyn Error>> {
    let mut failures = Vec::new();
    let new_room = |name: &str| Room {
        display_name: name.into(),
        r#type: RoomType::Channel as i32,
        creator: Some(user("owner")),
        member_usernames: vec!["owner".into()],
        ..Default::default()
    };
    let mut stored = None;
    for (name, expected) in [("Launch Party", true), ("spam corner", false)] {
        let call = format!("PreRoomCreate {name:?}");
        let request = PreRoomCreateRequest {
            room: Some(new_room(name)),
            ..Default::default()
        };
        let r = backend.pre_room_create(request).await?;
        table.add(
            &call,
            &verdict(r.allowed, expected, &mut failures, &call),
            &r.outcomes,
        );
        if r.allowed {
            stored = r.room.map(|room| Room {
                id: "r-1".into(),
                ..room
            });
        }
    }
    for (name, expected) in [("alice", true), ("troll", false)] {
        let call = format!("PreRoomUserJoin {name:?}");
        let request = PreRoomUserJoinRequest {
            context: Some(RoomUserJoined {
                room: stored.clone(),
                joining_user: Some(user(name)),
                inviter: None,
            }),
            ..Default::default()
        };
        let r = backend.pre_room_user_join(request).await?;
        table.add(
            &call,
            &verdict(r.allowed, expected, &mut failures, &call),
            &r.outcomes,
        );
    }
    let request = PostRoomCreateRequest {
        room: stored.clone(),
        event_id: "evt-1".into(),
        wait_for_delivery: true,
    };
    let r = backend.post_room_create(request).await?;
    let delivered = r
        .outcomes
        .iter()
        .all(|o| o.status == OutcomeStatus::Delivered as i32);
    if r.subscribed_apps != 1 || !delivered {
        failures.push("PostRoomCreate: expected one app, delivered".into());
    }
    let accepted = format!("accepted by {} app(s)", r.subscribed_apps);
    table.add("PostRoomCreate (wait)", &accepted, &r.outcomes);
    Ok((failures, stored))
}

/// Starts everything, plays the session, prints, stops everything; returns the failures.
async fn run() -> Result<Vec<String>, Box<dyn Error>> {
    // A demo keeps nothing: post events in memory, no metrics port.
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        metrics_listen: MaybeAddr::Off,
        ephemeral: true,
        ..Config::default()
    };
    let sidecar = Sidecar::start(config).await?;
    let endpoint = format!("http://{}", sidecar.local_addr());
    println!("sidecar listening on {}\n", sidecar.local_addr());

    let audit_log = Arc::new(Mutex::new(Vec::new()));
    let mut apps: Vec<AppHandle> = Vec::new();
    for app in [
        word_filter(),
        extender(),
        slug_modifier(),
        audit_logger(Arc::clone(&audit_log)),
    ] {
        let mut handle = app.spawn(endpoint.clone());
        tokio::time::timeout(LIMIT, handle.registered()).await??;
        apps.push(handle);
    }
    let backend = RoomHooksClient::connect(endpoint)
        .await?
        .with_deadline(LIMIT);

    let mut table = Table::default();
    let (failures, stored) = session(&backend, &mut table).await?;
    table.print();
    if let Some(room) = stored {
        println!(
            "\nthe stored room: {:?}, slug {:?}, members {:?}, custom fields {{{}}}",
            room.display_name,
            room.slugified_name,
            room.member_usernames,
            fields(room.custom_fields),
        );
    }
    println!("\naudit-logger saw:");
    for line in audit_log.lock().map(|l| l.clone()).unwrap_or_default() {
        println!("  {line}");
    }

    for app in apps {
        tokio::time::timeout(LIMIT, app.shutdown()).await??;
    }
    tokio::time::timeout(LIMIT, sidecar.shutdown()).await??;
    Ok(failures)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("\ndemo: unexpected verdicts:\n  {}", failures.join("\n  "));
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}
