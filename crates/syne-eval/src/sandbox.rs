//! Running untrusted generated programs (HumanEval, MBPP): each in its own process with a wall
//! and CPU timeout, address-space, file-size and process-count limits, no network, a fresh
//! temporary directory as the only writable place, and capped output.
//!
//! Isolation, on Linux, without privileges:
//! - a new **user and network namespace** (`unshare(CLONE_NEWUSER | CLONE_NEWNET)`): the program
//!   sees only a loopback device that is down, so it cannot open a connection anywhere;
//! - a new **PID namespace**: the program is PID 1 of its namespace (a small waiter process
//!   outside it reports its exit status, and its death takes the program with it), so killing it
//!   kills every process it started (fork bombs included), and it cannot name a process outside;
//! - **Landlock** (Linux ≥ 5.13): the whole file system is read-only and only the temporary
//!   directory is writable; with ABI ≥ 4 TCP bind/connect are denied as well, with ABI ≥ 6
//!   signals to processes outside the sandbox and abstract Unix sockets are scoped;
//! - **rlimits**: CPU seconds, address space, file size, open files, no core dumps, and a
//!   process count that, in the new user namespace, counts only the sandbox's own processes.
//!
//! When the namespaces or Landlock are unavailable, [`Sandbox::new`] refuses unless the caller
//! explicitly allows unsandboxed execution (`syne eval --unsafe-unsandboxed-code`), in which case
//! only the rlimits, the process group and the timeouts apply.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Resource limits for one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxLimits {
    /// Wall-clock seconds before the program (and everything it started) is killed.
    pub wall_seconds: f64,
    /// CPU seconds per process.
    pub cpu_seconds: u64,
    /// Address space per process, bytes.
    pub memory_bytes: u64,
    /// Processes (and threads) the program may have at once.
    pub processes: u64,
    /// Largest file it may write, bytes.
    pub file_bytes: u64,
    /// Bytes of stdout and of stderr kept; the rest is read and dropped.
    pub output_bytes: usize,
    /// Programs run at once (0 = one per CPU core).
    pub jobs: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits { wall_seconds: 10.0, cpu_seconds: 10, memory_bytes: 2 << 30, processes: 32, file_bytes: 16 << 20, output_bytes: 16 << 10, jobs: 0 }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0 within the limits.
    Passed,
    /// Non-zero exit status.
    Failed {
        /// The exit code.
        code: i32,
    },
    /// Killed by a signal (e.g. SIGXCPU at the CPU limit, SIGKILL).
    Signalled {
        /// The signal's number.
        signal: i32,
    },
    /// Still running at the wall-clock limit; killed with all its processes.
    TimedOut,
}

/// The result of one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    /// How it ended.
    pub outcome: Outcome,
    /// What it printed (capped).
    pub stdout: String,
    /// What it printed on stderr (capped).
    pub stderr: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The temporary directory it ran in (removed afterwards; every process of the run had it
    /// as `HOME`).
    pub workdir: PathBuf,
}

impl Execution {
    /// The program ran to completion with exit code 0.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }
}

/// What isolation a [`Sandbox`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Namespaces (user, network, PID) + Landlock + rlimits.
    Full {
        /// The Landlock ABI version the kernel offers.
        landlock_abi: i32,
    },
    /// rlimits and timeouts only (explicitly allowed by the user).
    Unsandboxed,
}

/// Runs Python programs under [`SandboxLimits`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    python: PathBuf,
    limits: SandboxLimits,
    isolation: Isolation,
}

// Landlock's ABI (include/uapi/linux/landlock.h); the values are fixed by the kernel.
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
const FS_EXECUTE: u64 = 1 << 0;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_TRUNCATE: u64 = 1 << 14;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn landlock_abi() -> i32 {
    // SAFETY: the version query takes no attribute pointer.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<RulesetAttr>(), 0usize, LANDLOCK_CREATE_RULESET_VERSION) };
    v.max(0) as i32
}

/// Every file-system access right the kernel's ABI knows.
fn fs_rights(abi: i32) -> u64 {
    let mut all = (1u64 << 13) - 1; // ABI 1: execute .. make_sym
    if abi >= 2 {
        all |= 1 << 13; // refer
    }
    if abi >= 3 {
        all |= FS_TRUNCATE;
    }
    if abi >= 5 {
        all |= 1 << 15; // ioctl_dev
    }
    all
}

