//! How much of the machine the stress program itself used while buying:
//! a load generator on the same cores as the platform must not be what
//! limits it (issue 12: report its own CPU share). Linux `/proc` only;
//! elsewhere the report leaves the line out.

use std::time::Duration;

/// `/proc` counts CPU time in USER_HZ ticks, 100 per second on Linux
/// whatever the kernel's own tick rate (a fixed part of the interface).
const TICKS_PER_SECOND: f64 = 100.0;

/// Counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// This process: user + system seconds.
    own: f64,
    /// The whole machine: ticks not idle (nor waiting on I/O), and all.
    busy: u64,
    total: u64,
}

/// What the stress program used over an interval, next to the machine.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// Cores' worth used by the stress program (CPU seconds per second).
    pub own_cores: f64,
    /// Cores' worth busy on the whole machine (everything: API, worker,
    /// Redis, MongoDB and the stress program).
    pub busy_cores: f64,
    /// Cores the machine has (from the counters' sum).
    pub cores: f64,
}

impl CpuUse {
    /// The stress program's part of all the work done.
    pub fn share(&self) -> f64 {
        if self.busy_cores > 0.0 {
            self.own_cores / self.busy_cores
        } else {
            0.0
        }
    }
}

pub fn sample() -> Option<CpuSample> {
    let own = own_cpu_seconds()?;
    let (busy, total) = machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    Some(CpuSample { own, busy, total })
}

/// From `before` to `after`, `wall` apart.
pub fn between(before: CpuSample, after: CpuSample, wall: Duration) -> Option<CpuUse> {
    let secs = wall.as_secs_f64();
    let total = after.total.checked_sub(before.total)? as f64;
    if secs <= 0.0 || total <= 0.0 {
        return None;
    }
    let own = after.own - before.own;
    let busy = after.busy.checked_sub(before.busy)? as f64 / TICKS_PER_SECOND;
    Some(CpuUse {
        own_cores: own / secs,
        busy_cores: busy / secs,
        cores: total / TICKS_PER_SECOND / secs,
    })
}

/// This process's CPU seconds (user + system, every thread) from the text
/// of `/proc/self/stat`.
pub fn proc_stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name may hold spaces: fields count from after its `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

pub fn own_cpu_seconds() -> Option<f64> {
    proc_stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// (busy, total) ticks from the `cpu` line of `/proc/stat`: user nice
/// system idle iowait irq softirq steal ...; idle and iowait are not busy.
fn machine_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_formats() {
        let stat =
            "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 731 269 0 0 20 0 9 0 100 0";
        assert_eq!(proc_stat_cpu_seconds(stat), Some(10.0));
        assert_eq!(proc_stat_cpu_seconds("garbage"), None);
        let machine = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(machine_ticks(machine), Some((160, 1000)));
        let before = CpuSample {
            own: 0.0,
            busy: 0,
            total: 0,
        };
        let after = CpuSample {
            own: 0.5,
            busy: 150,
            total: 200,
        };
        let used = between(before, after, Duration::from_secs(1))
            .map(|u| (u.own_cores, u.busy_cores, u.cores));
        assert_eq!(used, Some((0.5, 1.5, 2.0)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let before = sample().expect("/proc readable");
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            spin = spin.wrapping_add(1);
        }
        std::hint::black_box(spin);
        let after = sample().expect("second sample");
        let used = between(before, after, started.elapsed()).expect("an interval");
        // Spinning counts, however loaded the machine is.
        assert!(used.own_cores > 0.05, "{used:?}");
        assert!(used.busy_cores >= used.own_cores * 0.9, "{used:?}");
    }
}
