//! Where each guest is looked for: the path the operator configured, if any; otherwise
//! `data/guests` of the working directory (a checkout after `scripts/fetch-guests`), then the
//! user's data directory (an installed binary after `robit guests fetch`).
//!
//! A configured path is the only one tried: falling back from it would run a guest from a
//! place the deployment did not name, and hide the mistake `robit doctor` should report.

use super::{Guest, GUESTS};
use crate::config::SandboxSection;
use robit_sandbox::Language;
use std::path::{Path, PathBuf};

/// Where a guest was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `sandbox.python_wasm` / `sandbox.quickjs_wasm` names it (present or not).
    Configured,
    /// `data/guests` under the working directory.
    WorkingDir,
    /// The user's data directory.
    DataDir,
    /// Not configured and in none of the default places.
    NotFound,
}

/// The outcome of looking for one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub language: Language,
    /// What the sandbox is given: the configured path, the first default place holding the
    /// file, or (found nowhere) where `robit guests fetch` would install it, so the error
    /// names the place a fix would fill.
    pub path: PathBuf,
    pub source: Source,
    /// Every path tried, in order.
    pub looked: Vec<PathBuf>,
}

impl Location {
    /// How `robit doctor` says where the guest came from.
    pub fn describe(&self) -> String {
        match self.source {
            Source::Configured => format!(
                "set by sandbox.{}",
                match self.language {
                    Language::Python => "python_wasm",
                    Language::JavaScript => "quickjs_wasm",
                }
            ),
            Source::WorkingDir => "found in data/guests of the working directory".to_string(),
            Source::DataDir => "found in the user's data directory".to_string(),
            Source::NotFound => format!(
                "looked in {}",
                self.looked
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Looks for `guest` given the configured path, the working directory and the data
/// directory (`None` without a home directory).
pub fn locate(
    guest: &Guest,
    configured: Option<&Path>,
    cwd: &Path,
    data_dir: Option<&Path>,
) -> Location {
    if let Some(path) = configured {
        return Location {
            language: guest.language,
            path: path.to_path_buf(),
            source: Source::Configured,
            looked: vec![path.to_path_buf()],
        };
    }
    let mut candidates = vec![(cwd.join("data/guests").join(guest.file), Source::WorkingDir)];
    if let Some(d) = data_dir {
        candidates.push((d.join(guest.file), Source::DataDir));
    }
    let looked: Vec<PathBuf> = candidates.iter().map(|(p, _)| p.clone()).collect();
    let (path, source) = candidates
        .iter()
        .find(|(p, _)| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            let (last, _) = candidates
                .last()
                .expect("the working directory is a candidate");
            (last.clone(), Source::NotFound)
        });
    Location {
        language: guest.language,
        path,
        source,
        looked,
    }
}

/// Both guests for this configuration, from this process's working and data directories.
pub fn locate_all(section: &SandboxSection) -> [Location; 2] {
    // A working directory that cannot be read leaves relative lookups as they were.
    let cwd = std::env::current_dir().unwrap_or_default();
    let data = super::data_dir();
    let configured = [
        configured(&section.python_wasm),
        configured(&section.quickjs_wasm),
    ];
    [0, 1].map(|i| locate(&GUESTS[i], configured[i], &cwd, data.as_deref()))
}

/// A configured path, where an empty one counts as unset: the example file lists the keys
/// empty, and the loader already treats an empty `ROBIT_*` variable as not set.
fn configured(path: &Option<PathBuf>) -> Option<&Path> {
    path.as_deref().filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _tmp: tempfile::TempDir,
        cwd: PathBuf,
        data: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("work");
        let data = tmp.path().join("xdg/robit/guests");
        std::fs::create_dir_all(cwd.join("data/guests")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        Dirs {
            _tmp: tmp,
            cwd,
            data,
        }
    }

    fn put(path: &Path) {
        std::fs::write(path, b"\0asm").unwrap();
    }

    const PY: &Guest = &GUESTS[0];

    #[test]
    fn the_working_directory_comes_before_the_data_directory() {
        let d = dirs();
        put(&d.cwd.join("data/guests/python.wasm"));
        put(&d.data.join("python.wasm"));
        let l = locate(PY, None, &d.cwd, Some(&d.data));
        assert_eq!(l.source, Source::WorkingDir);
        assert_eq!(l.path, d.cwd.join("data/guests/python.wasm"));
    }

    #[test]
    fn the_data_directory_serves_any_working_directory() {
        let d = dirs();
        put(&d.data.join("python.wasm"));
        let l = locate(PY, None, &d.cwd, Some(&d.data));
        assert_eq!(l.source, Source::DataDir);
        assert_eq!(l.path, d.data.join("python.wasm"));
        assert!(l.describe().contains("data directory"), "{}", l.describe());
    }

    #[test]
    fn a_configured_path_is_the_only_one_tried() {
        let d = dirs();
        put(&d.cwd.join("data/guests/python.wasm"));
        put(&d.data.join("python.wasm"));
        let own = d.cwd.join("elsewhere/python.wasm");
        let l = locate(PY, Some(&own), &d.cwd, Some(&d.data));
        assert_eq!(l.source, Source::Configured);
        assert_eq!(l.path, own);
        assert_eq!(l.looked, vec![own]);
        assert_eq!(l.describe(), "set by sandbox.python_wasm");
    }

    #[test]
    fn found_nowhere_it_points_at_where_fetch_installs_and_lists_the_places_tried() {
        let d = dirs();
        let l = locate(PY, None, &d.cwd, Some(&d.data));
        assert_eq!(l.source, Source::NotFound);
        assert_eq!(l.path, d.data.join("python.wasm"));
        assert_eq!(
            l.looked,
            vec![
                d.cwd.join("data/guests/python.wasm"),
                d.data.join("python.wasm")
            ]
        );
        let said = l.describe();
        assert!(said.contains(&d.data.display().to_string()), "{said}");
    }

    #[test]
    fn without_a_home_directory_only_the_working_directory_is_tried() {
        let d = dirs();
        let l = locate(&GUESTS[1], None, &d.cwd, None);
        assert_eq!(l.source, Source::NotFound);
        assert_eq!(l.path, d.cwd.join("data/guests/quickjs.wasm"));
        put(&d.cwd.join("data/guests/quickjs.wasm"));
        let l = locate(&GUESTS[1], None, &d.cwd, None);
        assert_eq!(l.source, Source::WorkingDir);
    }

    #[test]
    fn an_empty_setting_is_no_setting() {
        assert_eq!(configured(&Some(PathBuf::new())), None);
        assert_eq!(configured(&None), None);
        let own = PathBuf::from("/opt/robit/guests/python.wasm");
        assert_eq!(configured(&Some(own.clone())), Some(own.as_path()));
        let section = SandboxSection {
            python_wasm: Some(PathBuf::new()),
            ..Default::default()
        };
        assert_ne!(locate_all(&section)[0].source, Source::Configured);
    }

    #[test]
    fn a_directory_named_like_a_guest_is_not_a_guest() {
        let d = dirs();
        std::fs::create_dir_all(d.cwd.join("data/guests/python.wasm")).unwrap();
        put(&d.data.join("python.wasm"));
        assert_eq!(
            locate(PY, None, &d.cwd, Some(&d.data)).source,
            Source::DataDir
        );
    }
}
