//! The allocator policy, in its own process (it is process-wide): after a large
//! block has raised glibc's dynamic threshold, a freed 8 MiB pixel buffer is
//! still returned to the system.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::hint::black_box;

use atelier_imaging::memory::{MMAP_THRESHOLD_BYTES, return_large_buffers_to_the_system};

/// Resident bytes of this process (`/proc/self/statm`, in pages of 4 KiB).
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .expect("resident field")
        .parse()
        .expect("a number");
    pages * 4096
}

/// A buffer of `bytes`, every page written (so it is resident), then dropped;
/// returns how much of it stayed resident after the drop.
fn kept_after_drop(bytes: usize) -> isize {
    let before = resident();
    let mut buffer = vec![0u8; bytes];
    for page in buffer.chunks_mut(4096) {
        page[0] = 1;
    }
    black_box(&buffer);
    drop(buffer);
    resident() as isize - before as isize
}

#[test]
fn a_freed_pixel_buffer_goes_back_to_the_system() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold")) {
        eprintln!("skipped: GLIBC_TUNABLES sets the threshold here");
        return;
    }
    assert!(return_large_buffers_to_the_system(), "glibc took the setting");
    // A 24 MiB block freed: without the fixed threshold glibc would raise its
    // threshold to 24 MiB, then serve the buffer below from an arena and keep it.
    black_box(vec![1u8; 24 << 20]);
    let size = 2 * MMAP_THRESHOLD_BYTES;
    let kept = kept_after_drop(size);
    assert!(
        kept < (size / 4) as isize,
        "{kept} of {size} bytes stayed resident after the buffer was dropped"
    );
}
