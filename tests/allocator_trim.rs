//! `pinfeed::limits::trim_allocator` gives freed arena memory back to the kernel: 64 MiB of
//! small blocks (below the mmap threshold, so they come from a malloc arena) are freed but
//! for the last one, which pins the arena's top so glibc cannot shrink it on its own; the
//! resident set stays up until the trim, then falls by most of the 64 MiB. One test in its
//! own binary, so no other test allocates or frees while RSS is read.

use pinfeed::metrics::process_memory_bytes;

const BLOCK_BYTES: usize = 4096;
const TOTAL_BYTES: usize = 64 << 20;

fn rss_mib() -> f64 {
    process_memory_bytes().expect("/proc/self/status").0 as f64 / (1 << 20) as f64
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_returns_freed_arena_pages() {
    pinfeed::limits::fix_mmap_threshold();
    // a thread of its own: its allocations come from an arena no other thread uses
    std::thread::spawn(|| {
        let base = rss_mib();
        let mut blocks: Vec<Vec<u8>> = (0..TOTAL_BYTES / BLOCK_BYTES)
            .map(|i| vec![i as u8 | 1; BLOCK_BYTES])
            .collect();
        let full = rss_mib();
        assert!(
            full - base > 56.0,
            "allocating moved RSS {base:.1} -> {full:.1} MiB"
        );
        let last = blocks.pop();
        drop(blocks);
        let freed = rss_mib();
        assert!(
            freed - base > 48.0,
            "glibc gave the pages back without a trim ({base:.1} -> {freed:.1} MiB): the test \
             no longer shows what the trim does"
        );
        pinfeed::limits::trim_allocator();
        let trimmed = rss_mib();
        assert!(
            freed - trimmed > 48.0,
            "the trim gave back {:.1} MiB of {:.1} freed",
            freed - trimmed,
            freed - base
        );
        drop(last);
    })
    .join()
    .unwrap();
}
