//! `robit chat` in a terminal: the real binary in a pseudo-terminal with the fake model,
//! its screen read back through a terminal emulator (vt100), as a person would see it.

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use robit_testkit::llm::{FakeLlm, Reply};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any one thing may take to show before the test fails (a loaded CI machine is
/// slow, but never this slow).
const DEADLINE: Duration = Duration::from_secs(30);

struct Screen {
    parser: vt100::Parser,
    raw: Vec<u8>,
    closed: bool,
}

/// `robit chat` running in a pseudo-terminal of 100×30.
struct Pty {
    screen: Arc<(Mutex<Screen>, Condvar)>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    // Dropping the master hangs the terminal up; it lives as long as the test.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Pty {
    fn spawn(dir: &Path, env: &[(&str, String)]) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 30,
                cols: 100,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_robit"));
        cmd.arg("chat");
        cmd.cwd(dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("ROBIT_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("TERM", "xterm-256color");
        cmd.env("XDG_DATA_HOME", dir.join(".xdg-data"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new((
            Mutex::new(Screen {
                parser: vt100::Parser::new(30, 100, 0),
                raw: Vec::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut s = lock.lock().unwrap();
                if n == 0 {
                    s.closed = true;
                    changed.notify_all();
                    return;
                }
                s.parser.process(&buf[..n]);
                s.raw.extend_from_slice(&buf[..n]);
                changed.notify_all();
            }
        });
        Pty {
            screen,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits until `ready` holds for the screen (or the terminal closed); the screen's text.
    fn wait_for(&self, what: &str, ready: impl Fn(&Screen) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let (lock, changed) = &*self.screen;
        let mut s = lock.lock().unwrap();
        loop {
            if ready(&s) {
                return s.parser.screen().contents();
            }
            let now = Instant::now();
            assert!(
                now < deadline && !s.closed,
                "waiting for {what}: {}; the screen:\n{}",
                if s.closed {
                    "the terminal closed"
                } else {
                    "timed out"
                },
                s.parser.screen().contents()
            );
            s = changed.wait_timeout(s, deadline - now).unwrap().0;
        }
    }

    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?} on the screen"), |s| {
            s.parser.screen().contents().contains(text)
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_in_a_terminal_streams_markdown_stops_on_ctrl_c_and_quits_on_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    llm.push(
        Reply::text("Markdown **works** here:\n\n- one item\n\n```python\nprint(1)\n```")
            .chunk_words(1)
            .usage(11, 7),
    );
    let slow: Vec<String> = (1..=200).map(|i| format!("w{i}")).collect();
    llm.push(
        Reply::text(slow.join(" "))
            .chunk_words(1)
            .delay(Duration::from_millis(100)),
    );
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
        ("ROBIT_LLM__MODEL", "fake-model".to_string()),
        ("ROBIT_SANDBOX__ENABLED", "false".to_string()),
    ];
    let d = dir.path().to_path_buf();
    let mut pty = tokio::task::spawn_blocking(move || Pty::spawn(&d, &env))
        .await
        .unwrap();
    let pty = tokio::task::spawn_blocking(move || {
        // The UI is up: the status line names the model, the input line its conversation.
        pty.wait_for_text("fake-model");
        pty.wait_for_text(" default ");

        pty.type_keys("what is robit?\r");
        let shown = pty.wait_for("the whole answer, rendered", |s| {
            let text = s.parser.screen().contents();
            text.contains("print(1)") && text.contains("18 tokens")
        });
        assert!(shown.contains("› what is robit?"), "{shown}");
        assert!(shown.contains("Markdown works here:"), "{shown}");
        assert!(shown.contains("• one item"), "{shown}");
        assert!(!shown.contains("**"), "Markdown is rendered: {shown}");

        // Ctrl-C while an answer streams stops it; the process goes on.
        pty.type_keys("tell me more\r");
        pty.wait_for_text("w3");
        pty.type_keys("\u{3}");
        let shown = pty.wait_for_text("Stopped by you.");
        assert!(!shown.contains("w200"), "{shown}");
        pty.wait_for("the stopped turn to end", |s| {
            !s.parser.screen().contents().contains("answering")
        });

        // The second Ctrl-C quits, and the terminal is as it was.
        pty.type_keys("\u{3}");
        pty.wait_for("robit to exit", |s| s.closed);
        pty
    })
    .await
    .unwrap();
    let mut pty = pty;
    let status = pty.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let (lock, _) = &*pty.screen;
    let s = lock.lock().unwrap();
    assert!(
        !s.parser.screen().alternate_screen(),
        "left the alternate screen"
    );
    assert!(
        !s.parser.screen().hide_cursor(),
        "the cursor is shown again"
    );
    let raw = String::from_utf8_lossy(&s.raw);
    let entered = raw
        .rfind("\u{1b}[?1049h")
        .expect("entered the alternate screen");
    let left = raw
        .rfind("\u{1b}[?1049l")
        .expect("left the alternate screen");
    assert!(left > entered);
    let paste_on = raw.rfind("\u{1b}[?2004h").expect("bracketed paste was on");
    let paste_off = raw
        .rfind("\u{1b}[?2004l")
        .expect("bracketed paste is off again");
    assert!(paste_off > paste_on);
    drop(s);
    // One request per line: stopping is not failing, so nothing was retried.
    assert_eq!(llm.chat_requests().len(), 2);
}

/// The sandbox as the person sees it: a `/run` is a panel with its exit status, the file it
/// wrote is saved under `console.files_dir` and its path shown; ↑ brings the line back.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_in_the_terminal_shows_a_panel_and_saves_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var("ROBIT_GUESTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("data/guests"));
    assert!(
        guests.join("python.wasm").exists(),
        "run scripts/fetch-guests first"
    );
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__BASE_URL", llm.base_url()),
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
    ];
    let d = dir.path().to_path_buf();
    let mut pty = tokio::task::spawn_blocking(move || Pty::spawn(&d, &env))
        .await
        .unwrap();
    let files = dir.path().join("robit-files/default");
    tokio::task::spawn_blocking(move || {
        pty.wait_for_text(" default ");
        let line = "/run python open('out.csv', 'w').write('a,b'); print(6 * 7)";
        pty.type_keys(&format!("{line}\r"));
        let shown = pty.wait_for_text("📎 saved");
        assert!(shown.contains("╭─ ▶ sandbox run · exit 0 · "), "{shown}");
        assert!(shown.contains("│ 42"), "{shown}");
        let saved = files.join("out.csv");
        assert!(
            shown.contains(&saved.canonicalize().unwrap().display().to_string()),
            "{shown}"
        );
        assert_eq!(std::fs::read_to_string(&saved).unwrap(), "a,b");

        // ↑ recalls the line into the input box (the row above its bottom border).
        pty.type_keys("\u{1b}[A");
        pty.wait_for("the line recalled into the input", |s| {
            let rows: Vec<String> = s.parser.screen().rows(0, 100).collect();
            rows[27].contains("/run python open")
        });
        pty.type_keys("\u{4}"); // Ctrl-D on a non-empty line does nothing…
        pty.type_keys("\u{15}\u{4}"); // …after Ctrl-U empties it, it quits.
        pty.wait_for("robit to exit", |s| s.closed);
        let status = pty.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    })
    .await
    .unwrap();
}
