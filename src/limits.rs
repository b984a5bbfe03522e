//! Process limits the engine checks and raises at start (`RLIMIT_NOFILE`).

/// The open-file limit of this process (`RLIMIT_NOFILE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// Soft limit (what applies), descriptors.
    pub soft: u64,
    /// Hard limit (how far the soft one may be raised), descriptors.
    pub hard: u64,
}

/// Reads `RLIMIT_NOFILE`; `None` when the call fails.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn fd_limit() -> Option<FdLimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (rc == 0).then_some(FdLimit {
        soft: r.rlim_cur as u64,
        hard: r.rlim_max as u64,
    })
}

/// Raises the soft `RLIMIT_NOFILE` to `soft` (which must not pass the hard limit).
///
/// # Errors
/// The `setrlimit` error.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn raise_fd_limit(soft: u64, hard: u64) -> std::io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `r` is a valid rlimit read by the call only.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
