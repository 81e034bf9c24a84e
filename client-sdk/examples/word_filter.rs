//! A word filter: prevents rooms whose name contains a banned word, and joins of banned users;
//! allows a name written in capitals with a warning for the user.
//!
//! Run: `cargo run -p roomhooks-sdk --example word_filter [ENDPOINT]` (default
//! `http://127.0.0.1:50051`). Banned words and users come from `BANNED_WORDS` and `BANNED_USERS`
//! (comma-separated), defaulting to "spam,scam" and "troll".

use std::sync::Arc;

use roomhooks_sdk::{App, HookError, Veto, proto::FailurePolicy};

fn list(var: &str, default: &str) -> Arc<Vec<String>> {
    let raw = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    Arc::new(
        raw.split(',')
            .map(|w| w.trim().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect(),
    )
}

#[tokio::main]
async fn main() -> Result<(), roomhooks_sdk::SdkError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let words = list("BANNED_WORDS", "spam,scam");
    let users = list("BANNED_USERS", "troll");

    App::builder("word-filter")
        .version(env!("CARGO_PKG_VERSION"))
        .priority(10)
        // Moderation must not be skipped: when this app is down, rooms are not created.
        .failure_policy(FailurePolicy::Fail)
        .pre_room_create_prevent(move |_ctx, room| {
            let words = Arc::clone(&words);
            async move {
                let name = room.display_name.to_lowercase();
                let shouting = room
                    .display_name
                    .chars()
                    .filter(|c| c.is_alphabetic())
                    .count()
                    > 1
                    && !room.display_name.chars().any(char::is_lowercase);
                Ok(match words.iter().find(|w| name.contains(w.as_str())) {
                    Some(word) => Veto::prevent(format!("Room names may not contain \"{word}\".")),
                    None if shouting => Veto::warn("Room names in capitals may read as shouting."),
                    None => Veto::Allow,
                })
            }
        })
        .pre_room_user_joined(move |_ctx, joined| {
            let users = Arc::clone(&users);
            async move {
                let username = joined
                    .joining_user
                    .map(|u| u.username.to_lowercase())
                    .unwrap_or_default();
                if users.contains(&username) {
                    return Err(HookError::UserNotAllowed(format!(
                        "{username} is banned from this server."
                    )));
                }
                Ok(())
            }
        })
        .build()
        .run_until(endpoint, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
