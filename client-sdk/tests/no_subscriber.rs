//! An app in a process that set up no tracing subscriber still says why it cannot connect: the
//! SDK's warnings would go nowhere, so after its first attempts it writes one line to stderr.
//!
//! The test runs itself again as a child process (tracing's global subscriber is per process),
//! and reads the child's stderr.

use std::{process::Command, time::Duration};

use roomhooks_sdk::App;

const CHILD: &str = "ROOMHOOKS_SDK_TEST_CHILD";

/// In the child: an app against a port nobody listens on, for long enough to fail a few times.
fn child() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let _app = App::builder("lonely")
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(20))
            .pre_room_user_joined(|_, _| async { Ok(()) })
            .build()
            .spawn(format!("http://127.0.0.1:{port}"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    });
}

#[test]
fn an_app_that_cannot_connect_says_why_once_on_stderr_without_a_tracing_subscriber() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "an_app_that_cannot_connect_says_why_once_on_stderr_without_a_tracing_subscriber",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the child runs");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("roomhooks-sdk:"))
        .collect();
    assert_eq!(lines.len(), 1, "said once: {stderr}");
    assert!(
        lines[0].contains(r#"app "lonely": cannot reach the sidecar at http://127.0.0.1:"#),
        "{stderr}"
    );
    assert!(
        lines[0].contains("Connection refused"),
        "names the cause: {stderr}"
    );
}
