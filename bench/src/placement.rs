//! CPU placement for `--pin`: each hop (the sidecar, the floor's relay) alone on the last CPU,
//! every other process of the run (the apps, the echo peer, the bench as load generator) on the
//! others, so the kernel cannot stack a hop and its peers on one core while another idles.
//! Linux only (sched_setaffinity).

use std::fmt;

use crate::error::Error;

/// CPUs a set can name (the kernel's CPU_SETSIZE).
const MAX_CPUS: usize = 1024;

/// A set of CPUs a process is confined to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cpus([u64; MAX_CPUS / 64]);

/// The two sets `--pin` uses.
#[derive(Clone, Copy, Debug)]
pub struct Pinning {
    /// For the hops: the last CPU this process may use.
    pub hop: Cpus,
    /// For everything else: the other CPUs.
    pub rest: Cpus,
}

impl Pinning {
    /// Splits the CPUs this process may run on; fails with fewer than two.
    pub fn split() -> Result<Self, Error> {
        let allowed = sys::allowed()
            .map_err(|e| Error::io("--pin: cannot read the CPUs this process may use", e))?;
        let cpus: Vec<usize> = allowed.iter().collect();
        let Some((&last, others)) = cpus.split_last().filter(|(_, others)| !others.is_empty())
        else {
            return Err(Error::Child(format!(
                "--pin needs at least 2 CPUs; this process may use {}",
                cpus.len()
            )));
        };
        Ok(Self {
            hop: Cpus::of(&[last]),
            rest: Cpus::of(others),
        })
    }
}

impl Cpus {
    fn of(cpus: &[usize]) -> Self {
        let mut set = Self([0; MAX_CPUS / 64]);
        for &cpu in cpus.iter().filter(|&&cpu| cpu < MAX_CPUS) {
            set.0[cpu / 64] |= 1 << (cpu % 64);
        }
        set
    }

    fn contains(&self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.0[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_CPUS).filter(|&cpu| self.contains(cpu))
    }

    /// Confines thread `tid` (0: the calling thread) to these CPUs. Allocates nothing and takes
    /// no locks, so it may run between fork and exec; threads started later inherit the set.
    pub fn apply(&self, tid: i32) -> std::io::Result<()> {
        sys::confine(tid, self)
    }

    /// Confines every thread of this process to these CPUs.
    pub fn apply_to_this_process(&self) -> Result<(), Error> {
        let tasks = std::fs::read_dir("/proc/self/task")
            .map_err(|e| Error::io("--pin: cannot list this process's threads", e))?;
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            self.apply(tid)
                .map_err(|e| Error::io(format!("--pin: cannot move thread {tid}"), e))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::mem;

    use super::{Cpus, MAX_CPUS};

    /// The CPUs the calling thread may run on.
    pub fn allowed() -> std::io::Result<Cpus> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
        let mut raw: libc::cpu_set_t = unsafe { mem::zeroed() };
        // SAFETY: the pointer and size describe `raw`.
        if unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cpus: Vec<usize> = (0..MAX_CPUS)
            // SAFETY: `cpu` is below CPU_SETSIZE.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &raw) })
            .collect();
        Ok(Cpus::of(&cpus))
    }

    /// Confines thread `tid` to `cpus`.
    pub fn confine(tid: i32, cpus: &Cpus) -> std::io::Result<()> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut raw: libc::cpu_set_t = unsafe { mem::zeroed() };
        for cpu in 0..MAX_CPUS {
            if cpus.contains(cpu) {
                // SAFETY: `cpu` is below CPU_SETSIZE.
                unsafe { libc::CPU_SET(cpu, &mut raw) };
            }
        }
        // SAFETY: the pointer and size describe `raw`.
        if unsafe { libc::sched_setaffinity(tid, mem::size_of::<libc::cpu_set_t>(), &raw) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::Cpus;

    fn unsupported() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::Unsupported, "CPU pinning needs Linux")
    }

    pub fn allowed() -> std::io::Result<Cpus> {
        Err(unsupported())
    }

    pub fn confine(_tid: i32, _cpus: &Cpus) -> std::io::Result<()> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_holds_exactly_the_cpus_it_was_made_of() {
        let set = Cpus::of(&[0, 3, 64, 1023, 5000]);

        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 3, 64, 1023]);
        assert!(!set.contains(1) && !set.contains(5000));
    }
}