/// An owned file descriptor closed on drop.
struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn sys_err(what: &str) -> EvalError {
    EvalError::Sandbox(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A Landlock ruleset: read and execute everywhere, everything under `writable`, and (by the
/// ABI) no TCP and scoped signals / abstract sockets. Built in the parent; the child only
/// calls `landlock_restrict_self` on it.
fn landlock_ruleset(abi: i32, writable: &Path) -> Result<Fd> {
    let all = fs_rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: all,
        handled_access_net: if abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
        scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
    };
    // Older kernels reject fields they do not know: pass only the prefix they understand.
    let size = if abi >= 6 {
        24
    } else if abi >= 4 {
        16
    } else {
        8
    };
    // SAFETY: attr outlives the call; size is at most its size.
    let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size as usize, 0u32) };
    if fd < 0 {
        return Err(sys_err("landlock_create_ruleset"));
    }
    let ruleset = Fd(fd as i32);
    for (path, access) in [(Path::new("/"), FS_EXECUTE | FS_READ_FILE | FS_READ_DIR), (writable, all)] {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| EvalError::Sandbox(format!("{}: path has a NUL byte", path.display())))?;
        // SAFETY: c is a valid C string.
        let dir = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if dir < 0 {
            return Err(sys_err(&format!("open {}", path.display())));
        }
        let dir = Fd(dir);
        let rule = PathBeneathAttr { allowed_access: access, parent_fd: dir.0 };
        // SAFETY: rule is a valid landlock_path_beneath_attr.
        let r = unsafe { libc::syscall(libc::SYS_landlock_add_rule, ruleset.0, LANDLOCK_RULE_PATH_BENEATH, &rule as *const PathBeneathAttr, 0u32) };
        if r < 0 {
            return Err(sys_err(&format!("landlock_add_rule {}", path.display())));
        }
    }
    Ok(ruleset)
}

fn read_capped(mut r: impl Read, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut dropped = 0usize;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len()).min(n);
        kept.extend_from_slice(&buf[..room]);
        dropped += n - room;
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        s += &format!("\n[... {dropped} more bytes dropped]");
    }
    s
}

impl Sandbox {
    /// A sandbox running `python` (resolved to the real interpreter once, so shims such as
    /// pyenv's are not re-run inside). Probes the isolation by running a program in it; without
    /// namespaces or Landlock it fails, unless `allow_unsandboxed` is set.
    pub fn new(python: &str, limits: SandboxLimits, allow_unsandboxed: bool) -> Result<Sandbox> {
        let out = Command::new(python)
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .map_err(|e| EvalError::Sandbox(format!("cannot run `{python}`: {e} (code tasks need a Python 3 interpreter; see --python)")))?;
        let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !out.status.success() || !python.is_file() {
            return Err(EvalError::Sandbox(format!("`{}` did not report its interpreter path", python.display())));
        }
        let abi = landlock_abi();
        let full = Sandbox { python: python.clone(), limits: limits.clone(), isolation: Isolation::Full { landlock_abi: abi } };
        let problem = if abi < 1 {
            Some("Landlock is not available (Linux ≥ 5.13 with landlock in the LSM list)".to_string())
        } else {
            match full.run_python("import socket, os\nassert os.getpid() == 1\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\n    raise SystemExit(3)\nexcept OSError:\n    pass\n") {
                Ok(e) if e.passed() => None,
                Ok(e) => Some(format!("the isolation probe failed ({:?}): {}", e.outcome, e.stderr.trim())),
                Err(e) => Some(e.to_string()),
            }
        };
        match problem {
            None => Ok(full),
            Some(p) if allow_unsandboxed => {
                tracing::warn!("running generated code WITHOUT a sandbox (explicitly allowed): {p}");
                Ok(Sandbox { python, limits, isolation: Isolation::Unsandboxed })
            }
            Some(p) => Err(EvalError::Sandbox(format!(
                "cannot sandbox generated code: {p}. Refusing to run it unsandboxed; pass --unsafe-unsandboxed-code to run it with rlimits only"
            ))),
        }
    }

