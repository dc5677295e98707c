//! Files in and out of a run's scratch directory: the user's attachments are written there
//! before the code starts, and what the program leaves there is read back afterwards.
//!
//! The scratch directory is the guest's whole file system (mounted at `/`) and the guest has
//! ended by the time it is read, so nothing races us. The guest can still leave anything in
//! it, so reading back trusts nothing: symlinks, devices and other non-regular entries are
//! skipped (a symlink could point at a host file, and following it on the host side would
//! leak that file), the walk is bounded in depth and entries, and the count and size limits
//! of [`Limits`] decide what is read at all.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::config::Limits;

/// A file placed in the scratch directory before the program starts.
#[derive(Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The name the program sees (`data.csv`); made safe by [`safe_name`] before use.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for InputFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputFile")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Subdirectories deeper than this are not searched for output files.
const MAX_DEPTH: usize = 4;
/// Directory entries looked at in one walk, so a program that creates a million empty files
/// cannot make the host spend long listing them.
const MAX_ENTRIES: usize = 2_000;
/// Longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 100;

/// A file name that stays inside the scratch directory: one path component of plain
/// characters, not hidden (which also keeps it clear of QuickJS's `/.robit`).
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '+' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "file".to_string()
    } else {
        cleaned
    }
}

/// Writes `files` into `dir` under safe, distinct names; returns the names used, each with
/// the bytes written, so unchanged inputs can be left out of the output.
pub fn write_inputs(dir: &Path, files: &[InputFile]) -> io::Result<HashMap<String, Vec<u8>>> {
    let mut written = HashMap::new();
    for file in files {
        let base = safe_name(&file.name);
        let mut name = base.clone();
        let mut n = 1;
        while written.contains_key(&name) {
            n += 1;
            name = match base.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
                _ => format!("{base}-{n}"),
            };
        }
        fs::write(dir.join(&name), &file.bytes)?;
        written.insert(name, file.bytes.clone());
    }
    Ok(written)
}

/// What the program left behind.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<(String, Vec<u8>)>,
    pub left_out: Vec<String>,
}

/// Reads back the regular files under `dir` (names relative, `/`-separated, sorted), leaving
/// out inputs the program did not change and anything over the limits.
pub fn collect_outputs(
    dir: &Path,
    inputs: &HashMap<String, Vec<u8>>,
    limits: &Limits,
) -> Collected {
    collect_with(dir, inputs, limits, read_at_most)
}

/// [`collect_outputs`] with the reader as a parameter, so a test can see what is read.
fn collect_with(
    dir: &Path,
    inputs: &HashMap<String, Vec<u8>>,
    limits: &Limits,
    mut read: impl FnMut(&Path, u64) -> io::Result<Vec<u8>>,
) -> Collected {
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    walk(dir, "", 0, &mut budget, &mut found);
    found.sort();
    let mut out = Collected::default();
    let mut over_count = 0usize;
    for (name, len) in found {
        if len > limits.max_file_bytes {
            out.left_out.push(format!(
                "{name} ({len} bytes, over the {} byte limit)",
                limits.max_file_bytes
            ));
            continue;
        }
        // Decide from the metadata whether the file can be returned at all, before reading
        // it: only an input of unchanged length may still turn out to be left out as
        // unchanged, and inputs are the host's own, bounded files.
        let input = inputs.get(&name).filter(|b| b.len() as u64 == len);
        if out.files.len() >= limits.max_files && input.is_none() {
            over_count += 1;
            continue;
        }
        let bytes = match read(&dir.join(&name), len) {
            Ok(b) => b,
            Err(e) => {
                out.left_out.push(format!("{name} (unreadable: {e})"));
                continue;
            }
        };
        if input == Some(&bytes) {
            continue;
        }
        if out.files.len() >= limits.max_files {
            over_count += 1;
            continue;
        }
        out.files.push((name, bytes));
    }
    if over_count > 0 {
        out.left_out.push(format!(
            "{over_count} more file(s): at most {} are returned",
            limits.max_files
        ));
    }
    if budget == 0 {
        out.left_out
            .push(format!("files beyond the first {MAX_ENTRIES} entries"));
    }
    out
}

/// Reads at most `len` bytes (the size the walk saw), so a file that grew since cannot make
/// the host read more than was counted.
fn read_at_most(path: &Path, len: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    fs::File::open(path)?.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    budget: &mut usize,
    found: &mut Vec<(String, u64)>,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // `DirEntry::metadata` does not follow symlinks: a link is seen as a link and skipped.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_file() {
            found.push((rel, meta.len()));
        } else if kind.is_dir() && depth < MAX_DEPTH {
            walk(&entry.path(), &rel, depth + 1, budget, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_files: usize, max_file_bytes: u64) -> Limits {
        Limits {
            max_files,
            max_file_bytes,
            ..Limits::default()
        }
    }

    #[test]
    fn names_stay_one_plain_component() {
        assert_eq!(safe_name("data.csv"), "data.csv");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Users\\a\\notes.txt"), "notes.txt");
        assert_eq!(safe_name(".robit"), "robit");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name("a;b|c.txt"), "a_b_c.txt");
    }

    #[test]
    fn duplicate_input_names_get_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let f = |b: &[u8]| InputFile {
            name: "a.txt".into(),
            bytes: b.to_vec(),
        };
        let written = write_inputs(dir.path(), &[f(b"1"), f(b"2")]).unwrap();
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"1");
        assert_eq!(fs::read(dir.path().join("a-2.txt")).unwrap(), b"2");
        assert_eq!(written.len(), 2);
    }

    #[test]
    fn outputs_skip_unchanged_inputs_links_and_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = write_inputs(
            dir.path(),
            &[
                InputFile {
                    name: "in.txt".into(),
                    bytes: b"same".to_vec(),
                },
                InputFile {
                    name: "edited.txt".into(),
                    bytes: b"old".to_vec(),
                },
            ],
        )
        .unwrap();
        fs::write(dir.path().join("edited.txt"), b"new").unwrap();
        fs::write(dir.path().join("out.csv"), b"a,b\n").unwrap();
        fs::write(dir.path().join("big.bin"), vec![0u8; 100]).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/x.txt"), b"x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();

        let got = collect_outputs(dir.path(), &inputs, &limits(10, 50));
        let names: Vec<&str> = got.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["edited.txt", "out.csv", "sub/x.txt"]);
        assert_eq!(got.files[1].1, b"a,b\n");
        assert_eq!(got.left_out.len(), 1);
        assert!(
            got.left_out[0].starts_with("big.bin (100 bytes"),
            "{:?}",
            got.left_out
        );
    }

    #[test]
    fn files_past_the_count_limit_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut read = Vec::new();
        let got = collect_with(dir.path(), &HashMap::new(), &limits(1, 50), |p, len| {
            read.push(p.file_name().unwrap().to_string_lossy().into_owned());
            read_at_most(p, len)
        });
        assert_eq!(got.files, [("a".to_string(), b"x".to_vec())]);
        assert_eq!(got.left_out, ["2 more file(s): at most 1 are returned"]);
        assert_eq!(read, ["a"], "only the file that is returned is read");
    }

    #[test]
    fn outputs_past_the_count_limit_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
        }
        let got = collect_outputs(dir.path(), &HashMap::new(), &limits(2, 50));
        assert_eq!(got.files.len(), 2);
        assert_eq!(got.left_out, ["3 more file(s): at most 2 are returned"]);
    }
}
