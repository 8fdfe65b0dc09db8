//! Freed memory stays with the process: every tensor of a step is a fresh allocation, and
//! glibc's defaults hand large ones back to the kernel when they are freed.
//!
//! glibc's `malloc` serves blocks above its mmap threshold (dynamic, at most 32 MiB) with a fresh
//! `mmap` and unmaps them on `free`, and gives the top of its heaps back once more than its trim
//! threshold is free. A Flex training step or encoding allocates and frees the same activation
//! and gradient sizes in every layer, so each of them came back as new pages: the kernel zeroes
//! every page at its first touch (`clear_page_erms` was 13% of a Flex training step's samples;
//! docs/benchmarks.md), and a product's output was faulted in while the product ran. With both
//! thresholds raised, freed blocks are reused from the heap and their pages stay mapped; the
//! price is that the process keeps its peak heap until it exits (a Flex step's peak RSS went
//! from 3.66 to 4.45 GiB in docs/benchmarks.md's AMD EPYC run). Values do not change.

use std::sync::OnceLock;

/// Threshold value for both settings: 2 GiB − 1, the largest `mallopt` takes (an `int`). Blocks
/// larger than this (none in the encoders here) are still mapped on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const KEEP_BELOW: libc::c_int = libc::c_int::MAX;

/// Whether glibc took the settings, decided by the first call.
static RETAINED: OnceLock<bool> = OnceLock::new();

/// Makes glibc's `malloc` keep freed memory for reuse instead of returning it to the kernel
/// (once per process; later calls do nothing). Called by [`crate::DeviceSpec::try_device`], so
/// every device the project builds gets it; a program that builds burn devices itself can call
/// it first. Returns whether the allocator took the settings (`false` off glibc, where nothing
/// is changed).
pub fn retain_freed_memory() -> bool {
    *RETAINED.get_or_init(set_thresholds)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // two calls into glibc's allocator settings
fn set_thresholds() -> bool {
    // SAFETY: `mallopt` only changes the allocator's parameters; glibc takes its arena lock, so
    // it is safe while other threads allocate.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP_BELOW) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_BELOW) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[allow(unsafe_code)] // reads glibc's allocator statistics
    fn mapped_blocks() -> usize {
        // SAFETY: `mallinfo2` only reads the allocator's counters.
        unsafe { libc::mallinfo2() }.hblks
    }

    #[test]
    fn large_blocks_come_from_the_heap_and_their_pages_stay_after_free() {
        assert!(super::retain_freed_memory(), "glibc refused the thresholds");
        let before = mapped_blocks();
        // 16 MiB: above glibc's default mmap threshold (128 KiB until a mapped block is freed), so
        // without the setting its own mapping; below the 64 MiB of a thread arena's heap (tests run
        // on their own threads; blocks above that are mapped on their own from any thread but main).
        let block = vec![1u8; 16 << 20];
        assert_eq!(mapped_blocks(), before, "a 16 MiB block was mapped on its own");
        let address = block.as_ptr() as usize;
        drop(block);
        let again = vec![2u8; 16 << 20];
        assert_eq!(again.as_ptr() as usize, address, "the freed block was not reused");
    }
}
