//! wasqd's allocator: glibc's malloc for the broker, mimalloc while a
//! plugin compiles.
//!
//! Compiling a JavaScript or Python component (12–18 MB of WebAssembly)
//! allocates and frees millions of small blocks on every CPU at once, and
//! mimalloc does that faster than glibc's malloc: Winch's compile of the
//! JavaScript runtime took 0.66–0.70 s with mimalloc as the process's
//! allocator against 0.86–0.94 s with glibc's, the time a new version of
//! such a plugin takes to go live. The broker is the other way round:
//! with mimalloc (or jemalloc) as the process's allocator, a queue growing
//! under NSQ's bench_writer or ApacheBench's /mpub took a third fewer
//! messages a second or worse (bench/README.md, "Compiling on mimalloc").
//!
//! So each allocation goes where its thread is: one that compiles
//! ([`compiling`], and rayon's pool, which wasmtime compiles functions
//! on: [`mark_compiling_thread`]) takes its blocks from a mimalloc heap of
//! its own, in an arena of address space reserved at start-up
//! ([`reserve_arena`]); every other thread from glibc. A block is freed or
//! grown by the allocator whose address range holds it, whichever thread
//! does it: two comparisons, so a block may outlive its compile (the
//! compiled component keeps some) and be freed anywhere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use libmimalloc_sys as mi;

/// Address space reserved for compiling: reserved only (no memory behind
/// it until touched, none counted against the system's commit limit);
/// mimalloc backs the parts it uses and gives freed parts back.
const ARENA_BYTES: usize = 16 << 30;

/// mimalloc's blocks need no more alignment than this without asking.
const MIMALLOC_MAX_ALIGN: usize = 16;

/// The arena's address range (`ARENA_LEN` 0: none) and mimalloc's id for it.
static ARENA_START: AtomicUsize = AtomicUsize::new(0);
static ARENA_LEN: AtomicUsize = AtomicUsize::new(0);
static ARENA_ID: AtomicI32 = AtomicI32::new(0);

thread_local! {
    /// Whether this thread's allocations are a compile's.
    static COMPILING: Cell<bool> = const { Cell::new(false) };
    /// This thread's heap in the arena (null until its first compile).
    static HEAP: Cell<*mut mi::mi_heap_t> = const { Cell::new(ptr::null_mut()) };
}

/// Reserves the arena compiles allocate from, once (later calls return
/// the first one's outcome). Call it first in `main`; without it (or if
/// it fails) compiles allocate from glibc too.
pub fn reserve_arena() -> Result<(), String> {
    static RESERVED: OnceLock<Result<(), String>> = OnceLock::new();
    RESERVED
        .get_or_init(|| reserve().map_err(|e| e.to_string()))
        .clone()
}

#[allow(unsafe_code)]
fn reserve() -> std::io::Result<()> {
    // SAFETY: a new private anonymous mapping; nothing else refers to it.
    let start = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ARENA_BYTES,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let mut id: mi::mi_arena_id_t = 0;
    // SAFETY: the range is ours, unused, and handed over for good: mimalloc
    // commits what it uses (mprotect) and aligns the start itself.
    let managed = unsafe {
        mi::mi_manage_os_memory_ex(start, ARENA_BYTES, false, false, true, -1, true, &mut id)
    };
    if !managed {
        // SAFETY: the mapping made above, which nothing uses.
        unsafe { libc::munmap(start, ARENA_BYTES) };
        return Err(std::io::Error::other("mimalloc refused the compile arena"));
    }
    ARENA_ID.store(id, Ordering::Relaxed);
    ARENA_START.store(start as usize, Ordering::Relaxed);
    ARENA_LEN.store(ARENA_BYTES, Ordering::Release);
    Ok(())
}

/// Runs `compile` with this thread's allocations taken from the compile
/// arena; then gives the memory the compile freed back to the system.
pub fn compiling<R>(compile: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPILING.set(self.0);
        }
    }
    let outermost = !COMPILING.get();
    let compiled = {
        let _restore = Restore(COMPILING.replace(true));
        compile()
    };
    if outermost {
        give_back();
        // Queued behind whatever rayon's threads are compiling for
        // another plugin; the caller does not wait for it.
        rayon::spawn_broadcast(|_| give_back());
    }
    compiled
}

/// Gives this thread's free memory in the arena back to the system at
/// once: a compile's threads allocate nothing more until the next one,
/// and mimalloc purges a heap's free pages only as it allocates (a JS
/// plugin's load kept 66 MB more resident without this).
#[allow(unsafe_code)]
fn give_back() {
    let heap = HEAP.get();
    if !heap.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { mi::mi_heap_collect(heap, true) };
    }
}

