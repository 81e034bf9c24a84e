//! `bash examples/quickstart.sh`, the README's "Start here": it builds, starts the sidecar and the
//! four example apps with prefixed logs, gets to "ready" once they are registered, prints grpcurl
//! calls that work, and leaves no process behind — whether it ends by itself or by Ctrl-C.
//!
//! The script runs with the debug profile (what `cargo test` builds anyway) on a free port, with
//! metrics off.

#[allow(dead_code)] // this file uses only grpcurl_or_skip
#[path = "grpcurl/tool.rs"]
mod tool;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The first build of the examples may take this long on a cold 2-core machine.
const READY_LIMIT: Duration = Duration::from_secs(600);

/// The running script, killed (with its children, by their pids) if a test fails early.
struct Quickstart {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything it printed so far.
    seen: Vec<String>,
    port: u16,
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        for pid in started_pids(&self.seen) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Quickstart {
    fn start(exit_after_ready: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new("bash");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/quickstart.sh"
            ))
            .env("QUICKSTART_PROFILE", "debug")
            .env("QUICKSTART_PORT", port.to_string())
            .env("ROOMHOOKS_METRICS_LISTEN", "off")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if exit_after_ready {
            command.env("QUICKSTART_EXIT_AFTER_READY", "1");
        }
        let mut child = command.spawn().expect("bash runs the script");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Quickstart {
            child,
            lines,
            seen: Vec::new(),
            port,
        }
    }

    /// Reads lines until one satisfies `done`; panics with everything printed after `limit`.
    fn read_until(&mut self, limit: Duration, done: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = done(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "the quickstart did not get there within {limit:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the script to exit and reads the rest of what it printed.
    fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("the script exits");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }

    fn printed(&self) -> String {
        self.seen.join("\n")
    }
}

/// The pids of "[quickstart] started NAME (pid N)" lines, by name.
fn started(seen: &[String]) -> Vec<(String, u32)> {
    seen.iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("[quickstart] started ")?;
            let (name, pid) = rest.split_once(" (pid ")?;
            Some((name.to_owned(), pid.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

fn started_pids(seen: &[String]) -> Vec<u32> {
    started(seen).into_iter().map(|(_, pid)| pid).collect()
}

/// Whether a process with this pid still exists (a zombie counts: nobody reaped it).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Asserts the sidecar and the four apps were started, each logged with its prefix, all were
/// stopped gracefully, and none is left.
fn assert_everything_started_and_stopped(q: &Quickstart) {
    let printed = q.printed();
    let names: Vec<String> = started(&q.seen).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "sidecar",
            "word_filter",
            "extender",
            "modifier",
            "audit_logger"
        ],
        "{printed}"
    );
    for name in &names {
        let prefix = format!("[{name}] ");
        assert!(
            q.seen.iter().any(|l| l.starts_with(&prefix)),
            "{name}'s logs are prefixed: {printed}"
        );
    }
    assert!(
        q.seen
            .iter()
            .any(|l| l.starts_with("[sidecar] ") && l.contains("stopped")),
        "the sidecar stopped gracefully: {printed}"
    );
    assert!(
        q.seen
            .iter()
            .any(|l| l == "[quickstart] stopped everything"),
        "{printed}"
    );
    for (name, pid) in started(&q.seen) {
        assert!(!alive(pid), "{name} (pid {pid}) is still running");
    }
}

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

    let signalled = Command::new("kill")
        .args(["-INT", &q.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let status = q.wait();
    assert_eq!(
        status.code(),
        Some(130),
        "exits as interrupted: {}",
        q.printed()
    );
    assert_everything_started_and_stopped(&q);
}
