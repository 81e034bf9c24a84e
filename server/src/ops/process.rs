//! The standard `process_*` series every Prometheus client exports (CPU seconds, resident and
//! virtual memory, open and maximum file descriptors, start time), read from `/proc/self` on
//! Linux. Elsewhere they are left out.

use std::fmt::Write;

/// What `/proc/self` says of this process.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    virtual_bytes: u64,
    resident_bytes: u64,
    start_time_seconds: f64,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

/// Appends the `process_*` series to `out`, when this platform has them.
pub fn render(out: &mut String) {
    let Some(sample) = read() else {
        return;
    };
    let mut series = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    series(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        sample.cpu_seconds.to_string(),
    );
    series(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        sample.resident_bytes.to_string(),
    );
    series(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        sample.virtual_bytes.to_string(),
    );
    series(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        sample.start_time_seconds.to_string(),
    );
    if let Some(open) = sample.open_fds {
        series(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open.to_string(),
        );
    }
    if let Some(max) = sample.max_fds {
        series(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max.to_string(),
        );
    }
}

#[cfg(target_os = "linux")]
fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let mut sample = parse(
        &stat,
        &boot,
        u64::try_from(ticks).ok()?,
        u64::try_from(page).ok()?,
    )?;
    sample.open_fds = open_fds;
    sample.max_fds = limits.as_deref().and_then(max_open_files);
    Some(sample)
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<Sample> {
    None
}

/// Parses `/proc/self/stat` (fields after the command name) and `/proc/stat`'s `btime`.
fn parse(stat: &str, boot: &str, ticks_per_second: u64, page_bytes: u64) -> Option<Sample> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // Field numbers of proc(5), less the pid and command name: utime is field 14, so index 11.
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    let ticks = ticks_per_second.max(1) as f64;
    let boot_seconds: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())?;
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_bytes,
        start_time_seconds: boot_seconds as f64 + field(22)? as f64 / ticks,
        open_fds: None,
        max_fds: None,
    })
}

/// The soft limit on open files from `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_read_even_with_spaces_in_the_command_name() {
        let stat = "4242 (room hooks) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 \
                    3 0 12345 104857600 2560 18446744073709551615";
        let sample = parse(stat, "cpu  1 2 3\nbtime 1700000000\n", 100, 4096).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.virtual_bytes, 104_857_600);
        assert_eq!(sample.resident_bytes, 2560 * 4096);
        assert_eq!(sample.start_time_seconds, 1_700_000_123.45);
    }

    #[test]
    fn the_soft_open_file_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_memory_and_file_descriptors() {
        let sample = read().expect("/proc/self is readable");
        assert!(sample.resident_bytes > 0);
        assert!(sample.open_fds.is_some_and(|n| n > 0));
        assert!(sample.start_time_seconds > 1.6e9);
    }
}
