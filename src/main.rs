//! The `golive` binary: everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    // A write past the file-size limit (RLIMIT_FSIZE) should fail with EFBIG, which the store
    // reports as a storage failure, instead of killing the process with SIGXFSZ mid-write.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    golive::cli::run()
}