/// Marks this thread as one that only compiles, for good: for threads
/// that last as long as the process (rayon's global pool). mimalloc
/// deletes a thread's heap as the thread ends, so a thread that ends must
/// not allocate as compiling by then ([`compiling`] unmarks on return).
pub fn mark_compiling_thread() {
    COMPILING.set(true);
}

/// Builds rayon's global pool, where wasmtime compiles a module's
/// functions, with its threads marked as compiling. Call it before the
/// first compile.
pub fn build_compile_pool() -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("plugin-compile-{index}"))
        .start_handler(|_| mark_compiling_thread())
        .build_global()
}

/// Whether `block` lies in the compile arena.
#[inline]
fn in_arena(block: *const u8) -> bool {
    let start = ARENA_START.load(Ordering::Relaxed);
    (block as usize).wrapping_sub(start) < ARENA_LEN.load(Ordering::Relaxed)
}

/// This thread's heap in the arena, made at its first use; null without
/// an arena.
#[allow(unsafe_code)]
fn heap() -> *mut mi::mi_heap_t {
    let heap = HEAP.get();
    if !heap.is_null() || ARENA_LEN.load(Ordering::Acquire) == 0 {
        return heap;
    }
    // SAFETY: the arena was handed to mimalloc by `reserve_arena`. The heap
    // is this thread's; mimalloc deletes it when the thread ends, moving
    // its blocks (still in the arena) to the thread's own heap.
    let heap = unsafe { mi::mi_heap_new_in_arena(ARENA_ID.load(Ordering::Relaxed)) };
    HEAP.set(heap);
    heap
}

/// A block from this thread's arena heap, or null (no arena, or the arena
/// is full: the caller takes one from glibc).
#[allow(unsafe_code)]
unsafe fn arena_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    let heap = heap();
    if heap.is_null() {
        return ptr::null_mut();
    }
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: `heap` is this thread's; a null result is handled below.
    let block = unsafe {
        match (align <= MIMALLOC_MAX_ALIGN, zeroed) {
            (true, false) => mi::mi_heap_malloc(heap, size),
            (true, true) => mi::mi_heap_zalloc(heap, size),
            (false, false) => mi::mi_heap_malloc_aligned(heap, size, align),
            (false, true) => mi::mi_heap_zalloc_aligned(heap, size, align),
        }
    }
    .cast::<u8>();
    arena_only(block)
}

/// `block` if it is null or in the arena; else (never expected of a heap
/// bound to the arena) it is given back and null returned, so that every
/// block outside the arena is glibc's.
#[allow(unsafe_code)]
fn arena_only(block: *mut u8) -> *mut u8 {
    if block.is_null() || in_arena(block) {
        return block;
    }
    // SAFETY: a block mimalloc just returned.
    unsafe { mi::mi_free(block.cast::<c_void>()) };
    ptr::null_mut()
}

/// A block for `layout` (`zeroed`: all zero bytes): from the arena while
/// compiling, else (or if the arena has none) from glibc.
#[allow(unsafe_code)]
#[inline]
unsafe fn allocate(layout: Layout, zeroed: bool) -> *mut u8 {
    if COMPILING.get() {
        // SAFETY: a valid layout, passed on.
        let block = unsafe { arena_alloc(layout, zeroed) };
        if !block.is_null() {
            return block;
        }
    }
    // SAFETY: a valid, non-zero layout (GlobalAlloc's contract).
    unsafe {
        if zeroed {
            System.alloc_zeroed(layout)
        } else {
            System.alloc(layout)
        }
    }
}

/// The process's allocator in wasqd (see the module doc).
pub struct WasqdAllocator;

