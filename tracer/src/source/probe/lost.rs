//! Events lost: ring-buffer reservations that failed (counted per CPU by the programs) plus the
//! runs the kernel skipped itself. A tracing program (tp_btf, fentry) that fires while the same
//! program already runs on that CPU (an interrupt in the middle of it) is not run; the kernel
//! only counts it in `bpf_prog_info.recursion_misses` (Linux 5.12+).
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{Result, bail};
use aya::Ebpf;

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Byte offset of `recursion_misses` in the kernel's `struct bpf_prog_info` (uapi/linux/bpf.h:
/// after `run_time_ns` at 192 and `run_cnt` at 200; the layout is append-only ABI).
const RECURSION_MISSES_OFFSET: usize = 208;

/// Room for the whole `bpf_prog_info` of current kernels (232 bytes on 6.18). A kernel with a
/// larger one copies only this much; one with a smaller one leaves the rest zero.
const INFO_WORDS: usize = 40;

const _: () = assert!(INFO_WORDS * 8 >= RECURSION_MISSES_OFFSET + 8);

/// `union bpf_attr` as BPF_OBJ_GET_INFO_BY_FD reads it.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// How many runs of one program the kernel skipped; 0 on kernels that do not count them.
pub fn recursion_misses(prog: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut info = [0u64; INFO_WORDS];
    let mut attr = InfoByFd {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `attr` describes `info`, a live, writable buffer of `info_len` bytes; the kernel
    // writes at most that much into it and updates `info_len`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoByFd,
            size_of::<InfoByFd>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(misses_from_info(&info, attr.info_len as usize))
}

/// The `recursion_misses` word of an info buffer the kernel filled `filled` bytes of.
fn misses_from_info(info: &[u64; INFO_WORDS], filled: usize) -> u64 {
    if filled < RECURSION_MISSES_OFFSET + 8 {
        return 0;
    }
    info[RECURSION_MISSES_OFFSET / 8]
}

/// Every run skipped by the kernel, summed over the loaded programs of `ebpf` (programs that
/// were not loaded, e.g. the hooks of the TIME_WAIT path not chosen, have none).
pub fn missed_by_kernel(ebpf: &Ebpf) -> Result<u64> {
    let mut per_program = Vec::new();
    for (name, program) in ebpf.programs() {
        let Ok(fd) = program.fd() else { continue };
        match recursion_misses(fd.as_fd()) {
            Ok(n) => per_program.push(n),
            Err(e) => bail!("reading the kernel's run statistics of program {name}: {e}"),
        }
    }
    Ok(total_lost(&[], &per_program))
}

/// Lost events: the per-CPU ring-buffer failures plus the per-program skipped runs.
/// Saturating: a counter never wraps into a small number.
pub fn total_lost(ring_per_cpu: &[u64], missed_per_program: &[u64]) -> u64 {
    ring_per_cpu
        .iter()
        .chain(missed_per_program)
        .fold(0u64, |sum, &n| sum.saturating_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_sums_ring_failures_and_skipped_runs() {
        assert_eq!(total_lost(&[], &[]), 0);
        assert_eq!(total_lost(&[3, 0, 4], &[]), 7);
        assert_eq!(total_lost(&[], &[0, 2, 0, 5]), 7);
        assert_eq!(total_lost(&[1, 1], &[1, 0, 2]), 5);
        assert_eq!(total_lost(&[u64::MAX], &[1]), u64::MAX);
    }

    #[test]
    fn misses_are_read_only_when_the_kernel_filled_the_field() {
        let mut info = [0u64; INFO_WORDS];
        info[RECURSION_MISSES_OFFSET / 8] = 42;
        assert_eq!(misses_from_info(&info, 232), 42);
        assert_eq!(misses_from_info(&info, RECURSION_MISSES_OFFSET + 8), 42);
        // A kernel older than 5.12 stops before the field.
        assert_eq!(misses_from_info(&info, RECURSION_MISSES_OFFSET), 0);
        assert_eq!(misses_from_info(&info, 0), 0);
    }

    #[test]
    fn the_attr_is_the_kernels_info_by_fd_layout() {
        assert_eq!(size_of::<InfoByFd>(), 16);
        assert_eq!(std::mem::offset_of!(InfoByFd, info), 8);
    }
}
