//! The process's own CPU time, for the harnesses' per-op and per-second
//! figures (the server is another process, so it is not included).

/// User plus system CPU time of this process so far, in microseconds.
#[allow(unsafe_code)]
pub fn cpu_us() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
