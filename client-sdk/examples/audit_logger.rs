//! An audit logger: writes one line per post event (room created or deleted, user joined or
//! left). Events arrive at least once and in order; the event id makes duplicates recognisable.
//!
//! Run: `cargo run -p roomhooks-sdk --example audit_logger [ENDPOINT]`.

use roomhooks_sdk::{App, PostContext};

fn log(ctx: &PostContext, what: String) {
    let redelivered = if ctx.attempt > 1 {
        " (redelivered)"
    } else {
        ""
    };
    println!("audit {} {}{redelivered}", ctx.event_id, what);
}

#[tokio::main]
async fn main() -> Result<(), roomhooks_sdk::SdkError> {
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .init();
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    App::builder("audit-logger")
        .version(env!("CARGO_PKG_VERSION"))
        .post_room_create(|ctx, room| async move {
            log(
                &ctx,
                format!("room created: {} ({})", room.display_name, room.id),
            );
            Ok(())
        })
        .post_room_deleted(|ctx, room| async move {
            log(&ctx, format!("room deleted: {}", room.id));
            Ok(())
        })
        .post_room_user_joined(|ctx, joined| async move {
            let user = joined.joining_user.map(|u| u.username).unwrap_or_default();
            let room = joined.room.map(|r| r.id).unwrap_or_default();
            log(&ctx, format!("{user} joined {room}"));
            Ok(())
        })
        .post_room_user_leave(|ctx, leave| async move {
            let user = leave.leaving_user.map(|u| u.username).unwrap_or_default();
            let room = leave.room.map(|r| r.id).unwrap_or_default();
            log(&ctx, format!("{user} left {room}"));
            Ok(())
        })
        .build()
        .run_until(endpoint, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
