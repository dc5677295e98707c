//! Python behaves like `python -c`: output, exit codes, tracebacks, stdin, unicode.

use robit_sandbox::{Language, Limits, Outcome};

use crate::common::{py, run_with};

#[tokio::test]
async fn python_prints_to_stdout_and_exits_zero() {
    let out = py("print('hello'); print(6 * 7)").await;
    assert_eq!(out.stdout, "hello\n42\n");
    assert_eq!(out.stderr, "");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.outcome, Outcome::Finished);
    assert!(out.files.is_empty());
}

#[tokio::test]
async fn python_exception_gives_a_traceback_and_exit_one() {
    let out = py("print('before')\n1/0").await;
    assert_eq!(out.stdout, "before\n");
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(out.outcome, Outcome::Finished);
    // Like `python -c`: only the user's frame, not the bootstrap's.
    assert_eq!(
        out.stderr,
        "Traceback (most recent call last):\n  File \"<string>\", line 2, in <module>\nZeroDivisionError: division by zero\n"
    );
}

#[tokio::test]
async fn python_syntax_error_looks_like_python_c() {
    let out = py("x = (").await;
    assert_eq!(out.exit_code, Some(1));
    assert!(!out.stderr.contains("Traceback"), "{}", out.stderr);
    assert!(out.stderr.contains("SyntaxError"), "{}", out.stderr);
}

#[tokio::test]
async fn python_sys_exit_code_is_reported() {
    let out = py("import sys; print('bye'); sys.exit(3)").await;
    assert_eq!(out.stdout, "bye\n");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.outcome, Outcome::Finished);
}

#[tokio::test]
async fn python_stderr_is_separate() {
    let out = py("import sys; print('out'); print('err', file=sys.stderr)").await;
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn python_reads_stdin_after_the_code() {
    let out = run_with(
        Language::Python,
        "name = input()\nrest = __import__('sys').stdin.read()\nprint(f'hi {name}', rest.split())",
        b"ada\nx y\nz\n",
        Limits::default(),
    )
    .await;
    assert_eq!(out.stdout, "hi ada ['x', 'y', 'z']\n", "{out:?}");
}

#[tokio::test]
async fn python_stdin_is_empty_when_none_given() {
    let out = py("import sys; print(repr(sys.stdin.read()))").await;
    assert_eq!(out.stdout, "''\n");
}

#[tokio::test]
async fn python_unicode_round_trips() {
    let out = run_with(
        Language::Python,
        "s = input(); print('héllo 🐍 世界', s[::-1], len(s))",
        "ñandú 🦀".as_bytes(),
        Limits::default(),
    )
    .await;
    assert_eq!(out.stdout, "héllo 🐍 世界 🦀 údnañ 7\n");
}

#[tokio::test]
async fn python_invalid_utf8_output_is_decoded_lossily() {
    let out = py("import sys; sys.stdout.buffer.write(b'a\\xffb\\n')").await;
    assert_eq!(out.stdout, "a\u{fffd}b\n");
}

#[tokio::test]
async fn python_can_use_its_scratch_dir() {
    let out = py("open('notes.txt', 'w').write('kept')\nimport os\nprint(open('/notes.txt').read(), os.listdir('.'))").await;
    assert_eq!(out.stdout, "kept ['notes.txt']\n", "{out:?}");
}

#[tokio::test]
async fn python_stdlib_is_available() {
    let out = py("import json, re, math, collections, datetime, itertools, decimal, fractions, statistics\nprint(json.dumps({'a': math.pi > 3}), re.sub('a', 'b', 'aa'))").await;
    assert_eq!(out.stdout, "{\"a\": true} bb\n", "{out:?}");
}

#[tokio::test]
async fn python_system_exit_with_a_message_prints_it() {
    let out = py("raise SystemExit('bye now')").await;
    assert_eq!(out.stderr, "bye now\n");
    assert_eq!(out.exit_code, Some(1));
}

#[tokio::test]
async fn python_atexit_handlers_run() {
    let out = py("import atexit\natexit.register(lambda: print('at exit'))\nprint('main')").await;
    assert_eq!(out.stdout, "main\nat exit\n");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn python_exception_inside_except_shows_both_tracebacks() {
    let out = py("try:\n    1/0\nexcept Exception:\n    raise ValueError('second')").await;
    assert_eq!(out.exit_code, Some(1));
    assert!(out.stderr.contains("ZeroDivisionError"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("During handling of the above exception"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.trim_end().ends_with("ValueError: second"),
        "{}",
        out.stderr
    );
}
