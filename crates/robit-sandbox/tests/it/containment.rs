//! Hostile programs: each ends with a clear outcome within its limits, and the
//! sandbox keeps working afterwards.

use std::time::Duration;

use robit_sandbox::{Language, Limits, Outcome};

use crate::common::{assert_healthy, js, py, run_with, short, SHORT_WALL};

/// Upper bound on how long a timed-out run may take: the limit plus epoch and
/// scheduling slack on a busy 2-core machine.
fn timed_out_quickly(d: Duration) -> bool {
    d >= SHORT_WALL && d < SHORT_WALL + Duration::from_secs(2)
}

#[tokio::test]
async fn python_infinite_loop_times_out() {
    let out = run_with(
        Language::Python,
        "print('start')\nwhile True: pass",
        b"",
        short(),
    )
    .await;
    assert_eq!(out.outcome, Outcome::TimedOut, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert!(timed_out_quickly(out.duration), "{:?}", out.duration);
    // Output printed before the loop is not lost in a buffer.
    assert_eq!(out.stdout, "start\n");
    assert_healthy().await;
}

#[tokio::test]
async fn python_sleep_is_cut_by_the_wall_time() {
    let out = run_with(
        Language::Python,
        "import time\ntime.sleep(3600)",
        b"",
        short(),
    )
    .await;
    assert_eq!(out.outcome, Outcome::TimedOut, "{out:?}");
    assert!(timed_out_quickly(out.duration), "{:?}", out.duration);
    assert_healthy().await;
}

#[tokio::test]
async fn python_giant_integer_is_stopped() {
    let out = run_with(Language::Python, "10**10**8", b"", short()).await;
    assert!(
        matches!(out.outcome, Outcome::TimedOut | Outcome::OutOfMemory),
        "{out:?}"
    );
    assert_healthy().await;
}

#[tokio::test]
async fn python_impossible_allocation_fails() {
    // More than a 32-bit guest can address: CPython refuses before asking for memory.
    let out = py("bytearray(10**10)").await;
    let refused = out.outcome == Outcome::OutOfMemory
        || (out.exit_code == Some(1)
            && (out.stderr.contains("MemoryError") || out.stderr.contains("OverflowError")));
    assert!(refused, "{out:?}");
    assert_healthy().await;
}

#[tokio::test]
async fn python_allocation_over_the_limit_is_out_of_memory() {
    let out = py("x = bytearray(10**9)\nprint('unreachable')").await;
    assert_eq!(out.outcome, Outcome::OutOfMemory, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_healthy().await;
}

#[tokio::test]
async fn python_slow_memory_climb_is_stopped() {
    let limits = Limits {
        memory_bytes: 96 * 1024 * 1024,
        ..short()
    };
    let code =
        "import time\nx = []\nwhile True:\n    x.append(bytearray(1 << 20))\n    time.sleep(0.001)";
    let out = run_with(Language::Python, code, b"", limits).await;
    assert_eq!(out.outcome, Outcome::OutOfMemory, "{out:?}");
    assert_healthy().await;
}

#[tokio::test]
async fn python_output_flood_is_truncated() {
    let out = py("print('x' * 100_000_000)").await;
    assert_eq!(out.outcome, Outcome::OutputTruncated, "{:?}", out.outcome);
    assert_eq!(out.exit_code, Some(0));
    let kept = Limits::default().output_bytes;
    let dropped = 100_000_001 - kept;
    assert!(out.stdout.starts_with(&"x".repeat(kept)));
    assert!(
        out.stdout
            .ends_with(&format!("\n… [output truncated: {dropped} more bytes]")),
        "{}",
        &out.stdout[kept..]
    );
    assert_healthy().await;
}

#[tokio::test]
async fn python_endless_printing_times_out_with_truncated_output() {
    let out = run_with(Language::Python, "while True: print('spam')", b"", short()).await;
    assert_eq!(out.outcome, Outcome::TimedOut, "{:?}", out.outcome);
    assert!(out.stdout.starts_with("spam\nspam\n"));
    assert!(out.stdout.contains("[output truncated: "));
    assert_healthy().await;
}

#[tokio::test]
async fn python_cannot_see_host_files() {
    let code = "\
import os
for p in ['/etc/passwd', '../../../../etc/passwd', '/proc/self/environ']:
    try:
        open(p).read()
        print('READ', p)
    except OSError as e:
        print('denied', type(e).__name__)
print(os.listdir('/'), os.listdir('.'))";
    let out = py(code).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(
        lines[..3].iter().all(|l| l.starts_with("denied ")),
        "{out:?}"
    );
    assert_eq!(lines[3], "[] []");
    assert_healthy().await;
}

#[tokio::test]
async fn python_environment_is_empty() {
    let out = py("import os; print(dict(os.environ))").await;
    assert_eq!(out.stdout, "{}\n", "{out:?}");
}

#[tokio::test]
async fn python_has_no_network() {
    let code = "\
import socket
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(('1.1.1.1', 80))
    print('CONNECTED')
except OSError as e:
    print('no network:', type(e).__name__)";
    let out = py(code).await;
    assert_eq!(out.stdout, "no network: OSError\n", "{out:?}");
    assert_healthy().await;
}

#[tokio::test]
async fn python_deep_recursion_ends_cleanly() {
    let code = "import sys\nsys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nf(0)";
    let out = run_with(Language::Python, code, b"", short()).await;
    let clean = match &out.outcome {
        Outcome::Finished => out.exit_code == Some(1) && out.stderr.contains("RecursionError"),
        Outcome::Trapped(_) | Outcome::OutOfMemory | Outcome::TimedOut => true,
        Outcome::OutputTruncated | Outcome::DiskLimit => false,
    };
    assert!(
        clean,
        "{:?} {:?} {}",
        out.outcome,
        out.exit_code,
        &out.stderr[out.stderr.len().saturating_sub(300)..]
    );
    assert_healthy().await;
}

#[tokio::test]
async fn python_c_stack_overflow_traps_cleanly() {
    // Nested containers recurse in C (repr), which uses the wasm stack.
    let code = "import sys\nsys.setrecursionlimit(10**6)\nx = []\nfor _ in range(200000): x = [x]\nprint(len(repr(x)))";
    let out = run_with(Language::Python, code, b"", short()).await;
    assert!(
        matches!(
            out.outcome,
            Outcome::Trapped(_) | Outcome::Finished | Outcome::OutOfMemory
        ),
        "{out:?}"
    );
    assert_healthy().await;
}

#[tokio::test]
async fn js_infinite_loop_times_out() {
    let out = run_with(
        Language::JavaScript,
        "console.log('start'); for (;;) {}",
        b"",
        short(),
    )
    .await;
    assert_eq!(out.outcome, Outcome::TimedOut, "{out:?}");
    assert!(timed_out_quickly(out.duration), "{:?}", out.duration);
    assert_eq!(out.stdout, "start\n");
    assert_healthy().await;
}

#[tokio::test]
async fn js_huge_array_is_stopped() {
    let code = "const a = []; for (;;) a.push(new Array(1e6).fill(1.5));";
    let out = run_with(Language::JavaScript, code, b"", short()).await;
    let stopped = matches!(out.outcome, Outcome::OutOfMemory | Outcome::TimedOut)
        || (out.exit_code == Some(1) && out.stderr.contains("out of memory"));
    assert!(stopped, "{out:?}");
    assert_healthy().await;
}

#[tokio::test]
async fn js_deep_recursion_ends_cleanly() {
    // QuickJS-WASI has no stack check: deep recursion traps inside the guest.
    let out = js("function f(n) { return f(n + 1) + 1; } f(0)").await;
    match &out.outcome {
        Outcome::Trapped(why) => assert!(why.contains("recursion"), "{why}"),
        other => panic!("expected a trap, got {other:?}: {out:?}"),
    }
    assert_healthy().await;
}

#[tokio::test]
async fn js_moderate_recursion_works() {
    let out = js("function f(n) { return n == 0 ? 0 : f(n - 1) + 1 } console.log(f(150))").await;
    assert_eq!(out.stdout, "150\n", "{out:?}");
}

#[tokio::test]
async fn js_cannot_see_host_files() {
    let out = js("const [f, err] = [std.open('/etc/passwd', 'r'), 0]; console.log(f === null, os.readdir('/')[0])").await;
    assert_eq!(out.stdout, "true [ '.', '..' ]\n", "{out:?}");
}
