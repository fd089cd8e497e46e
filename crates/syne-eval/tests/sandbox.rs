//! Hostile programs in the code sandbox: each must be marked failed while the machine and the
//! harness are unharmed (files outside the temporary directory intact, no process left behind,
//! no connection made, the harness's memory untouched).

use std::time::Instant;

use syne_eval::sandbox::{Isolation, Outcome, Sandbox, SandboxLimits};

fn sandbox(limits: SandboxLimits) -> Sandbox {
    let s = Sandbox::new("python3", limits, false).expect("the sandbox must work on the test machines (user namespaces + Landlock)");
    assert!(matches!(s.isolation(), Isolation::Full { landlock_abi } if landlock_abi >= 1));
    s
}

/// Limits for the tests: a roomy wall clock (these tests run in parallel with CPU-burning ones
/// on 2 cores, and a Python start can then take seconds); the tests of the limits set their own.
fn fast() -> SandboxLimits {
    SandboxLimits { wall_seconds: 30.0, cpu_seconds: 10, ..Default::default() }
}

/// Processes whose environment carries `HOME=<dir>`: what a sandboxed run left alive.
fn survivors(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())))
        .filter(|e| std::fs::read(e.path().join("environ")).is_ok_and(|env| env.windows(marker.len()).any(|w| w == marker.as_bytes())))
        .count()
}

#[test]
fn a_correct_program_passes_and_a_failing_assert_fails() {
    let s = sandbox(fast());
    let ok = s.run_python("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('fine')\n").unwrap();
    assert_eq!(ok.outcome, Outcome::Passed, "{}", ok.stderr);
    assert_eq!(ok.stdout.trim(), "fine");
    let bad = s.run_python("assert 1 + 1 == 3\n").unwrap();
    assert_eq!(bad.outcome, Outcome::Failed { code: 1 });
    assert!(bad.stderr.contains("AssertionError"), "{}", bad.stderr);
    // The temporary directory is writable and is the working directory.
    let tmp = s.run_python("open('scratch.txt', 'w').write('x' * 1000)\nimport os\nos.remove('scratch.txt')\nos.mkdir('d')\n").unwrap();
    assert_eq!(tmp.outcome, Outcome::Passed, "{}", tmp.stderr);
}

#[test]
fn an_infinite_loop_is_killed_at_the_wall_clock_limit() {
    let s = sandbox(SandboxLimits { wall_seconds: 1.5, ..fast() });
    let t = Instant::now();
    let e = s.run_python("while True:\n    pass\n").unwrap();
    assert_eq!(e.outcome, Outcome::TimedOut);
    assert!(t.elapsed().as_secs_f64() < 5.0);
    // A sleeping program (no CPU used) is killed the same way.
    let e = s.run_python("import time\ntime.sleep(60)\n").unwrap();
    assert_eq!(e.outcome, Outcome::TimedOut);
}

#[test]
fn the_cpu_limit_signals_a_busy_program() {
    let s = sandbox(SandboxLimits { wall_seconds: 10.0, cpu_seconds: 1, ..fast() });
    let e = s.run_python("while True:\n    pass\n").unwrap();
    // SIGXCPU (24) at the soft limit; SIGKILL past the hard one.
    assert!(matches!(e.outcome, Outcome::Signalled { signal } if signal == libc::SIGXCPU || signal == libc::SIGKILL), "{:?}", e.outcome);
    assert!(e.seconds < 5.0);
}

#[test]
fn a_fork_bomb_fails_and_leaves_no_process_behind() {
    let s = sandbox(SandboxLimits { wall_seconds: 3.0, ..fast() });
    let program = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n";
    let e = s.run_python(program).unwrap();
    assert_ne!(e.outcome, Outcome::Passed);
    // Every process of the run carried HOME=<its temp dir>; none may survive it.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(survivors(&format!("HOME={}\0", e.workdir.display())), 0);
    // The harness can still start processes.
    assert_eq!(s.run_python("print(1)\n").unwrap().outcome, Outcome::Passed);
}

#[test]
fn a_huge_allocation_fails_without_touching_the_harness() {
    let s = sandbox(fast());
    let e = s.run_python("x = bytearray(64 * 1024**3)\n").unwrap();
    assert_eq!(e.outcome, Outcome::Failed { code: 1 });
    assert!(e.stderr.contains("MemoryError"), "{}", e.stderr);
}

#[test]
fn no_network_connection_can_be_opened() {
    let s = sandbox(fast());
    // A listener of the harness on loopback: the sandbox must not reach even that.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')\n");
    let e = s.run_python(&program).unwrap();
    assert_eq!(e.outcome, Outcome::Failed { code: 1 }, "{}", e.stderr);
    assert!(!e.stdout.contains("connected"));
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the sandbox reached the harness's socket");
    let e = s.run_python("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)\n").unwrap();
    assert_ne!(e.outcome, Outcome::Passed);
}

#[test]
fn files_outside_the_temporary_directory_cannot_be_written_or_deleted() {
    let s = sandbox(fast());
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("canary.txt");
    std::fs::write(&canary, "keep me").unwrap();
    let p = outside.path().display();
    for (what, program) in [
        ("overwrite", format!("open('{p}/canary.txt', 'w').write('gone')\n")),
        ("create", format!("open('{p}/new.txt', 'w').write('x')\n")),
        ("delete", format!("import os\nos.remove('{p}/canary.txt')\n")),
        ("delete tree", format!("import shutil\nshutil.rmtree('{p}')\n")),
        ("rename", format!("import os\nos.rename('{p}/canary.txt', 'stolen.txt')\n")),
        ("write home", "import os\nopen(os.path.expanduser('/root/.syne-sandbox-test'), 'w').write('x')\n".to_string()),
    ] {
        let e = s.run_python(&program).unwrap();
        assert_eq!(e.outcome, Outcome::Failed { code: 1 }, "{what}: {}", e.stderr);
        assert!(e.stderr.contains("PermissionError") || e.stderr.contains("Errno"), "{what}: {}", e.stderr);
    }
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep me");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert!(!std::path::Path::new("/root/.syne-sandbox-test").exists());
}

#[test]
fn the_harness_cannot_be_signalled_and_output_is_capped() {
    let s = sandbox(SandboxLimits { output_bytes: 1000, ..fast() });
    let me = std::process::id();
    let e = s.run_python(&format!("import os, signal\nos.kill({me}, signal.SIGKILL)\n")).unwrap();
    assert_ne!(e.outcome, Outcome::Passed);
    let e = s.run_python("import sys\nfor _ in range(100000):\n    sys.stdout.write('x' * 100)\n").unwrap();
    assert_eq!(e.outcome, Outcome::Passed);
    assert!(e.stdout.len() < 1100 && e.stdout.contains("more bytes dropped"), "{}", e.stdout.len());
}
