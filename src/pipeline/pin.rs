//! Named threads pinned to cores.
//!
//! Core ids are checked against the cores this process may run on (its affinity mask, as
//! `core_affinity` reports it) before any thread starts: a core that does not exist is a
//! startup error naming the flag or config field. A thread is pinned before its body runs;
//! if pinning fails the thread does not run and [`spawn`] returns the error (a hot thread
//! silently left unpinned would be a latency bug found late). `--no-pin` (`cpu.pin = false`)
//! skips both. Shape after disruptor-rs' `affinity.rs`.

use std::thread::JoinHandle;

use crate::config::CpuConfig;

/// Why threads could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A configured core is not one this process may run on.
    #[error("{field}: core {core} does not exist on this machine (cores available: {available:?})")]
    NoSuchCore {
        /// The flag or config field, e.g. `--cpu-book` or `cpu.ingest`.
        field: String,
        /// The core asked for.
        core: usize,
        /// Cores that exist.
        available: Vec<usize>,
    },
    /// The operating system did not tell which cores exist.
    #[error("cannot list the cores of this machine; run with --no-pin")]
    NoCoreList,
    /// Setting the affinity of a thread failed.
    #[error("thread {thread}: pinning to core {core} failed; run with --no-pin")]
    PinFailed {
        /// Thread name.
        thread: String,
        /// The core.
        core: usize,
    },
    /// The thread could not be created.
    #[error("thread {thread}: {source}")]
    Spawn {
        /// Thread name.
        thread: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Ids of the cores this process may run on, ascending.
///
/// # Errors
/// [`PinError::NoCoreList`] when the platform does not say.
pub fn available_cores() -> Result<Vec<usize>, PinError> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .ok_or(PinError::NoCoreList)?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(PinError::NoCoreList);
    }
    Ok(ids)
}

/// Checks that `core` is in `available`.
///
/// # Errors
/// [`PinError::NoSuchCore`] naming `field`.
pub fn validate_core(field: &str, core: usize, available: &[usize]) -> Result<(), PinError> {
    if available.contains(&core) {
        Ok(())
    } else {
        Err(PinError::NoSuchCore {
            field: field.to_string(),
            core,
            available: available.to_vec(),
        })
    }
}

/// Checks every core of `cpu` against `available` (nothing to check when `cpu.pin` is off).
///
/// # Errors
/// The first [`PinError::NoSuchCore`], naming the config field.
pub fn validate_config(cpu: &CpuConfig, available: &[usize]) -> Result<(), PinError> {
    if !cpu.pin {
        return Ok(());
    }
    for &core in &cpu.ingest {
        validate_core("cpu.ingest (--cpu-ingest)", core, available)?;
    }
    validate_core("cpu.book (--cpu-book)", cpu.book, available)?;
    for &c in &cpu.fanout {
        validate_core("cpu.fanout (--cpu-fanout)", c, available)?;
    }
    Ok(())
}

/// A pinned thread's handle.
#[derive(Debug)]
pub struct PinnedThread<T> {
    inner: JoinHandle<Option<T>>,
}

impl<T> PinnedThread<T> {
    /// Waits for the thread and returns what its body returned.
    ///
    /// # Errors
    /// The panic payload if the body panicked.
    pub fn join(self) -> std::thread::Result<T> {
        // the body ran (spawn returned Ok only after pinning succeeded), so `None` cannot
        // come back; map it to an error rather than panic
        self.inner
            .join()?
            .ok_or_else(|| Box::new("thread body did not run") as Box<dyn std::any::Any + Send>)
    }

    /// True once the thread has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

/// Spawns a thread named `name`, pinned to `core` (unpinned for `None`), running `body`.
/// Returns once the thread is pinned.
///
/// # Errors
/// [`PinError::NoSuchCore`] for a core this process cannot run on, [`PinError::Spawn`] when
/// the thread cannot be created, [`PinError::PinFailed`] when the affinity cannot be set
/// (the body then never runs).
pub fn spawn<T, F>(name: &str, core: Option<usize>, body: F) -> Result<PinnedThread<T>, PinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(id) = core {
        // core_affinity must never see an id outside the CPU set (libc's CPU_SET aborts)
        validate_core(&format!("thread {name}"), id, &available_cores()?)?;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<bool>(1);
    let inner = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let pinned = match core {
                None => true,
                Some(id) => core_affinity::set_for_current(core_affinity::CoreId { id }),
            };
            let _ = tx.send(pinned);
            if !pinned {
                return None;
            }
            Some(body())
        })
        .map_err(|source| PinError::Spawn {
            thread: name.to_string(),
            source,
        })?;
    if rx.recv().unwrap_or(false) {
        Ok(PinnedThread { inner })
    } else {
        let _ = inner.join();
        Err(PinError::PinFailed {
            thread: name.to_string(),
            core: core.unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_cores() {
        let cores = available_cores().unwrap();
        assert!(!cores.is_empty());
        assert!(cores.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn missing_core_is_an_error_naming_the_field() {
        let cores = available_cores().unwrap();
        let e = validate_core("--cpu-book", 9999, &cores).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--cpu-book"), "{text}");
        assert!(text.contains("9999"), "{text}");
        assert!(validate_core("--cpu-book", cores[0], &cores).is_ok());

        let cpu = CpuConfig {
            ingest: vec![cores[0], 9999],
            ..CpuConfig::default()
        };
        let e = validate_config(&cpu, &cores).unwrap_err().to_string();
        assert!(e.contains("cpu.ingest"), "{e}");
        // not pinning: nothing to validate
        let cpu = CpuConfig {
            pin: false,
            book: 9999,
            ..CpuConfig::default()
        };
        assert!(validate_config(&cpu, &cores).is_ok());
    }

    #[test]
    fn spawns_pinned_and_named() {
        let core = available_cores().unwrap()[0];
        let h = spawn("pinned-test", Some(core), || {
            std::thread::current().name().map(str::to_string)
        })
        .unwrap();
        assert_eq!(h.join().unwrap().as_deref(), Some("pinned-test"));
        let h = spawn("free-test", None, || 7).unwrap();
        assert_eq!(h.join().unwrap(), 7);
    }

    #[test]
    fn pinning_to_a_missing_core_fails_loudly() {
        let e = spawn("nowhere", Some(9999), || ()).unwrap_err();
        assert!(matches!(e, PinError::NoSuchCore { core: 9999, .. }), "{e}");
        assert!(e.to_string().contains("thread nowhere"), "{e}");
    }
}
