//! Relative links and `#anchors`: each must name a file that exists and, with an anchor, a
//! heading of that file (by mdBook's ids). Links with a scheme (`https:`) are not followed:
//! the check runs offline.
//!
//! A chapter of the book must also link only inside the book's source directory, to chapters
//! `SUMMARY.md` lists: mdBook copies nothing else into the HTML, so any other target works in
//! a checkout and is a 404 in the built book. Name such a file as code (`docker/compose.yaml`)
//! instead; the command check makes sure it exists.

use crate::markdown::{heading_ids, links, Doc};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The chapters `SUMMARY.md` lists (canonical paths), and the problems found reading it.
pub fn summary_chapters(book: &Path) -> (BTreeSet<PathBuf>, Vec<String>) {
    let summary = book.join("SUMMARY.md");
    let mut chapters = BTreeSet::new();
    let mut problems = Vec::new();
    match Doc::read(&summary) {
        Err(e) => problems.push(e),
        Ok(doc) => {
            for link in links(&doc) {
                match book.join(&link.dest).canonicalize() {
                    Ok(path) => {
                        chapters.insert(path);
                    }
                    Err(e) => problems.push(format!(
                        "{}:{}: chapter `{}`: {e}",
                        summary.display(),
                        link.line,
                        link.dest
                    )),
                }
            }
        }
    }
    (chapters, problems)
}

/// Every Markdown file of the book's source directory but `SUMMARY.md` and the build output.
pub fn book_sources(book: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![book.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path != book.join("book") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "md") && path != book.join("SUMMARY.md")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Checks the links of `files`; `book` is the book's source directory and `chapters` what
/// `SUMMARY.md` lists.
pub fn check(files: &[PathBuf], book: &Path, chapters: &BTreeSet<PathBuf>) -> Vec<String> {
    let mut problems = Vec::new();
    let book = match book.canonicalize() {
        Ok(b) => b,
        Err(e) => return vec![format!("{}: {e}", book.display())],
    };
    let mut ids: HashMap<PathBuf, Result<BTreeSet<String>, String>> = HashMap::new();
    let mut ids_of = |path: &Path| {
        ids.entry(path.to_path_buf())
            .or_insert_with(|| Doc::read(path).map(|d| heading_ids(&d).into_iter().collect()))
            .clone()
    };
    for file in files {
        let doc = match Doc::read(file) {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let file = match file.canonicalize() {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let in_book = file.starts_with(&book);
        let here = format!("{}", doc.path.display());
        for link in links(&doc) {
            if has_scheme(&link.dest) {
                continue;
            }
            let (path, anchor) = match link.dest.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.dest.as_str(), None),
            };
            let at = format!("{here}:{}: `{}`", link.line, link.dest);
            let target = if path.is_empty() {
                file.clone()
            } else {
                match file
                    .parent()
                    .expect("a file has a directory")
                    .join(path)
                    .canonicalize()
                {
                    Ok(t) => t,
                    Err(_) => {
                        problems.push(format!("{at}: no such file"));
                        continue;
                    }
                }
            };
            if in_book && !target.starts_with(&book) {
                problems.push(format!(
                    "{at}: leaves the book ({}), so it is a 404 in the built HTML; name the file \
                     as code instead",
                    book.display()
                ));
                continue;
            }
            let is_md = target.extension().is_some_and(|e| e == "md");
            if in_book && is_md && target != file && !chapters.contains(&target) {
                problems.push(format!(
                    "{at}: not a chapter listed in SUMMARY.md, so mdBook does not render it"
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if !is_md {
                problems.push(format!("{at}: an anchor into a file that is not Markdown"));
                continue;
            }
            match ids_of(&target) {
                Err(e) => problems.push(format!("{at}: {e}")),
                Ok(ids) if !ids.contains(anchor) => problems.push(format!(
                    "{at}: no heading with id `{anchor}` in {}",
                    target.display()
                )),
                Ok(_) => {}
            }
        }
    }
    problems
}

/// `https://…`, `mailto:…`: a URL scheme before any `/`, `#` or `.`.
fn has_scheme(dest: &str) -> bool {
    match dest.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_links_and_anchors_and_links_out_of_the_book_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let book = root.join("docs");
        std::fs::create_dir_all(&book).unwrap();
        std::fs::write(root.join("NOTES.md"), "# Notes\n").unwrap();
        std::fs::write(
            book.join("SUMMARY.md"),
            "# Summary\n- [A](a.md)\n- [B](b.md)\n",
        )
        .unwrap();
        std::fs::write(
            book.join("a.md"),
            "# A\n## Here it is\n\
             [ok](#here-it-is) [ok](b.md#bee) [ok](https://example.com/x.md#y)\n\
             [bad anchor](#nowhere) [bad file](c.md) [bad anchor](b.md#nope)\n\
             [out](../NOTES.md) [orphan](orphan.md)\n",
        )
        .unwrap();
        std::fs::write(book.join("b.md"), "# Bee\n").unwrap();
        std::fs::write(book.join("orphan.md"), "# Orphan\n").unwrap();
        std::fs::write(
            root.join("README.md"),
            "[ok](docs/a.md#here-it-is) [ok](NOTES.md) [bad](docs/a.md#gone)\n",
        )
        .unwrap();

        let (chapters, problems) = summary_chapters(&book);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(book_sources(&book).len(), 3);
        let files = [book.join("a.md"), book.join("b.md"), root.join("README.md")];
        let problems = check(&files, &book, &chapters);
        let expected = [
            "`#nowhere`: no heading with id `nowhere`",
            "`c.md`: no such file",
            "`b.md#nope`: no heading with id `nope`",
            "`../NOTES.md`: leaves the book",
            "`orphan.md`: not a chapter listed in SUMMARY.md",
            "`docs/a.md#gone`: no heading with id `gone`",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(problem.contains(want), "{problem} should say {want}");
        }
    }
}
