//! Process limits and settings the engine checks and raises at start (`RLIMIT_NOFILE`, the
//! allocator's mmap threshold).

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

/// Allocations at least this large get a mapping of their own, returned to the kernel when
/// freed ([`fix_mmap_threshold`]), bytes.
pub const MMAP_THRESHOLD_BYTES: usize = 256 << 10;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`]; true when set (false off glibc).
///
/// glibc raises the threshold each time a mapped chunk is freed, up to 32 MiB (mallopt(3),
/// `M_MMAP_THRESHOLD`: "dynamic mmap threshold"). After the first client leaves, every new
/// client's send buffer (`send_buffer_hard_bytes`, 5 MiB, reserved at accept) then comes from
/// the malloc arenas, whose pages stay resident after `free`: the soak (`scripts/soak.sh`, one
/// engine, 1000 clients joining and leaving each minute) grew RSS by about 1 MiB a minute.
/// Setting the threshold explicitly turns the dynamic adjustment off, so each buffer is
/// mapped on its own and unmapped when its client leaves. Called once at start (cold).
pub fn fix_mmap_threshold() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; any value is accepted or refused
        // (returns 0), none is undefined behaviour.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hands the allocator's free pages back to the kernel: glibc's `malloc_trim(0)`, which since
/// glibc 2.8 releases every whole free page inside every arena (`madvise(MADV_DONTNEED)`), not
/// only the top of the main heap (malloc_trim(3)). True when memory was released; false when
/// there was none to release, or off glibc (where it does nothing).
///
/// Without it, what clients that left used stays resident: their per-connection state comes
/// from glibc's per-thread arenas, which return free chunks only from their top. Takes each
/// arena's lock in turn, and walks its free chunks, so call it from a cold thread
/// (`pinfeed run` does every `[memory] trim_interval_ms`); the hot threads do not allocate once
/// warmed up, so they do not wait on it.
pub fn trim_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only inspects and madvises the allocator's own free memory; it
        // takes the arena locks itself and is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
