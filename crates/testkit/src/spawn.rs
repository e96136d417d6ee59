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

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};

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
