//! How the process's memory allocator is set up, once, at start-up.
//!
//! - [`compiling`]: wasqd's allocator, which sends a plugin compile's
//!   blocks to mimalloc and the rest to glibc's malloc
//!
//! glibc's malloc gives threads their own arenas, up to eight per core, and
//! a thread keeps the arena it first used. wasqd's threads come and go
//! (Tokio's blocking threads for disk work leave after ten idle seconds,
//! plugin workers are replaced on every reload), so over hours more and
//! more arenas each hold a few long-lived messages, and the free memory
//! around them cannot be given back: measured by `wasq-bench soak`, the
//! resident set crept up by about 0.1 MB a minute at 10 000 msg/s, while
//! the heap in use stayed flat (heaptrack: 5 MB peak). With two arenas the
//! same soak stayed within 1.3% and 3 MB lower, at the same throughput
//! (bench/README.md).

pub mod compiling;

/// Arenas glibc may create; the main one and one more.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Limits glibc's malloc arenas (see the module doc). Call it first in
/// `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; it is called before
    // any other thread exists, so nothing allocates concurrently.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// What malloc holds, for the `memory` object of `/stats` (nsqd reports
/// Go's heap there; these are the figures of glibc's malloc that mean the
/// same).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heap {
    /// Bytes handed out and not yet freed (small and mmapped chunks).
    pub in_use_bytes: u64,
    /// Bytes malloc holds free, not given back to the system.
    pub idle_bytes: u64,
}

/// malloc's figures now; `None` where the allocator is not glibc's. The
/// blocks of plugin compiles (mimalloc's, [`compiling`]) are not in them.
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct
        // of counters; glibc locks each arena while it reads it, so it may
        // run while other threads allocate.
        #[allow(unsafe_code)]
        let info = unsafe { libc::mallinfo2() };
        Some(Heap {
            in_use_bytes: (info.uordblks + info.hblkhd) as u64,
            idle_bytes: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
