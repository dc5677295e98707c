//! `robit run`: the sandbox from the command line, with the real guests.

use crate::support::{robit, text};

fn sandbox_env() -> Vec<(&'static str, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var("ROBIT_GUESTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("data/guests"));
    assert!(
        guests.join("python.wasm").exists(),
        "run scripts/fetch-guests first"
    );
    vec![
        (
            "ROBIT_SANDBOX__PYTHON_WASM",
            guests.join("python.wasm").display().to_string(),
        ),
        (
            "ROBIT_SANDBOX__QUICKJS_WASM",
            guests.join("quickjs.wasm").display().to_string(),
        ),
        (
            "ROBIT_SANDBOX__CACHE_DIR",
            root.join("data/cache").display().to_string(),
        ),
        ("ROBIT_SANDBOX__PYTHON_POOL_SIZE", "0".to_string()),
    ]
}

#[test]
fn run_python_inline_prints_its_output_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = robit(
        dir.path(),
        &["run", "python", "-c", "print('héllo', 6*7)"],
        &sandbox_env(),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "héllo 42\n");
    assert!(
        text(&out.stderr).contains("exit 0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_js_from_a_file_and_python_with_stdin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.js"),
        "console.log([3,4].map(x => x * x).join(' '))",
    )
    .unwrap();
    let out = robit(dir.path(), &["run", "js", "a.js"], &sandbox_env(), "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "9 16\n");

    let out = robit(
        dir.path(),
        &[
            "run",
            "python",
            "-c",
            "import sys; print(sys.stdin.read().upper())",
            "--stdin",
        ],
        &sandbox_env(),
        "shout",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "SHOUT\n");
}

#[test]
fn a_failing_program_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = robit(
        dir.path(),
        &["run", "python", "-c", "raise SystemExit(3)"],
        &sandbox_env(),
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exit 3"),
        "{}",
        text(&out.stderr)
    );
}
