//! `bash examples/quickstart.sh`, the README's "Start here": it builds, starts the sidecar and the
//! four example apps with prefixed logs, gets to "ready" once they are registered, prints grpcurl
//! calls that work, and leaves no process behind — whether it ends by itself or by Ctrl-C.
//!
//! The script runs with the debug profile (what `cargo test` builds anyway) on a free port, with
//! metrics off.

#[allow(dead_code)] // this file uses only grpcurl_or_skip
#[path = "grpcurl/tool.rs"]
mod tool;

#[path = "quickstart/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{Quickstart, READY_LIMIT, assert_everything_started_and_stopped};

#[test]
fn the_quickstart_gets_to_ready_and_stops_every_child_when_it_ends() {
    let mut q = Quickstart::start(true);
    q.read_until(READY_LIMIT, |l| l.starts_with("[quickstart] ready"));
    let status = q.wait();
    assert!(status.success(), "{status}: {}", q.printed());
    assert_everything_started_and_stopped(&q);
}

/// The grpcurl commands the script printed, joined across `\` continuations, comments removed.
fn printed_grpcurl_commands(seen: &[String]) -> Vec<String> {
    let mut commands: Vec<String> = Vec::new();
    let mut continued = false;
    for line in seen {
        let trimmed = line.trim();
        let code = trimmed.split(" # ").next().unwrap_or(trimmed).trim();
        if code.starts_with("grpcurl ") || continued {
            let part = code.trim_end_matches('\\').trim();
            match continued {
                true => {
                    let last = commands.last_mut().expect("a command to continue");
                    last.push(' ');
                    last.push_str(part);
                }
                false => commands.push(part.to_owned()),
            }
            continued = code.ends_with('\\');
        }
    }
    commands
}

#[tokio::test]
async fn the_printed_grpcurl_calls_work_and_ctrl_c_stops_everything() {
    let mut q = Quickstart::start(false);
    q.read_until(READY_LIMIT, |l| {
        l == "[quickstart] Ctrl-C stops everything."
    });
    let commands = printed_grpcurl_commands(&q.seen);
    assert_eq!(commands.len(), 5, "{}", q.printed());

    if let Some(grpcurl) = tool::grpcurl_or_skip("the printed grpcurl calls work").await {
        let dir = grpcurl
            .parent()
            .expect("grpcurl is in a directory")
            .to_owned();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut answers = Vec::new();
        for command in &commands {
            assert!(
                command.contains(&format!("127.0.0.1:{}", q.port)),
                "{command}"
            );
            let out = tokio::process::Command::new("bash")
                .args(["-c", command])
                .env("PATH", &path)
                .output()
                .await
                .expect("bash runs grpcurl");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            answers.push(stdout);
        }
        assert!(answers[0].contains("\"allowed\": false"), "{}", answers[0]);
        assert!(
            answers[1].contains("\"slugifiedName\": \"launch-party\""),
            "{}",
            answers[1]
        );
        assert!(answers[2].contains("troll is banned"), "{}", answers[2]);
        assert!(
            answers[3].contains("OUTCOME_STATUS_DELIVERED"),
            "{}",
            answers[3]
        );
        assert!(
            answers[4].contains("\"appId\": \"word-filter\""),
            "{}",
            answers[4]
        );
        q.read_until(Duration::from_secs(10), |l| {
            l.starts_with("[audit_logger] audit evt-1 ")
        });
    }

    let status = q.interrupt();
    assert_eq!(
        status.code(),
        Some(130),
        "exits as interrupted: {}",
        q.printed()
    );
    assert_everything_started_and_stopped(&q);
}
