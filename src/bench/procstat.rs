//! Process statistics from `/proc`: CPU time per thread and peak resident memory.
//!
//! Linux only; elsewhere the readers return empty figures. Parsers take text so they are
//! tested on real and malformed input.

use std::collections::BTreeMap;
use std::path::Path;

/// CPU time of one thread at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name (`comm`, at most 15 bytes).
    pub name: String,
    /// User plus system time, clock ticks (`utime + stime`).
    pub ticks: u64,
}

/// A thread's `stat` line did not have the expected shape.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed /proc stat line: {0}")]
pub struct StatError(pub &'static str);

/// Parses one `/proc/<pid>/task/<tid>/stat` line into its name and `utime + stime` ticks.
///
/// The name sits between the first `(` and the *last* `)` (it may itself hold spaces and
/// parentheses); `utime` and `stime` are fields 14 and 15 (proc(5)).
///
/// # Errors
/// [`StatError`] when the parentheses or the numeric fields are missing.
pub fn parse_task_stat(line: &str) -> Result<(String, u64), StatError> {
    let open = line.find('(').ok_or(StatError("no `(`"))?;
    let close = line.rfind(')').ok_or(StatError("no `)`"))?;
    if close < open {
        return Err(StatError("`)` before `(`"));
    }
    let name = line[open + 1..close].to_string();
    // fields after the name start at field 3 (state)
    let mut rest = line[close + 1..].split_ascii_whitespace();
    let mut field = |n: usize| rest.nth(n).ok_or(StatError("too few fields"));
    let utime = field(11)?; // field 14
    let stime = field(0)?; // field 15
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| StatError("utime/stime not a number"))
    };
    Ok((name, num(utime)? + num(stime)?))
}

/// Parses `VmHWM` (peak resident set size) from `/proc/<pid>/status`, in KiB.
///
/// # Errors
/// [`StatError`] when the line is missing or not `VmHWM: <n> kB`.
pub fn parse_vm_hwm_kib(status: &str) -> Result<u64, StatError> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or(StatError("no VmHWM line"))?;
    let mut parts = line["VmHWM:".len()..].split_ascii_whitespace();
    let n = parts
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or(StatError("VmHWM not a number"))?;
    match parts.next() {
        Some("kB") => Ok(n),
        _ => Err(StatError("VmHWM unit is not kB")),
    }
}

/// CPU time of every live thread of this process. Threads that end while being read are
/// skipped; an unreadable `/proc` gives an empty list.
pub fn thread_cpu() -> Vec<ThreadCpu> {
    read_tasks(Path::new("/proc/self/task"))
}

fn read_tasks(dir: &Path) -> Vec<ThreadCpu> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Ok((name, ticks)) = parse_task_stat(&text) {
            out.push(ThreadCpu { tid, name, ticks });
        }
    }
    out
}

/// Peak resident set size of this process, bytes (`VmHWM`); `None` when unreadable.
pub fn peak_rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm_kib(&text).ok().map(|k| k * 1024)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as u64 } else { 100 }
}

/// CPU used by one thread name over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuUse {
    /// Thread group ([`thread_group`]); its threads are summed (`threads` tells how many).
    pub name: String,
    /// Threads with this name seen at the end of the window.
    pub threads: usize,
    /// CPU seconds (user + system) over the window.
    pub cpu_s: f64,
    /// `cpu_s` as a percentage of one core over the window.
    pub core_pct: f64,
}

/// The group a thread is reported under: its name with a trailing `-<number>` made `-*`, so
/// that per-connection threads (`sim-conn-17`) add up in one row.
pub fn thread_group(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{head}-*")
        }
        _ => name.to_string(),
    }
}

/// CPU per thread group ([`thread_group`]) between two [`thread_cpu`] snapshots taken
/// `window_s` apart, sorted by CPU time, largest first. A thread born during the window
/// counts from zero; a thread that ended during it is not seen.
pub fn cpu_between(
    start: &[ThreadCpu],
    end: &[ThreadCpu],
    window_s: f64,
    ticks_per_s: u64,
) -> Vec<CpuUse> {
    let mut by_name: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in end {
        let before = start.iter().find(|s| s.tid == t.tid).map_or(0, |s| s.ticks);
        let e = by_name.entry(thread_group(&t.name)).or_default();
        e.0 += 1;
        e.1 += t.ticks.saturating_sub(before);
    }
    let tps = ticks_per_s.max(1) as f64;
    let mut out: Vec<CpuUse> = by_name
        .into_iter()
        .map(|(name, (threads, ticks))| {
            let cpu_s = ticks as f64 / tps;
            CpuUse {
                name,
                threads,
                cpu_s,
                core_pct: if window_s > 0.0 {
                    100.0 * cpu_s / window_s
                } else {
                    0.0
                },
            }
        })
        .collect();
    out.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s).then(a.name.cmp(&b.name)));
    out
}

