//! JavaScript on QuickJS: console output, exit codes, stdin, unicode.

use robit_sandbox::{Language, Limits, Outcome};

use crate::common::{js, run_with};

#[tokio::test]
async fn js_console_log_and_print_write_stdout() {
    let out = js("console.log('hello', 1 + 1); print('printed')").await;
    assert_eq!(out.stdout, "hello 2\nprinted\n");
    assert_eq!(out.stderr, "");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.outcome, Outcome::Finished);
}

#[tokio::test]
async fn js_console_error_writes_stderr() {
    let out = js("console.error('bad'); console.warn('careful'); console.log('fine')").await;
    assert_eq!(out.stdout, "fine\n");
    assert_eq!(out.stderr, "bad\ncareful\n");
}

#[tokio::test]
async fn js_objects_are_formatted_readably() {
    let out = js("console.log({a: 1, b: [1, 'x']}, [], new Map([[1, 2]]))").await;
    assert_eq!(out.stdout, "{ a: 1, b: [ 1, 'x' ] } [] Map(1) { 1 => 2 }\n");
}

#[tokio::test]
async fn js_uncaught_exception_exits_one() {
    let out = js("console.log('before'); throw new Error('boom')").await;
    assert_eq!(out.stdout, "before\n");
    assert_eq!(out.exit_code, Some(1));
    assert!(out.stderr.contains("Error: boom"), "{}", out.stderr);
    assert_eq!(out.outcome, Outcome::Finished);
}

#[tokio::test]
async fn js_exit_code_is_reported() {
    let out = js("std.exit(4)").await;
    assert_eq!(out.exit_code, Some(4));
}

#[tokio::test]
async fn js_reads_stdin() {
    let out = run_with(
        Language::JavaScript,
        "const s = std.in.readAsString(); console.log(s.trim().split('\\n').map(Number).reduce((a, b) => a + b))",
        b"1\n2\n39\n",
        Limits::default(),
    )
    .await;
    assert_eq!(out.stdout, "42\n", "{out:?}");
}

#[tokio::test]
async fn js_unicode_round_trips() {
    let out = run_with(
        Language::JavaScript,
        "const s = std.in.readAsString(); console.log('héllo 🐍 世界', [...s].reverse().join(''))",
        "ñandú 🦀".as_bytes(),
        Limits::default(),
    )
    .await;
    assert_eq!(out.stdout, "héllo 🐍 世界 🦀 údnañ\n");
}

#[tokio::test]
async fn js_timers_run() {
    let out = js("setTimeout(() => console.log('later'), 5); console.log('now')").await;
    assert_eq!(out.stdout, "now\nlater\n");
}