// SAFETY: every block comes from glibc (`System`) or from mimalloc in the
// arena, and goes back to the one whose address range holds it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for WasqdAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on.
        unsafe { allocate(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: passed on.
        unsafe { allocate(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if in_arena(block) {
            // SAFETY: a live block of mimalloc's (any thread may free one).
            unsafe { mi::mi_free(block.cast::<c_void>()) }
        } else {
            // SAFETY: a live block of glibc's, with its layout.
            unsafe { System.dealloc(block, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(block) {
            // SAFETY: a live block of glibc's, with its layout.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        let heap = if COMPILING.get() {
            heap()
        } else {
            ptr::null_mut()
        };
        if !heap.is_null() {
            // SAFETY: a live block of mimalloc's, grown in this thread's
            // heap in the arena (a null result leaves it as it was).
            let grown = unsafe {
                mi::mi_heap_realloc_aligned(heap, block.cast::<c_void>(), new_size, layout.align())
            }
            .cast::<u8>();
            if !grown.is_null() {
                if !in_arena(grown) {
                    // `block` is gone and its successor would be freed
                    // by glibc: never go on from there.
                    arena_broken();
                }
                return grown;
            }
        }
        // Grown outside compiling (or the arena is full): into glibc's.
        // SAFETY: `block` is live with `layout.size()` bytes.
        unsafe { move_to_system(block, layout.size(), new_size, layout.align()) }
    }
}

/// A heap bound to the arena gave a block outside it (mimalloc promises
/// it never does): stop before that block reaches the wrong allocator.
#[allow(unsafe_code)]
fn arena_broken() -> ! {
    const MESSAGE: &[u8] = b"wasqd: mimalloc grew a block out of the compile arena\n";
    // SAFETY: writes a static buffer to stderr; allocates nothing.
    unsafe { libc::write(2, MESSAGE.as_ptr().cast::<c_void>(), MESSAGE.len()) };
    std::process::abort()
}

/// Copies mimalloc's `block` (`size` bytes) into a new block of glibc's of
/// `new_size`, and frees it; null (and `block` kept) if glibc has none.
#[allow(unsafe_code)]
unsafe fn move_to_system(block: *mut u8, size: usize, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: `align` is a valid alignment (from a layout), `new_size`
    // non-zero and not overflowing when rounded (GlobalAlloc::realloc's
    // contract).
    let layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
    // SAFETY: a valid layout.
    let moved = unsafe { System.alloc(layout) };
    if !moved.is_null() {
        // SAFETY: both blocks are live, distinct, and this long.
        unsafe { ptr::copy_nonoverlapping(block, moved, size.min(new_size)) };
        // SAFETY: a live block of mimalloc's.
        unsafe { mi::mi_free(block.cast::<c_void>()) };
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(block: *mut u8, len: usize) -> Vec<u8> {
        // SAFETY: a live block of at least `len` bytes.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(block, len).to_vec()
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_compile_allocates_in_the_arena_and_its_blocks_can_be_grown_and_freed_anywhere() {
        reserve_arena().expect("an arena");
        let layout = Layout::from_size_align(1000, 8).unwrap();
        let aligned = Layout::from_size_align(256, 128).unwrap();
        // SAFETY: valid layouts; each block is written within its size
        // and freed once, with the layout it has then.
        unsafe {
            let broker = WasqdAllocator.alloc(layout);
            assert!(
                !broker.is_null() && !in_arena(broker),
                "glibc's outside a compile"
            );
            let (compiled, wide) =
                compiling(|| (WasqdAllocator.alloc(layout), WasqdAllocator.alloc(aligned)));
            assert!(
                in_arena(compiled) && in_arena(wide),
                "mimalloc's while compiling"
            );
            assert_eq!(wide as usize % 128, 0, "aligned as asked");
            std::ptr::write_bytes(compiled, 7, 1000);

            let grown = compiling(|| WasqdAllocator.realloc(compiled, layout, 100_000));
            assert!(in_arena(grown), "grown while compiling: stays in the arena");
            assert_eq!(filled(grown, 1000), vec![7; 1000]);

            // Grown on a broker thread: moved out to glibc, bytes kept.
            let grown_layout = Layout::from_size_align(100_000, 8).unwrap();
            let grown = grown as usize;
            let moved = std::thread::spawn(move || {
                WasqdAllocator.realloc(grown as *mut u8, grown_layout, 200_000) as usize
            })
            .join()
            .unwrap() as *mut u8;
            assert!(!in_arena(moved));
            assert_eq!(filled(moved, 1000), vec![7; 1000]);

            // A compile's block freed by another thread.
            let wide = wide as usize;
            std::thread::spawn(move || WasqdAllocator.dealloc(wide as *mut u8, aligned))
                .join()
                .unwrap();
            WasqdAllocator.dealloc(moved, Layout::from_size_align(200_000, 8).unwrap());
            WasqdAllocator.dealloc(broker, layout);
            let zeroed = compiling(|| WasqdAllocator.alloc_zeroed(layout));
            assert!(in_arena(zeroed));
            assert_eq!(filled(zeroed, 1000), vec![0; 1000]);
            WasqdAllocator.dealloc(zeroed, layout);
        }
    }
}