pub use crate::limits::{FdLimit, fd_limit, raise_fd_limit};

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` (`"32768\t60999"`) into the number of
/// ephemeral ports.
///
/// # Errors
/// [`StatError`] when it is not two increasing port numbers.
pub fn parse_port_range(text: &str) -> Result<u64, StatError> {
    let mut it = text.split_ascii_whitespace().map(|n| n.parse::<u64>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi && hi <= 65535 => Ok(hi - lo + 1),
        _ => Err(StatError("not two increasing port numbers")),
    }
}

/// Ephemeral ports for outgoing connections; `None` when unknown.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let line = "4242 (fan (out) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 \
                    250 17 0 0 20 0 12 0 1234 0 0";
        let (name, ticks) = parse_task_stat(line).unwrap();
        assert_eq!(name, "fan (out) x");
        assert_eq!(ticks, 267);
    }

    #[test]
    fn malformed_stat_lines_are_errors() {
        for bad in [
            "",
            "12 noparens S 1",
            "12 )x( S",
            "12 (short) S 1 2 3",
            "12 (x) S 1 2 3 4 5 6 7 8 9 10 abc 5",
        ] {
            assert!(parse_task_stat(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_this_process() {
        let threads = thread_cpu();
        assert!(!threads.is_empty());
        let me = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        assert!(threads.iter().any(|t| t.name == me.trim_end()));
        assert!(peak_rss_bytes().unwrap() > 1 << 20);
        assert!(ticks_per_s() > 0);
    }

    #[test]
    fn port_range() {
        assert_eq!(parse_port_range("32768\t60999\n").unwrap(), 28232);
        assert_eq!(parse_port_range("1024 1024").unwrap(), 1);
        for bad in ["", "1", "5 4", "a b", "1 2 3", "1 70000"] {
            assert!(parse_port_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fd_limit_reads() {
        let l = fd_limit().unwrap();
        assert!(l.soft > 0 && l.soft <= l.hard);
    }

    #[test]
    fn thread_groups() {
        assert_eq!(thread_group("sim-conn-17"), "sim-conn-*");
        assert_eq!(thread_group("ingest-1-binanc"), "ingest-1-binanc");
        assert_eq!(thread_group("book"), "book");
        assert_eq!(thread_group("x-"), "x-");
    }

    #[test]
    fn vm_hwm() {
        let status = "Name:\tpinfeed\nVmPeak:\t  99 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm_kib(status).unwrap(), 12345);
        for bad in ["", "VmHWM:\n", "VmHWM:\t x kB\n", "VmHWM:\t 12 MB\n"] {
            assert!(parse_vm_hwm_kib(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_over_a_window() {
        let t = |tid, name: &str, ticks| ThreadCpu {
            tid,
            name: name.into(),
            ticks,
        };
        let start = [t(1, "book", 100), t(2, "sim-1", 10), t(3, "sim-22", 5)];
        let end = [
            t(1, "book", 300),
            t(2, "sim-1", 20),
            t(3, "sim-22", 15),
            t(4, "new", 50),
        ];
        let cpu = cpu_between(&start, &end, 2.0, 100);
        assert_eq!(cpu[0].name, "book");
        assert!((cpu[0].cpu_s - 2.0).abs() < 1e-9);
        assert!((cpu[0].core_pct - 100.0).abs() < 1e-9);
        let new = cpu.iter().find(|c| c.name == "new").unwrap();
        assert!((new.cpu_s - 0.5).abs() < 1e-9);
        let sim = cpu.iter().find(|c| c.name == "sim-*").unwrap();
        assert_eq!(sim.threads, 2);
        assert!((sim.cpu_s - 0.2).abs() < 1e-9);
    }
}
