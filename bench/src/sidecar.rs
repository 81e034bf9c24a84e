//! The real `roomhooks` binary as a child process, as it runs in production.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::ChildStderr,
    sync::oneshot,
    task::JoinHandle,
};

use crate::{
    child::{Child, Stderr},
    error::Error,
    plan::Plan,
};

/// How long the sidecar may take to report its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the sidecar binary: `explicit`, or `roomhooks` next to the bench's own executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::io("cannot find the bench's own executable", e))?;
            exe.with_file_name(format!("roomhooks{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::SidecarMissing(path))
    }
}

/// A running sidecar.
pub struct SidecarProcess {
    child: Child,
    /// Its post-event store, removed when the sidecar is dropped.
    data_dir: Option<PathBuf>,
    /// Its config file, if any, removed when the sidecar is dropped.
    config_file: Option<PathBuf>,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: JoinHandle<()>,
}

impl SidecarProcess {
    /// Starts `bin` on a free loopback port with JSON logs, the plan's hop runtime and CPUs, no
    /// metrics port, and its post events in a fresh temporary directory (or in memory with
    /// `--sidecar-ephemeral`); waits until it logged the address it bound.
    pub async fn start(bin: &Path, plan: &Plan) -> Result<Self, Error> {
        Self::start_with(bin, plan, None, &[]).await
    }

    /// [`SidecarProcess::start`], with `extra` flags (the cluster rows' `--cluster-url` …).
    pub async fn start_with_args(bin: &Path, plan: &Plan, extra: &[String]) -> Result<Self, Error> {
        Self::start_with(bin, plan, None, extra).await
    }

    /// [`SidecarProcess::start`], with `config` as its `--config` file (written next to its
    /// post-event store, or to a temporary file with `--sidecar-ephemeral`).
    pub async fn start_with_config(bin: &Path, plan: &Plan, config: &str) -> Result<Self, Error> {
        Self::start_with(bin, plan, Some(config), &[]).await
    }

    async fn start_with(
        bin: &Path,
        plan: &Plan,
        config: Option<&str>,
        extra: &[String],
    ) -> Result<Self, Error> {
        let files = Files::create(plan.sidecar_ephemeral, config)?;
        let mut args: Vec<std::ffi::OsString> = [
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--metrics-listen",
            "off",
            "--runtime",
            plan.hop_runtime.as_arg(),
        ]
        .iter()
        .map(Into::into)
        .collect();
        args.extend(files.args());
        args.extend(extra.iter().map(Into::into));
        let mut child = Child::spawn("the sidecar", bin, args, Stderr::Piped, plan.hop_cpus())?;
        let stderr = child
            .take_stderr()
            .ok_or_else(|| Error::Child("the sidecar's stderr is not piped".into()))?;
        let (found, address) = oneshot::channel();
        let logs = tokio::spawn(follow_log(stderr, found));
        let addr = tokio::time::timeout(START_TIMEOUT, address)
            .await
            .map_err(|_| {
                Error::Child(format!(
                    "the sidecar ({}) did not log its address within {START_TIMEOUT:?}",
                    bin.display()
                ))
            })?
            .map_err(|_| {
                Error::Child(format!(
                    "the sidecar ({}) exited before logging its address; does it accept \
                     --runtime? rebuild it with `cargo build --release --bin roomhooks`",
                    bin.display()
                ))
            })?;
        let addr = addr
            .parse()
            .map_err(|_| Error::Child(format!("the sidecar logged a bad address {addr:?}")))?;
        Ok(Self {
            child,
            data_dir: files.data_dir,
            config_file: files.config_file,
            addr,
            logs,
        })
    }

    /// The URL apps and backends use.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> Result<u32, Error> {
        self.child
            .pid()
            .ok_or_else(|| Error::Child("the sidecar has exited".into()))
    }
}

/// The files a sidecar is started with: its store's directory (none with `--ephemeral`) and
/// its config file, if any, in a fresh temporary directory.
struct Files {
    data_dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
}

impl Files {
    /// Names the directory and writes the config file into it.
    fn create(ephemeral: bool, config: Option<&str>) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!(
            "roomhooks-bench-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let config_file = match config {
            Some(text) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io("cannot create the sidecar's directory", e))?;
                let file = dir.join("roomhooks.toml");
                std::fs::write(&file, text)
                    .map_err(|e| Error::io("cannot write the sidecar's config file", e))?;
                Some(file)
            }
            None => None,
        };
        Ok(Self {
            data_dir: (!ephemeral).then_some(dir),
            config_file,
        })
    }

    /// The sidecar's flags for them: `--ephemeral` or `--data-dir`, then `--config`.
    fn args(&self) -> Vec<std::ffi::OsString> {
        let mut args = match &self.data_dir {
            None => vec!["--ephemeral".into()],
            Some(dir) => vec!["--data-dir".into(), dir.clone().into_os_string()],
        };
        if let Some(file) = &self.config_file {
            args.push("--config".into());
            args.push(file.clone().into_os_string());
        }
        args
    }
}

/// Keeps draining the sidecar's log (a full pipe would block it), sends the address it logs
/// binding to `found`, and passes on its warnings and errors.
async fn follow_log(stderr: ChildStderr, found: oneshot::Sender<String>) {
    let mut found = Some(found);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("\"local_addr\":\"").nth(1)
            && let Some(tx) = found.take()
        {
            let _ = tx.send(rest.split('"').next().unwrap_or_default().to_owned());
        } else if line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
            eprintln!("sidecar: {line}");
        }
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        self.logs.abort();
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(file) = self.config_file.take() {
            let _ = std::fs::remove_file(&file);
            if let Some(dir) = file.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}