    /// How far the sandbox isolates programs on this machine.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Programs run at once.
    pub fn jobs(&self) -> usize {
        if self.limits.jobs > 0 {
            self.limits.jobs
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The resource limits every program runs under.
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Run one Python program in a fresh temporary directory (removed afterwards).
    pub fn run_python(&self, program: &str) -> Result<Execution> {
        let dir =
            tempfile::Builder::new().prefix("syne-sandbox-").tempdir().map_err(|e| EvalError::Sandbox(format!("cannot create a temporary directory: {e}")))?;
        let work = dir.path().canonicalize().map_err(|e| EvalError::Sandbox(format!("{}: {e}", dir.path().display())))?;
        std::fs::write(work.join("program.py"), program).map_err(|e| EvalError::Sandbox(format!("cannot write the program: {e}")))?;
        let mut cmd = Command::new(&self.python);
        cmd.args(["-I", "-B", "program.py"])
            .current_dir(&work)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &work)
            .env("TMPDIR", &work)
            .env("LANG", "C.UTF-8")
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let ruleset = match self.isolation {
            Isolation::Full { landlock_abi } => Some(landlock_ruleset(landlock_abi, &work)?),
            Isolation::Unsandboxed => None,
        };
        // Everything the child writes is prepared here: after fork only async-signal-safe calls.
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let uid_map = format!("0 {uid} 1\n");
        let gid_map = format!("0 {gid} 1\n");
        let paths = [c"/proc/self/setgroups", c"/proc/self/uid_map", c"/proc/self/gid_map"];
        let ruleset_fd = ruleset.as_ref().map(|f| f.0);
        let limits = [
            (libc::RLIMIT_CPU, self.limits.cpu_seconds),
            (libc::RLIMIT_AS, self.limits.memory_bytes),
            (libc::RLIMIT_FSIZE, self.limits.file_bytes),
            (libc::RLIMIT_NOFILE, 256),
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_NPROC, self.limits.processes),
        ];
        // SAFETY: the closure only makes system calls on memory prepared above.
        unsafe {
            cmd.pre_exec(move || {
                let fail = |_| Err(std::io::Error::last_os_error());
                if libc::setpgid(0, 0) != 0 {
                    return fail(());
                }
                for (resource, value) in limits {
                    let l = libc::rlimit { rlim_cur: value, rlim_max: value };
                    if libc::setrlimit(resource, &l) != 0 {
                        return fail(());
                    }
                }
                let Some(ruleset) = ruleset_fd else { return Ok(()) };
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWPID) != 0 {
                    return fail(());
                }
                for (path, text) in paths.iter().zip(["deny", uid_map.as_str(), gid_map.as_str()]) {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, text.as_ptr().cast(), text.len()) != text.len() as isize {
                        return fail(());
                    }
                    libc::close(fd);
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0 {
                    return fail(());
                }
                // The program becomes PID 1 of the new PID namespace; this process waits for it
                // and exits the way it did, so the caller sees its status.
                let program = libc::fork();
                if program < 0 {
                    return fail(());
                }
                if program == 0 {
                    // If the waiter is killed (timeout), the namespace goes with the program.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                    return Ok(());
                }
                // The waiter holds no descriptor: in particular not the pipe that tells the
                // caller the program was exec'd, nor the output pipes.
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                let mut status = 0;
                while libc::waitpid(program, &mut status, 0) < 0 {
                    if *libc::__errno_location() != libc::EINTR {
                        libc::_exit(125);
                    }
                }
                if libc::WIFSIGNALED(status) {
                    let sig = libc::WTERMSIG(status);
                    libc::signal(sig, libc::SIG_DFL);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, sig);
                    libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                    libc::kill(libc::getpid(), sig);
                    libc::_exit(128 + sig);
                }
                libc::_exit(libc::WEXITSTATUS(status));
            });
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| EvalError::Sandbox(format!("cannot start the sandboxed program: {e}")))?;
        drop(ruleset);
        let cap = self.limits.output_bytes;
        let out = child.stdout.take().map(|s| std::thread::spawn(move || read_capped(s, cap)));
        let err = child.stderr.take().map(|s| std::thread::spawn(move || read_capped(s, cap)));
        let deadline = start + Duration::from_secs_f64(self.limits.wall_seconds);
        let pgid = child.id() as i32;
        let (status, timed_out) = loop {
            match child.try_wait() {
                Ok(Some(s)) => break (Some(s), false),
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY: signalling our own child's process group.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    let s = child.wait().ok();
                    break (s, true);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(EvalError::Sandbox(format!("cannot wait for the sandboxed program: {e}"))),
            }
        };
        // Whatever is left of the group (unsandboxed children; in the PID namespace they die
        // with its first process) goes too, so the pipes close and the readers finish.
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let stdout = out.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let stderr = err.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let outcome = match status {
            _ if timed_out => Outcome::TimedOut,
            Some(s) if s.success() => Outcome::Passed,
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Outcome::Failed { code },
                (None, Some(signal)) => Outcome::Signalled { signal },
                _ => Outcome::Failed { code: -1 },
            },
            None => Outcome::Failed { code: -1 },
        };
        Ok(Execution { outcome, stdout, stderr, seconds: start.elapsed().as_secs_f64(), workdir: work })
    }
}
