//! How a process that does image work asks the allocator to give large buffers
//! back to the system.
//!
//! glibc serves blocks above its mmap threshold with their own mapping, which
//! `free` unmaps at once; blocks below it come from the heap arenas, where freed
//! memory stays resident and fragments. The threshold starts at 128 KiB but
//! *rises* to the size of every mapped block that is freed, up to 32 MiB, so after
//! the first decoded photo is dropped, every decode, resize pass, variation and
//! encoded JPEG of 1–32 MiB lands in the arenas and stays there. With several
//! threads each using its own arena, a 24-megapixel job kept ~150 MB more resident
//! than it used (docs/benchmarks.md, "Returning image buffers to the system").
//! A fixed threshold turns the adjustment off: pixel buffers go back to the system
//! when dropped; small allocations keep the fast arena path.

/// Blocks of at least this size get their own mapping and are returned to the
/// system when freed. Above the small allocations of request handling and
/// metadata; below a 960×1280 RGB variation (3.7 MB) it would unmap every
/// variation too, which measured more page-fault time for ~20 MB less memory.
pub const MMAP_THRESHOLD_BYTES: usize = 4 << 20;

/// The glibc tunable that, when a user sets it, is theirs to decide.
const TUNABLE: &str = "glibc.malloc.mmap_threshold";

/// Sets the allocator's mmap threshold to [`MMAP_THRESHOLD_BYTES`], unless the
/// environment already chose one through `GLIBC_TUNABLES`. Call once at the top
/// of a binary's `main`, before threads start. Returns whether it applied; a no-op
/// (`false`) where the C library is not glibc.
pub fn return_large_buffers_to_the_system() -> bool {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains(TUNABLE)) {
        return false;
    }
    set_mmap_threshold(MMAP_THRESHOLD_BYTES)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_mmap_threshold(bytes: usize) -> bool {
    let Ok(value) = libc::c_int::try_from(bytes) else {
        return false;
    };
    // SAFETY: mallopt only changes allocator parameters; M_MMAP_THRESHOLD with a
    // value below glibc's maximum (32 MiB on 64-bit) is documented as valid at any
    // time, and no memory is touched.
    #[allow(unsafe_code)]
    let applied = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) };
    applied == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold(_bytes: usize) -> bool {
    false
}
