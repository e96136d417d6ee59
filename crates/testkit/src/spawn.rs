//! Spawning etcd so that it can never outlive the test process.
//!
//! `Drop` kills members when a test ends or panics, but not when the test
//! process itself is killed (a CI time-out, `SIGKILL`, a crash). For that each
//! member is spawned with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel
//! kills it when its parent goes away.
//!
//! The kernel's notion of "parent" is the *thread* that forked, not the
//! process: a member forked from a `spawn_blocking` thread or from a test
//! thread would be killed as soon as that thread ends. So every fork happens
//! on one dedicated thread that lives as long as the process.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::error::{Result, TestkitError};

struct Request {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

fn spawner() -> io::Result<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Option<mpsc::Sender<Request>>>> = OnceLock::new();
    let slot = SPAWNER.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sender) = slot.as_ref() {
        return Ok(sender.clone());
    }
    let (sender, requests) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("etcd-testkit-spawner".into())
        .spawn(move || {
            for mut request in requests {
                // The requester may have given up; nothing to do then.
                let _ = request.reply.send(request.command.spawn());
            }
        })?;
    *slot = Some(sender.clone());
    Ok(sender)
}

/// Spawns `command` from the kit's long-lived spawner thread, with
/// `PR_SET_PDEATHSIG` set to `SIGKILL`.
pub(crate) fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    die_with_parent(&mut command);
    let (reply, answer) = mpsc::channel();
    spawner()?
        .send(Request { command, reply })
        .map_err(|_| io::Error::other("the etcd-testkit spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the etcd-testkit spawner thread is gone"))?
}

/// Spawns `program args...` like [`spawn_tied_to_process`], with stdin
/// closed and stdout and stderr appended to `log_path`, after a line
/// `=== etcd-testkit: <marker>: <command line>` that tells the starts of one
/// log apart (a member's restarts share its log).
pub(crate) fn spawn_logged(
    program: &Path,
    args: &[OsString],
    log_path: &Path,
    marker: &str,
) -> Result<Child> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| TestkitError::io(format!("opening {}", log_path.display()), e))?;
    let stderr = log
        .try_clone()
        .map_err(|e| TestkitError::io("duplicating the log file handle", e))?;
    let command_line = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    // The marker is a convenience for people reading the log; a failed
    // write must not fail the start.
    let _ = writeln!(
        log,
        "=== etcd-testkit: {marker}: {} {command_line}",
        program.display()
    );
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    spawn_tied_to_process(command)
        .map_err(|e| TestkitError::io(format!("spawning {}", program.display()), e))
}

/// The last `lines` lines of the log file at `path` (empty if unreadable).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the log at `path` says a port was taken: some other process bound
/// it between the kit choosing it and the server binding it.
pub(crate) fn log_says_port_taken(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|log| log.contains("address already in use"))
        .unwrap_or(false)
}

/// Makes the child receive `SIGKILL` when the thread that forked it exits.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child between fork and exec, where
    // only async-signal-safe operations are allowed. It makes two plain system
    // calls, prctl(2) and getppid(2), and builds an `io::Error` from a raw errno
    // (no allocation); it takes no locks and touches no shared state.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)?;
            // The parent may have died between fork and prctl: then nobody
            // would ever send the signal, so refuse to start at all.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}
