//! Where the CPU of a cluster post row goes: user + system time of each process group (NATS,
//! the sidecars, the apps, this load generator), from `/proc/PID/stat`, per event delivered.

use crate::error::Error;

/// The CPU time process `pid` has used so far, in µs (Linux `/proc/PID/stat`, fields 14-15).
pub fn used_us(pid: u32) -> Result<f64, Error> {
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // After the name: state is index 0, so utime (field 14) is 11 and stime (15) is 12.
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(Error::Child(format!("{path} has no readable CPU times")));
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((user + system) as f64 * 1_000_000.0 / per_sec)
}

/// The CPU time used so far by every process of a group, in µs.
pub fn group_us(pids: &[u32]) -> Result<f64, Error> {
    pids.iter().map(|&pid| used_us(pid)).sum()
}

/// CPU µs per event delivered to every app, by process group.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerEvent {
    /// The nats-server processes.
    pub nats: f64,
    /// The sidecars.
    pub sidecars: f64,
    /// The apps process.
    pub apps: f64,
    /// This process: the backend's PostEvents calls.
    pub load: f64,
}

impl PerEvent {
    /// The sum over the groups.
    pub fn total(&self) -> f64 {
        self.nats + self.sidecars + self.apps + self.load
    }
}

/// The processes of a cluster row, by group.
#[derive(Clone, Debug)]
pub struct Groups {
    /// The nats-server processes.
    pub nats: Vec<u32>,
    /// The sidecars.
    pub sidecars: Vec<u32>,
    /// The apps process.
    pub apps: Vec<u32>,
}

/// A reading of every group's CPU time.
#[derive(Clone, Copy, Debug)]
pub struct Reading(PerEvent);

impl Groups {
    /// Reads every group's CPU time now.
    pub fn read(&self) -> Result<Reading, Error> {
        Ok(Reading(PerEvent {
            nats: group_us(&self.nats)?,
            sidecars: group_us(&self.sidecars)?,
            apps: group_us(&self.apps)?,
            load: used_us(std::process::id())?,
        }))
    }
}

impl Reading {
    /// The CPU used between `self` and `later`, per one of `events`.
    pub fn per_event(&self, later: &Reading, events: u64) -> PerEvent {
        let n = events.max(1) as f64;
        let (a, b) = (self.0, later.0);
        PerEvent {
            nats: (b.nats - a.nats) / n,
            sidecars: (b.sidecars - a.sidecars) / n,
            apps: (b.apps - a.apps) / n,
            load: (b.load - a.load) / n,
        }
    }
}
