//! The disk quota, with the real guests: a program that writes big files in a loop, or
//! many small files, is stopped while it runs with `Outcome::DiskLimit`, having written no
//! more than its quota; the sandbox-wide total bounds concurrent runs; and the host is left
//! clean (every scratch directory removed).

use std::path::Path;
use std::time::Duration;

use robit_sandbox::{Language, Limits, Outcome, RunOutput, Sandbox, SandboxConfig};
use tempfile::TempDir;

use crate::common::{assert_healthy_on, config};

const MIB: u64 = 1024 * 1024;

/// A sandbox whose scratch directories live in a directory of the test's own, so the test
/// can see them; no Python pool, so no idle instance holds one.
async fn sandbox_in(scratch: &Path, disk_total_bytes: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        python_pool_size: 0,
        scratch_dir: Some(scratch.to_path_buf()),
        disk_total_bytes,
        ..config()
    })
    .await
    .expect("sandbox starts")
}

fn quota(disk_bytes: u64, disk_files: u64) -> Limits {
    Limits {
        disk_bytes,
        disk_files,
        ..Limits::default()
    }
}

async fn run(sandbox: &Sandbox, language: Language, code: &str, limits: Limits) -> RunOutput {
    sandbox
        .run(language, code, b"", limits)
        .await
        .expect("run completes without a sandbox error")
}

/// The host side after a run: no scratch directory left, no bytes counted.
fn assert_clean(scratch: &TempDir, sandbox: &Sandbox) {
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "scratch directories left behind: {left:?}");
    assert_eq!(sandbox.disk_in_use(), 0);
}

/// Waits until the guest task has torn down its store and the run's directory is gone:
/// the run returns as soon as the guest reports, teardown finishes just after.
async fn settled(scratch: &TempDir, sandbox: &Sandbox) {
    for _ in 0..500 {
        let empty = std::fs::read_dir(scratch.path()).unwrap().next().is_none();
        if empty && sandbox.disk_in_use() == 0 {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_clean(scratch, sandbox);
}

#[tokio::test]
async fn python_writing_50mb_files_in_a_loop_hits_the_disk_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
i = 0
while True:
    with open(f'f{i}.bin', 'wb') as f:
        f.write(b'x' * 50_000_000)
    i += 1
    print(i)";
    let out = run(&sandbox, Language::Python, code, quota(16 * MIB, 100)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    assert_eq!(out.exit_code, None);
    // The first 50 MB write is refused before it happens.
    assert_eq!(out.stdout, "", "{out:?}");
    assert!(out.duration < Duration::from_secs(5), "{:?}", out.duration);
    // Only the empty file the refused write was for exists.
    assert!(out.files.iter().all(|(_, b)| b.is_empty()), "{out:?}");
    settled(&scratch, &sandbox).await;
    assert_healthy_on(&sandbox).await;
}

#[tokio::test]
async fn python_filling_the_quota_in_chunks_stops_at_the_quota() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
f = open('big.bin', 'wb')
n = 0
while True:
    f.write(b'x' * 1_000_000)
    f.flush()
    n += 1
    print(n, flush=True)";
    let out = run(&sandbox, Language::Python, code, quota(8 * MIB, 100)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    let last: u64 = out.stdout.lines().last().unwrap().parse().unwrap();
    assert!(last * 1_000_000 <= 8 * MIB, "wrote {last} MB: {out:?}");
    assert!(
        (last + 1) * 1_000_000 > 8 * MIB,
        "stopped early at {last} MB"
    );
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn python_many_small_files_hit_the_file_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
import os
for i in range(100_000):
    open(f'f{i}', 'w').close()
print('unreachable')";
    let out = run(&sandbox, Language::Python, code, quota(16 * MIB, 50)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    assert_eq!(out.stdout, "");
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn python_many_directories_hit_the_file_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
import os
for i in range(100_000):
    os.mkdir(f'd{i}')";
    let out = run(&sandbox, Language::Python, code, quota(16 * MIB, 20)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn python_sparse_file_counts_its_length() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
f = open('sparse', 'wb')
f.seek(10**9)
f.write(b'x')
print('unreachable')";
    let out = run(&sandbox, Language::Python, code, quota(16 * MIB, 100)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    let code = "import os\nf = open('t', 'wb')\nos.truncate('t', 10**9)";
    let out = run(&sandbox, Language::Python, code, quota(16 * MIB, 100)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn python_rewriting_a_file_within_the_quota_is_fine() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    // 100 MB written in total, never more than 1 MB on disk: truncation gives bytes back,
    // an overwrite in place costs nothing.
    let code = "\
for i in range(100):
    with open('out.bin', 'wb') as f:
        f.write(b'x' * 1_000_000)
with open('out.bin', 'r+b') as f:
    f.write(b'y' * 1_000_000)
print('ok')";
    let out = run(&sandbox, Language::Python, code, quota(2 * MIB, 10)).await;
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert_eq!(out.stdout, "ok\n");
    assert_eq!(out.files.len(), 1);
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn javascript_writing_big_files_hits_the_disk_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "\
const chunk = 'x'.repeat(50_000_000);
for (let i = 0; ; i++) {
  const f = std.open('f' + i + '.txt', 'w');
  f.puts(chunk);
  f.close();
  console.log(i);
}";
    let out = run(&sandbox, Language::JavaScript, code, quota(16 * MIB, 100)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    settled(&scratch, &sandbox).await;
    assert_healthy_on(&sandbox).await;
}

#[tokio::test]
async fn javascript_many_small_files_hit_the_file_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 64 * MIB).await;
    let code = "for (let i = 0; i < 100000; i++) { std.open('f' + i, 'w').close(); }";
    let out = run(&sandbox, Language::JavaScript, code, quota(16 * MIB, 50)).await;
    assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
    settled(&scratch, &sandbox).await;
}

#[tokio::test]
async fn the_total_bounds_concurrent_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = sandbox_in(scratch.path(), 10 * MIB).await;
    // Each run may hold 8 MiB; the sandbox 10 MiB in all. The first writes 6 MB and waits
    // (until its wall time ends it); while it holds them, the second cannot write 6 MB.
    let holder = "\
import time
with open('hold.bin', 'wb') as f:
    f.write(b'x' * 6_000_000)
print('holding', flush=True)
time.sleep(3600)";
    let limits = Limits {
        wall_time: Duration::from_secs(20),
        ..quota(8 * MIB, 10)
    };
    let first = {
        let sandbox = &sandbox;
        async move { run(sandbox, Language::Python, holder, limits).await }
    };
    let second = async {
        // Start once the first run holds its bytes (a condition, not a guess of time).
        while sandbox.disk_in_use() < 6_000_000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let out = run(
            &sandbox,
            Language::Python,
            "open('b.bin', 'wb').write(b'x' * 6_000_000)",
            quota(8 * MIB, 10),
        )
        .await;
        assert_eq!(out.outcome, Outcome::DiskLimit, "{out:?}");
        // Within its own quota and what is left of the total, a run still works.
        let out = run(
            &sandbox,
            Language::Python,
            "open('c.bin', 'wb').write(b'x' * 1_000_000)",
            quota(8 * MIB, 10),
        )
        .await;
        assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    };
    tokio::select! {
        out = first => panic!("the holding run ended first: {out:?}"),
        // Leaving the select drops the holding run, which stops it.
        () = second => {}
    }
    settled(&scratch, &sandbox).await;
}
