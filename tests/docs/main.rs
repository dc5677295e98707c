//! The book (`docs/`, built by mdBook) and the README checked against the tree: the
//! configuration chapter names exactly the keys of `robit.example.toml` with their defaults,
//! every relative link and anchor resolves, and every command shown runs as written as far as
//! it can be checked without running it (the real `robit` binary parses it; the scripts and
//! files it names exist).
//!
//! Reads files and runs `robit … --help` only: no service, database or network. `mdbook
//! build docs` in `.ci/run` proves the book builds; this proves it is true.

mod commands;
mod config_keys;
mod links;
mod markdown;

use markdown::Doc;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn book() -> PathBuf {
    repo().join("docs")
}

/// The configuration reference: the chapter whose tables document every key.
fn configuration_chapter() -> PathBuf {
    book().join("configuration.md")
}

/// Everything a reader is shown: the book's chapters and the top-level documents.
fn documents() -> Vec<PathBuf> {
    let mut files = links::book_sources(&book());
    for top in ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"] {
        files.push(repo().join(top));
    }
    files
}

fn fail_with(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

fn documented_keys() -> BTreeSet<String> {
    let doc = Doc::read(&configuration_chapter()).unwrap();
    match config_keys::chapter_keys(&doc) {
        Ok(keys) => keys.into_keys().collect(),
        Err(problems) => {
            fail_with(
                "the configuration chapter's key tables are malformed",
                &problems,
            );
            unreachable!()
        }
    }
}

#[test]
fn the_configuration_chapter_documents_exactly_the_keys_of_the_example() {
    let doc = Doc::read(&configuration_chapter()).unwrap();
    let documented = match config_keys::chapter_keys(&doc) {
        Ok(keys) => keys,
        Err(problems) => return fail_with("malformed key tables", &problems),
    };
    let example = std::fs::read_to_string(repo().join("robit.example.toml")).unwrap();
    let example = config_keys::example_keys(&example).unwrap();
    assert!(
        example.len() > 100,
        "robit.example.toml should name every key; found {}",
        example.len()
    );
    fail_with(
        "the configuration chapter and robit.example.toml disagree",
        &config_keys::compare(&doc, &documented, &example),
    );
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let book = book();
    let (chapters, mut problems) = links::summary_chapters(&book);
    for source in links::book_sources(&book) {
        let listed = source
            .canonicalize()
            .is_ok_and(|path| chapters.contains(&path));
        if !listed {
            problems.push(format!(
                "{}: not listed in docs/SUMMARY.md, so the book leaves it out",
                source.display()
            ));
        }
    }
    let mut files = documents();
    files.push(book.join("SUMMARY.md"));
    problems.extend(links::check(&files, &book, &chapters));
    fail_with("broken links", &problems);
}

#[test]
fn every_command_and_path_shown_exists() {
    let robit = robit_system_tests::robit_bin();
    let documented = documented_keys();
    let mut shown = Vec::new();
    let mut problems = Vec::new();
    for file in documents() {
        let doc = Doc::read(&file).unwrap();
        shown.extend(commands::shown(&doc));
        problems.extend(commands::check_inline_paths(&doc, &repo()));
    }
    assert!(
        shown
            .iter()
            .any(|s| s.words.first().is_some_and(|w| w == "robit")),
        "no robit command found in the docs: is the shell block parsing broken?"
    );
    problems.extend(commands::check(&shown, &repo(), &robit, &documented));
    fail_with("commands and paths that do not match the tree", &problems);
}
