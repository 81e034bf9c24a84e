//! The released `roomhooks` binary as a child process, for the tests that need the real binary
//! (signals, exit codes, restarts on one data directory): start it, read the address it bound
//! from its JSON log, signal it, wait for it, and keep its log for assertions. Apps that speak
//! the protocol by hand come from the workspace's shared helper, [`raw`].
#![allow(dead_code)]

/// The raw-protocol app and bytes codec the workspace's end-to-end tests share.
#[path = "../../../tests/common/raw.rs"]
pub mod raw;

/// The real NATS JetStream servers the cluster-mode tests run.
#[path = "../../../tests/common/nats.rs"]
pub mod nats;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tonic::transport::Channel;

/// A running `roomhooks` binary, killed if the test ends before it stops.
pub struct Binary {
    child: Child,
    /// The gRPC address it listens on.
    pub addr: String,
    /// Every log line it wrote so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts the binary with `args` (logging JSON; listening on a free port and with metrics
    /// off unless `args` set them) and waits until it logs the address it listens on.
    pub fn start(args: &[&str], data_dir: &Path) -> Self {
        Self::start_with_env(args, data_dir, &[])
    }

    /// As [`Binary::start`], with extra environment variables (`RUST_LOG` among them sets the
    /// log filter; without it the binary's default applies).
    pub fn start_with_env(args: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomhooks"));
        command.args(["--log-format", "json"]);
        // Defaults only for what neither a flag nor a variable sets.
        let set = |flag: &str, variable: &str| {
            args.contains(&flag) || env.iter().any(|(key, _)| *key == variable)
        };
        if !set("--metrics-listen", "ROOMHOOKS_METRICS_LISTEN") {
            command.args(["--metrics-listen", "off"]);
        }
        if !set("--listen", "ROOMHOOKS_LISTEN") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the roomhooks binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let addr = line
                        .split("\"local_addr\":\"")
                        .nth(1)
                        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned());
                    // Logged before the address is handed over, so a caller that got the
                    // address also sees the line that carried it.
                    log.lock().unwrap().push(line);
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the binary exited before listening; its log:\n{}",
                log.lock().unwrap().join("\n")
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "the binary did not log the address it listens on within 30 s; its log:\n{}",
                log.lock().unwrap().join("\n")
            ),
        };
        Self { child, addr, log }
    }

    /// `http://<addr>`, for apps and backends.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("a valid endpoint")
            .connect()
            .await
            .expect("connects to the binary")
    }

    /// Sends SIGTERM, as an orchestrator stopping the pod does.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(signalled.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }

    /// Sends SIGKILL and reaps the process: a crash, with no shutdown and no flush.
    pub fn kill(&mut self) {
        self.child.kill().expect("the binary can be killed");
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the process to exit.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the binary did not exit within {within:?}; its log:\n{}",
                self.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The log lines written before the line that reports the address (the start-up lines).
    pub fn startup_log(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .take_while(|line| !line.contains("\"local_addr\":\""))
            .collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first log line containing `text`, if any.
    pub fn log_line(&self, text: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|line| line.contains(text))
            .cloned()
    }

    /// Whether a log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}

/// Runs the binary with `args` until it exits by itself (e.g. a start-up error); returns how it
/// exited and what it wrote to stderr. Panics if it is still running after 30 s.
pub fn run_to_exit(args: &[&str], data_dir: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .args(["--log-format", "json"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the roomhooks binary starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the binary was expected to exit by itself within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}

/// A temporary data directory that outlives restarts of the binary.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// A PreRoomUserJoin of `username` into the stored channel "general".
pub fn join_request(username: &str) -> roomhooks::v1::PreRoomUserJoinRequest {
    use roomhooks::v1::{PreRoomUserJoinRequest, Room, RoomType, RoomUserJoined, User};
    PreRoomUserJoinRequest {
        context: Some(RoomUserJoined {
            room: Some(Room {
                id: "general".into(),
                r#type: RoomType::Channel as i32,
                ..Default::default()
            }),
            joining_user: Some(User {
                username: username.into(),
                ..Default::default()
            }),
            inviter: None,
        }),
        ..Default::default()
    }
}
