//! Child processes: started with a pipe on stdin (closing it asks the child to exit), a line
//! protocol on stdout, SIGKILL when the bench drops them, and the kernel's SIGKILL when the bench
//! itself dies (PR_SET_PDEATHSIG), so no child outlives a run.

use std::{ffi::OsStr, path::Path, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{ChildStderr, ChildStdin, ChildStdout, Command},
};

use crate::{error::Error, placement::Cpus};

/// A running child process of the bench.
pub struct Child {
    name: String,
    process: tokio::process::Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
}

/// Where a child's stderr goes.
pub enum Stderr {
    /// To the bench's stderr.
    Inherit,
    /// To a pipe the caller reads with [`Child::take_stderr`].
    Piped,
}

impl Child {
    /// Starts `program` with `args`, confined to `cpus` when given; `name` appears in error
    /// messages.
    pub fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        stderr: Stderr,
        cpus: Option<Cpus>,
    ) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match stderr {
                Stderr::Inherit => Stdio::inherit(),
                Stderr::Piped => Stdio::piped(),
            })
            .kill_on_drop(true);
        die_with_parent(&mut command);
        if let Some(cpus) = cpus {
            confine(&mut command, cpus);
        }
        let mut process = command
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {name} ({})", program.display()), e))?;
        let stdin = process.stdin.take();
        let stdout = process.stdout.take().map(|out| BufReader::new(out).lines());
        Ok(Self {
            name: name.to_owned(),
            process,
            stdin,
            stdout,
        })
    }

    /// The child's process id (none once it was reaped).
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Its stderr pipe, when started with [`Stderr::Piped`].
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.process.stderr.take()
    }

    /// Reads stdout lines until one starts with `prefix`, and returns the rest of that line.
    pub async fn expect_line(&mut self, prefix: &str, within: Duration) -> Result<String, Error> {
        let name = &self.name;
        let Some(stdout) = self.stdout.as_mut() else {
            return Err(Error::Child(format!("{name}: stdout is not readable")));
        };
        let wait = async {
            loop {
                match stdout.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(rest) = line.strip_prefix(prefix) {
                            return Ok(rest.trim().to_owned());
                        }
                    }
                    Ok(None) => {
                        return Err(Error::Child(format!(
                            "{name} exited before printing {prefix:?} (see its messages above)"
                        )));
                    }
                    Err(e) => return Err(Error::io(format!("reading {name}'s output"), e)),
                }
            }
        };
        tokio::time::timeout(within, wait).await.map_err(|_| {
            Error::Child(format!("{name} did not print {prefix:?} within {within:?}"))
        })?
    }

    /// Writes one line to the child's stdin.
    pub async fn send_line(&mut self, line: &str) -> Result<(), Error> {
        let name = &self.name;
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(Error::Child(format!("{name}: stdin is closed")));
        };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .await
            .map_err(|e| Error::io(format!("writing to {name}"), e))?;
        stdin
            .flush()
            .await
            .map_err(|e| Error::io(format!("writing to {name}"), e))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin.take();
        // kill_on_drop also does this; doing it here makes the order explicit.
        let _ = self.process.start_kill();
    }
}

/// Asks the kernel to SIGKILL the child if the bench dies without dropping it (killed, aborted).
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Starts the child on `cpus` only (`--pin`).
#[cfg(unix)]
fn confine(command: &mut Command, cpus: Cpus) {
    // SAFETY: `apply` makes one syscall on a set copied into the closure; it allocates nothing
    // and takes no locks, as code between fork and exec must.
    unsafe {
        command.pre_exec(move || cpus.apply(0));
    }
}

#[cfg(not(unix))]
fn confine(_command: &mut Command, _cpus: Cpus) {}

/// Completes when this process's stdin reaches end of file: the bench closed it or died.
pub async fn stdin_closed() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}
