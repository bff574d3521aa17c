//! Process plumbing: finding the MariaDB programs, choosing ports, reading
//! error logs, and the watchdog that cleans up after an owner that died
//! without running its destructors.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use super::error::{Result, SandboxError};

/// Where MariaDB's programs live on Debian besides `$PATH` (`mariadbd` is in
/// `/usr/sbin`, which an unprivileged user's `$PATH` often lacks).
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// The path of `program`, from `$PATH` or the usual system directories.
pub(super) fn find_program(program: &'static str) -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| SandboxError::MissingProgram {
            program,
            searched: EXTRA_DIRS.join(", "),
        })
}

/// Whether this process runs as root (`mariadbd` then needs `--user=root`).
/// `/proc/self` belongs to the process's effective user.
pub(super) fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The effective user id, for naming per-user caches (0 if unknown).
pub(super) fn effective_uid() -> u32 {
    fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// Ports held by the servers of this process, including stopped ones that
/// will be restarted on the same port.
static LEASED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port reserved for one server of this process until dropped.
///
/// The port comes from the kernel (bind to port 0), so no other program
/// listens on it at that moment; the lease keeps this process from handing
/// the same port to two of its servers. Another program may still take it
/// before `mariadbd` binds it: the caller retries on "address in use".
#[derive(Debug)]
pub(super) struct PortLease(u16);

impl PortLease {
    pub fn new() -> Result<Self> {
        loop {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| SandboxError::io("bind a port on", "127.0.0.1:0", e))?;
            let port = listener
                .local_addr()
                .map_err(|e| SandboxError::io("read the address of", "127.0.0.1:0", e))?
                .port();
            let mut leased = LEASED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
            if leased.insert(port) {
                return Ok(PortLease(port));
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.0
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut leased = LEASED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        leased.remove(&self.0);
    }
}

/// The watchdog script. `$1` is the sandbox root. The owner writes `pid N`
/// when a server process starts and `pid` when it is gone; the pipe reaches
/// end-of-file when the owner exits, however it exits (also SIGKILL). Then the
/// watchdog kills the server still recorded, waits for it to go, and removes
/// the sandbox. Signals that a terminal or a CI runner sends to the whole
/// process group are ignored, so that the watchdog outlives its owner.
const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT TERM
pid=
while read -r cmd arg; do
    if [ "$cmd" = pid ]; then pid=$arg; fi
done
if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do
        sleep 0.05
        n=$((n + 1))
    done
fi
rm -rf -- "$1"
"#;

/// A `sh` process that kills the server and removes its directory if the
/// owning process dies without dropping the [`Server`](super::Server).
///
/// Dropping the watchdog closes its pipe: it removes whatever is left of the
/// sandbox (normally nothing, the owner removes it first) and exits.
#[derive(Debug)]
pub(super) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    pub fn spawn(root: &Path) -> Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("parapply-sandbox-watchdog")
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| SandboxError::io("spawn the watchdog", "sh", e))?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Records the server process to kill if the owner dies.
    pub fn guard(&mut self, pid: u32) -> Result<()> {
        self.send(&format!("pid {pid}\n"))
    }

    /// Forgets the server process: call it after killing the server and
    /// before reaping it, so that the watchdog never kills a reused pid.
    pub fn unguard(&mut self) {
        // A watchdog that died cannot be told anything; there is nothing
        // better to do than to carry on without it.
        if let Err(error) = self.send("pid\n") {
            tracing::warn!(%error, "sandbox watchdog is gone");
        }
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            SandboxError::io(
                "write to the watchdog",
                "sh",
                std::io::ErrorKind::BrokenPipe.into(),
            )
        })?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| SandboxError::io("write to the watchdog", "sh", e))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Err(error) = self.child.wait() {
            tracing::warn!(%error, "cannot reap the sandbox watchdog");
        }
    }
}

/// The current length of a (log) file, 0 if it does not exist yet.
pub(super) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// The last `lines` lines a server wrote to its error log since `offset`.
/// Never fails: a missing or unreadable log yields a note saying so.
pub(super) fn log_tail(path: &Path, offset: u64, lines: usize) -> String {
    let mut text = Vec::new();
    let read = fs::File::open(path).and_then(|mut file| {
        let len = file.metadata()?.len();
        // Read at most the last 64 KiB: enough for any tail worth showing.
        let start = offset.max(len.saturating_sub(64 * 1024));
        file.seek(SeekFrom::Start(start))?;
        file.read_to_end(&mut text)
    });
    if let Err(error) = read {
        return format!("(cannot read {}: {error})", path.display());
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_says_what_to_install() {
        let error = find_program("parapply-no-such-program").expect_err("not installed");
        let message = error.to_string();
        assert!(
            message.contains("`parapply-no-such-program` not found"),
            "{message}"
        );
        assert!(
            message.contains("apt-get install mariadb-server"),
            "{message}"
        );
    }

    #[test]
    fn leases_are_distinct_and_released() {
        let a = PortLease::new().expect("lease a");
        let b = PortLease::new().expect("lease b");
        assert_ne!(a.port(), b.port());
        let port = a.port();
        drop(a);
        assert!(!LEASED_PORTS.lock().expect("lock").contains(&port));
    }

    #[test]
    fn log_tail_keeps_the_last_lines_after_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("error.log");
        fs::write(&log, "old 1\nold 2\n").expect("write");
        let offset = file_len(&log);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        file.write_all(b"new 1\nnew 2\nnew 3\n").expect("append");
        assert_eq!(log_tail(&log, offset, 2), "new 2\nnew 3");
        assert_eq!(log_tail(&log, offset, 10), "new 1\nnew 2\nnew 3");
        assert!(log_tail(&dir.path().join("missing"), 0, 5).starts_with("(cannot read"));
    }
}
