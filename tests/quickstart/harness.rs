//! `bash examples/quickstart.sh` run as a child process: the real `roomhooks` binary and the four
//! example apps, built with the debug profile (what `cargo test` builds anyway), on a free port with
//! metrics off. Dropping it kills the script and every program it started, by pid.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The first build of the examples may take this long on a cold 2-core machine.
pub const READY_LIMIT: Duration = Duration::from_secs(600);

/// The running script, killed (with its children, by their pids) if a test fails early.
pub struct Quickstart {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything it printed so far.
    pub seen: Vec<String>,
    /// The sidecar's port.
    pub port: u16,
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
    /// Starts the script; with `exit_after_ready` it stops everything once the apps registered.
    pub fn start(exit_after_ready: bool) -> Self {
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
    pub fn read_until(&mut self, limit: Duration, done: impl Fn(&str) -> bool) {
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
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("the script exits");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }

    /// Interrupts the script as Ctrl-C would, and waits for it.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let signalled = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success());
        self.wait()
    }

    /// Everything printed so far, one line each.
    pub fn printed(&self) -> String {
        self.seen.join("\n")
    }
}

/// The pids of "[quickstart] started NAME (pid N)" lines, by name.
pub fn started(seen: &[String]) -> Vec<(String, u32)> {
    seen.iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("[quickstart] started ")?;
            let (name, pid) = rest.split_once(" (pid ")?;
            Some((name.to_owned(), pid.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

pub fn started_pids(seen: &[String]) -> Vec<u32> {
    started(seen).into_iter().map(|(_, pid)| pid).collect()
}

/// Whether a process with this pid still exists (a zombie counts: nobody reaped it).
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Asserts the sidecar and the four apps were started, each logged with its prefix, all were
/// stopped gracefully, and none is left.
pub fn assert_everything_started_and_stopped(q: &Quickstart) {
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
