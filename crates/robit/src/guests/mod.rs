//! The sandbox guests from the binary's side: where each is looked for ([`locate`]) and how
//! `robit guests fetch` downloads, verifies and installs them ([`fetch`]).
//!
//! The pin (package, version, digests) is robit-sandbox's, so the sandbox and the installer
//! cannot disagree about what a good guest is. `scripts/fetch-guests` repeats it because CI
//! runs the script before anything is built; a test below keeps the copies equal.

pub mod fetch;
pub mod locate;

use robit_sandbox::Language;
use std::path::PathBuf;

/// One guest: the file it is installed as, its member in the wheel and its pinned digest.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    pub language: Language,
    pub file: &'static str,
    pub member: &'static str,
    pub sha256: &'static str,
}

/// Both guests, Python first (the order `robit_sandbox::Sandbox::guest_status` reports in).
pub const GUESTS: [Guest; 2] = [
    Guest {
        language: Language::Python,
        file: "python.wasm",
        member: "bin/python.wasm",
        sha256: robit_sandbox::PYTHON_WASM_SHA256,
    },
    Guest {
        language: Language::JavaScript,
        file: "quickjs.wasm",
        member: "bin/quickjs.wasm",
        sha256: robit_sandbox::QUICKJS_WASM_SHA256,
    },
];

/// The user's guest directory, `$XDG_DATA_HOME/robit/guests` (else
/// `~/.local/share/robit/guests`; on Windows under `%APPDATA%`), or `None` without a home
/// directory. This is where `robit guests fetch` installs, so an installed binary finds its
/// guests from any working directory.
pub fn data_dir() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().ok()?;
    Some(base.data_dir().join("robit").join("guests"))
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `NAME="…"` in the script, as bash would see it.
    fn script_value(script: &str, name: &str) -> String {
        let prefix = format!("{name}=\"");
        let line = script
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("scripts/fetch-guests has no {name}=\"…\" line"));
        line[prefix.len()..].trim_end_matches('"').to_string()
    }

    #[test]
    fn the_script_pins_the_same_wheel_and_digests_as_the_binary() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/fetch-guests");
        let script = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            script_value(&script, "WHEEL_VERSION"),
            robit_sandbox::GUEST_PACKAGE_VERSION
        );
        assert_eq!(
            script_value(&script, "PY_SHA"),
            robit_sandbox::PYTHON_WASM_SHA256
        );
        assert_eq!(
            script_value(&script, "JS_SHA"),
            robit_sandbox::QUICKJS_WASM_SHA256
        );
        assert!(
            script.contains(&format!("{}==$WHEEL_VERSION", robit_sandbox::GUEST_PACKAGE)),
            "scripts/fetch-guests downloads another package than {}",
            robit_sandbox::GUEST_PACKAGE
        );
    }

    #[test]
    fn the_data_dir_follows_xdg_data_home() {
        // Read-only check of the current environment: when XDG_DATA_HOME is an absolute path
        // the guests live under it (the lookup tests pass directories explicitly instead of
        // changing the process environment, which other tests share).
        match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
            Some(xdg) if xdg.is_absolute() && cfg!(unix) => {
                assert_eq!(data_dir().unwrap(), xdg.join("robit/guests"))
            }
            _ => {
                if let Some(d) = data_dir() {
                    assert!(d.ends_with("robit/guests"), "{}", d.display())
                }
            }
        }
    }
}
