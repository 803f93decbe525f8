//! How the process's memory allocator is set up, once, at start-up.
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
