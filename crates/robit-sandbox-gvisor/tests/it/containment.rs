//! The containment suite: each attack ends in one classified outcome, and the host is
//! unharmed (nothing left running or mounted, host files and secrets unreached).

use std::io::Write;
use std::time::Duration;

use robit_sandbox::{CodeRunner, Language, Limits, Outcome};

use crate::common::{assert_host_clean, limits, sandbox};

#[tokio::test]
async fn network_is_absent_even_host_loopback() {
    let Some(sb) = sandbox(0).await else { return };
    // A real listener on the host's loopback: the sandbox must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        r#"
import os, socket
print("interfaces", sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else "none")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3)
    print("CONNECTED")
except OSError as e:
    print("refused", type(e).__name__)
try:
    socket.getaddrinfo("example.com", 80)
    print("RESOLVED")
except OSError as e:
    print("no dns", type(e).__name__)
"#
    );
    let out = sb
        .run(Language::Python, &code, b"", limits())
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    assert!(out.stdout.contains("no dns"), "{}", out.stdout);
    assert!(!out.stdout.contains("CONNECTED") && !out.stdout.contains("RESOLVED"));
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing connected to the host");
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn host_files_and_environment_are_out_of_reach() {
    let Some(sb) = sandbox(0).await else { return };
    let secret = format!("robit-host-secret-{}", std::process::id());
    let mut marker = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    marker.write_all(secret.as_bytes()).unwrap();
    let path = marker.path().to_str().unwrap().to_string();
    // A secret in robit's own environment, as a deployment's API keys would be.
    std::env::set_var("ROBIT_TEST_SECRET", &secret);
    let code = format!(
        r#"
import os
for p in [{path:?}, "/etc/shadow", "/root/.bashrc", "/proc/1/environ", "/proc/self/environ"]:
    try:
        data = open(p, "rb").read()
        print(p, "read", len(data), {secret:?}.encode() in data)
    except OSError as e:
        print(p, "denied", type(e).__name__)
print("env", sorted(os.environ))
print("hostname", open("/etc/hostname").read().strip() if os.path.exists("/etc/hostname") else "-")
"#
    );
    let out = sb
        .run(Language::Python, &code, b"", limits())
        .await
        .unwrap();
    std::env::remove_var("ROBIT_TEST_SECRET");
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert!(!out.stdout.contains(" True"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{path} denied")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("/etc/shadow denied"), "{}", out.stdout);
    assert!(!out.stdout.contains("ROBIT_TEST_SECRET"), "{}", out.stdout);
    assert!(!out.stdout.contains(&secret));
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn disk_quota_holds() {
    let Some(sb) = sandbox(0).await else { return };
    let code = r#"
import os, errno
for where in ("/work/big", "/tmp/big"):
    n = 0
    try:
        with open(where, "wb") as f:
            while n < 1 << 30:
                f.write(b"\0" * (1 << 20)); n += 1 << 20
        print(where, "WROTE 1 GiB")
    except OSError as e:
        print(where, "full after", n >> 20, "MiB", errno.errorcode.get(e.errno))
    try: os.remove(where)
    except OSError: pass
"#;
    let out = sb.run(Language::Python, code, b"", limits()).await.unwrap();
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert!(!out.stdout.contains("WROTE"), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("full after").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("ENOSPC") || out.stdout.contains("EFBIG"),
        "{}",
        out.stdout
    );
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn fork_bomb_hits_the_process_limit() {
    let Some(sb) = sandbox(0).await else { return };
    let code = r#"
import os, time
n = 0
try:
    while n < 100000:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n, e.strerror)
"#;
    let out = sb
        .run(
            Language::Python,
            code,
            b"",
            Limits {
                wall_time: Duration::from_secs(10),
                ..limits()
            },
        )
        .await
        .unwrap();
    // Whichever limit a Python fork bomb reaches first ends it, each classified: gVisor
    // refuses the fork (RLIMIT_NPROC) and the program says so; the host pids cgroup stops
    // the sandbox; or, most often measured here, the memory cgroup does, because every
    // child's reference-count writes copy the parent's pages (numpy and pandas are
    // preloaded, so each child costs megabytes). None of them harms the host.
    let refused = out.outcome == Outcome::Finished && out.stdout.contains("fork refused after");
    let stopped = matches!(&out.outcome, Outcome::Trapped(why) if why.contains("process limit"));
    let out_of_memory = out.outcome == Outcome::OutOfMemory;
    assert!(refused || stopped || out_of_memory, "{out:?}");
    println!("fork bomb ended: {} {}", out.outcome, out.stdout.trim());
    assert_host_clean(&sb).await;
}

/// runsc writes no limit into a cgroup that exists before it starts (robit's own, kept for
/// their counters): before the fix a waiting sandbox had `pids.max` = `max` (the documented
/// pids backstop did not exist) and no memory limit until code arrived.
#[tokio::test]
async fn a_waiting_sandbox_already_has_its_cgroup_limits() {
    let Some(sb) = sandbox(1).await else { return };
    sb.warm_up().await;
    let config = crate::common::config(1);
    let id = format!("{}-0", sb.name());
    let read = |path: String| {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .to_string()
    };
    let (memory, pids) = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let dir = format!("/sys/fs/cgroup/robit-gvisor/{id}");
        (format!("{dir}/memory.max"), format!("{dir}/pids.max"))
    } else {
        (
            format!("/sys/fs/cgroup/memory/robit-gvisor/{id}/memory.limit_in_bytes"),
            format!("/sys/fs/cgroup/pids/robit-gvisor/{id}/pids.max"),
        )
    };
    assert_eq!(read(pids), config.host_pids.to_string());
    let limit = config.max_limits.memory_bytes + config.overhead_bytes;
    // The kernel keeps whole pages.
    assert_eq!(read(memory), (limit / 4096 * 4096).to_string());
    sb.shutdown().await;
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn memory_bomb_is_out_of_memory() {
    let Some(sb) = sandbox(0).await else { return };
    let out = sb
        .run(
            Language::Python,
            "x = ' ' * (3 << 30)\nprint('ALLOCATED')",
            b"",
            Limits {
                memory_bytes: 128 * 1024 * 1024,
                ..limits()
            },
        )
        .await
        .unwrap();
    assert!(!out.stdout.contains("ALLOCATED"));
    // The cgroup kills the sandbox, or CPython gets ENOMEM first and raises MemoryError.
    let oom = out.outcome == Outcome::OutOfMemory;
    let memory_error = out.exit_code == Some(1) && out.stderr.contains("MemoryError");
    assert!(oom || memory_error, "{out:?}");
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn infinite_loop_times_out() {
    let Some(sb) = sandbox(0).await else { return };
    let out = sb
        .run(
            Language::Python,
            "print('started', flush=True)\nwhile True: pass",
            b"",
            Limits {
                wall_time: Duration::from_secs(2),
                ..limits()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::TimedOut, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert_eq!(
        out.stdout.trim(),
        "started",
        "output before the timeout is kept"
    );
    assert!(out.duration >= Duration::from_secs(2) && out.duration < Duration::from_secs(6));
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn output_flood_is_truncated_and_stopped() {
    let Some(sb) = sandbox(0).await else { return };
    let out = sb
        .run(
            Language::Python,
            "import sys\nwhile True: sys.stdout.write('x' * 65536)",
            b"",
            limits(),
        )
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::OutputTruncated, "{out:?}");
    assert!(out.stdout.starts_with(&"x".repeat(16 * 1024)));
    assert!(out.stdout.contains("[output truncated:"), "marker present");
    assert!(out.stdout.len() < 17 * 1024);
    assert!(
        out.duration < Duration::from_secs(15),
        "stopped by the flood limit, not the wall time: {:?}",
        out.duration
    );
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn runs_cannot_read_each_others_files() {
    let Some(sb) = sandbox(0).await else { return };
    let writer = r#"
import time
open("/work/secret-a.txt", "w").write("SECRET-A")
open("/tmp/secret-a.txt", "w").write("SECRET-A")
print("written", flush=True)
time.sleep(4)
"#;
    let reader = r#"
import os
found = []
for top in ("/work", "/tmp", "/var", "/run", "/dev/shm"):
    for root, dirs, files in os.walk(top):
        for f in files:
            if "secret" in f:
                found.append(os.path.join(root, f))
print("found", found)
"#;
    // The reader runs while the writer's sandbox (and its files) still exists.
    let (a, b) = tokio::join!(sb.run(Language::Python, writer, b"", limits()), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sb.run(Language::Python, reader, b"", limits()).await
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.stdout.trim(), "written");
    assert_eq!(b.stdout.trim(), "found []", "{b:?}");
    // The writer's own file came back to it, so the files were really there.
    assert_eq!(a.files.len(), 1);
    assert_eq!(a.files[0].1, b"SECRET-A");
    // And a later run does not see them either.
    let c = sb
        .run(Language::Python, reader, b"", limits())
        .await
        .unwrap();
    assert_eq!(c.stdout.trim(), "found []");
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn the_root_cannot_be_escaped_or_changed() {
    let Some(sb) = sandbox(0).await else { return };
    let code = r#"
import os, ctypes
def do_mount():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
def open_disk():
    # gVisor lets a node be created in its own tmpfs, but it leads to no host device.
    try:
        os.mknod("/tmp/dev", 0o600 | 0o060000, os.makedev(8, 0))
    except OSError:
        pass
    open("/tmp/dev", "rb").read(512)
print("uid", os.getuid(), os.geteuid())
status = open("/proc/self/status").read()
print("capeff", [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0])
for attempt, f in [
    ("write-usr", lambda: open("/usr/lib/robit-owned", "w")),
    ("write-root", lambda: open("/robit-owned", "w")),
    ("chroot", lambda: os.chroot("/tmp")),
    ("setuid", lambda: os.setuid(0)),
    ("disk-device", open_disk),
    ("mount", do_mount),
]:
    try:
        f()
        print(attempt, "ALLOWED")
    except OSError as e:
        print(attempt, "denied")
os.symlink("/etc/passwd", "/work/link")
os.symlink("/", "/work/rootlink")
print("kernel", os.uname().release)
"#;
    let out = sb.run(Language::Python, code, b"", limits()).await.unwrap();
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("uid 65534 65534"), "{}", out.stdout);
    assert!(
        out.stdout.contains("capeff 0000000000000000"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ALLOWED"), "{}", out.stdout);
    // The symlinks the program left are not followed on the host side.
    assert!(out.files.is_empty(), "{:?}", out.files);
    // The kernel the program sees is gVisor's, not the host's.
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(!out.stdout.contains(host.trim()), "{}", out.stdout);
    assert!(std::fs::metadata("/usr/lib/robit-owned").is_err());
    assert_host_clean(&sb).await;
}
