//! The program's allocator: mimalloc for everything small, the C library's malloc
//! for large blocks.
//!
//! mimalloc is the right allocator for the many small nodes the library's store
//! (sled) allocates and frees: glibc's malloc spent about a third of a metadata sync
//! in its own bookkeeping. It is the wrong one for large blocks here, measured on a
//! whole-library fetch:
//! - QUIC's receive buffer (4 MB: room for two of the largest datagrams per
//!   receive, times the batch; it was 13 MB) is allocated zeroed. mimalloc zeroed it
//!   by hand, touching every page at start-up (3,300 page faults before the first
//!   packet at 13 MB); the C library's `calloc` maps fresh pages, which are zero
//!   already and are touched only as datagrams land in them.
//! - sled's log buffers (512 KiB each) come and go with its segments; glibc's
//!   malloc keeps freed large blocks and hands them out again (its `mmap` threshold
//!   rises to the sizes freed).
//!
//! A block is served by one allocator or the other by its size alone, so a free
//! (which is given the block's layout) always goes back to the one that made it.
//!
//! Must never: allocate in a way that the audio callback could reach (it allocates
//! nothing, which the mixer's tests check), or hand a block to the allocator that
//! did not make it.

use std::alloc::{GlobalAlloc, Layout};

/// Blocks of this many bytes or more come from the C library.
const LARGE: usize = 256 * 1024;

/// The alignment the C library's `malloc` guarantees on 64-bit Linux.
const C_ALIGN: usize = 16;

/// mimalloc below [`LARGE`] bytes, the C library's malloc at and above.
pub struct Allocator;

fn large(size: usize) -> bool {
    size >= LARGE
}

/// A block of `layout` from the C library (zeroed when `zero`).
///
/// # Safety
/// As [`GlobalAlloc::alloc`].
unsafe fn c_alloc(layout: Layout, zero: bool) -> *mut u8 {
    // SAFETY: plain C allocation calls with a non-zero size; the alignment is a
    // power of two (a `Layout`'s) and, when over 16, a multiple of the pointer size.
    unsafe {
        if layout.align() <= C_ALIGN {
            return if zero {
                libc::calloc(1, layout.size()).cast()
            } else {
                libc::malloc(layout.size()).cast()
            };
        }
        let mut p = std::ptr::null_mut();
        let align = layout.align().max(std::mem::size_of::<usize>());
        if libc::posix_memalign(&mut p, align, layout.size()) != 0 {
            return std::ptr::null_mut();
        }
        if zero {
            std::ptr::write_bytes(p.cast::<u8>(), 0, layout.size());
        }
        p.cast()
    }
}

// SAFETY: each block is made and freed by the same allocator, chosen by its size
// (which `dealloc` and `realloc` are given unchanged); both allocators are
// thread-safe and honour the layout's alignment.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) {
            // SAFETY: as the caller's.
            unsafe { c_alloc(layout, false) }
        } else {
            // SAFETY: as the caller's.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) {
            // SAFETY: as the caller's.
            unsafe { c_alloc(layout, true) }
        } else {
            // SAFETY: as the caller's.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout.size()) {
            // SAFETY: a large block came from the C library.
            unsafe { libc::free(ptr.cast()) }
        } else {
            // SAFETY: a small block came from mimalloc.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (large(layout.size()), large(new_size)) {
            // SAFETY: a small block stays with mimalloc.
            (false, false) => unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) },
            // SAFETY: a large block stays with the C library; `realloc` keeps only the
            // C library's own alignment, so a stricter one moves by hand.
            (true, true) if layout.align() <= C_ALIGN => unsafe {
                libc::realloc(ptr.cast(), new_size).cast()
            },
            _ => {
                // Across the line (or a large block with a strict alignment): a new
                // block from the other allocator, the bytes moved, the old freed.
                let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: `new_layout` is valid and non-zero (the caller's new size);
                // the copy covers the bytes both blocks have; the old block is freed
                // by the allocator that made it.
                unsafe {
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(p: *mut u8, n: usize, v: u8) {
        // SAFETY: `p` holds at least `n` bytes (the tests' own allocations).
        unsafe { std::ptr::write_bytes(p, v, n) }
    }

    fn all(p: *const u8, n: usize, v: u8) -> bool {
        // SAFETY: as `fill`.
        unsafe { std::slice::from_raw_parts(p, n) }
            .iter()
            .all(|&b| b == v)
    }

    #[test]
    fn blocks_keep_their_bytes_across_the_line_both_ways() {
        let a = Allocator;
        for align in [1, 8, 16, 64, 4096] {
            for (from, to) in [
                (100, LARGE + 10),
                (LARGE + 10, 100),
                (LARGE - 1, LARGE),
                (LARGE, 3 * LARGE),
                (3 * LARGE, LARGE + 1),
                (64, 128),
            ] {
                let l = Layout::from_size_align(from, align).expect("layout");
                // SAFETY: a valid non-zero layout; every block is freed with the
                // layout it has.
                unsafe {
                    let p = a.alloc(l);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0);
                    fill(p, from, 0xa5);
                    let q = a.realloc(p, l, to);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "{from} -> {to} at {align}");
                    assert!(all(q, from.min(to), 0xa5), "{from} -> {to} at {align}");
                    a.dealloc(q, Layout::from_size_align(to, align).expect("layout"));
                }
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides_of_the_line() {
        let a = Allocator;
        for size in [16, LARGE - 1, LARGE, 13 << 20] {
            for align in [1, 16, 256] {
                let l = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: as above.
                unsafe {
                    // Dirty a block of the same size first, so a reused one shows.
                    let d = a.alloc(l);
                    fill(d, size, 0xff);
                    a.dealloc(d, l);
                    let p = a.alloc_zeroed(l);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0);
                    assert!(all(p, size, 0), "{size} at {align}");
                    a.dealloc(p, l);
                }
            }
        }
    }
}
