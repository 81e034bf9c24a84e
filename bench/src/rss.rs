//! Resident memory of child processes, from `/proc/PID/status` (VmRSS), sampled while they work.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::task::JoinHandle;

use crate::error::Error;

/// How often the sampler reads every watched process.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// The resident set size of process `pid`, in bytes.
pub fn vm_rss(pid: u32) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error::Child(format!("{path} has no readable VmRSS line")))
}

/// Samples the RSS of a set of processes in the background and keeps each one's peak.
pub struct PeakSampler {
    peaks: Arc<Mutex<HashMap<u32, u64>>>,
    task: JoinHandle<()>,
}

impl PeakSampler {
    /// Starts sampling `pids` every 20 ms.
    pub fn start(pids: Vec<u32>) -> Self {
        let peaks = Arc::new(Mutex::new(HashMap::new()));
        let shared = Arc::clone(&peaks);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                for &pid in &pids {
                    // A process that is gone simply stops being sampled.
                    if let Ok(rss) = vm_rss(pid) {
                        let mut peaks = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let peak = peaks.entry(pid).or_insert(0);
                        *peak = (*peak).max(rss);
                    }
                }
            }
        });
        Self { peaks, task }
    }

    /// The highest RSS seen for `pid` so far, in bytes.
    pub fn peak(&self, pid: u32) -> Option<u64> {
        // One fresh reading too, so a run shorter than a sampling period still counts.
        let now = vm_rss(pid).ok();
        let seen = self
            .peaks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .copied();
        seen.max(now)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
