//! Commands in fenced shell blocks (`sh`, `bash`, `shell`, `console`): what they name must
//! exist in the tree as it is.
//!
//! - `robit …` (and `cargo run … -- …`): the real binary is run with the same arguments and
//!   `--help` appended. clap parses every argument before it acts on `--help`, so an unknown
//!   subcommand, an unknown flag or a value it rejects fails, and nothing is executed. The
//!   commands must therefore be written with real values (`--port 8900`, not `--port N`).
//! - A path under one of the repository's top-level directories (`scripts/fetch-guests`,
//!   `docker/compose.yaml`) must exist, relative to the repository root, where the docs say
//!   commands run; one run as a program must be executable. The same holds for such a path
//!   in inline code anywhere in the text (`crates/robit/src/config.rs`).
//! - A `ROBIT_SECTION__KEY` variable, and `--set key=value`, must name a documented key.
//!
//! Only a command in command position is taken for robit (after `|`, `&&`, `;`, `$(` or
//! variable assignments); `docker run … robit doctor` runs robit inside an image and is not
//! checked.

use crate::config_keys::{env_to_key, normalise};
use crate::markdown::{code_blocks, inline_code, Doc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const SHELLS: [&str; 5] = ["sh", "bash", "shell", "console", "zsh"];

/// Top-level directories of the repository whose paths are checked when a command shows one.
const TREE: [&str; 7] = [
    "scripts/",
    "tests/",
    "docker/",
    "crates/",
    "adapters/",
    "migrations/",
    "docs/",
];

/// One simple command: its words, where it was shown.
pub struct Shown {
    pub at: String,
    pub words: Vec<String>,
}

/// The simple commands of every shell block of `doc`.
pub fn shown(doc: &Doc) -> Vec<Shown> {
    let mut out = Vec::new();
    for block in code_blocks(doc) {
        if !SHELLS.contains(&block.lang.as_str()) {
            continue;
        }
        let mut logical = String::new();
        let mut start = 0;
        for (i, line) in block.text.lines().enumerate() {
            if logical.is_empty() {
                start = i;
            }
            let line = if block.lang == "console" {
                match line.trim_start().strip_prefix("$ ") {
                    Some(l) => l,
                    None if logical.is_empty() => continue, // output, not a command
                    None => line,
                }
            } else {
                line
            };
            if let Some(joined) = line.strip_suffix('\\') {
                logical.push_str(joined);
                logical.push(' ');
                continue;
            }
            logical.push_str(line);
            for words in lex(&logical) {
                out.push(Shown {
                    at: format!("{}:{}", doc.path.display(), block.line + 1 + start),
                    words,
                });
            }
            logical.clear();
        }
    }
    out
}

/// Splits a shell line into simple commands (at `|`, `&`, `;`, `(`, `)`), with quotes and
/// backslashes removed as the shell would; a `#` starting a word ends the line, and a
/// redirection ends its command's words.
fn lex(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut redirected = false;
    let mut chars = line.chars();
    let flush = |word: &mut String, in_word: &mut bool, cmd: &mut Vec<String>, skip: bool| {
        if *in_word && !skip {
            cmd.push(std::mem::take(word));
        }
        word.clear();
        *in_word = false;
    };
    while let Some(c) = chars.next() {
        let current = commands.last_mut().expect("never empty");
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                word.extend(chars.next());
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                in_word = true;
            }
            '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            '#' if !in_word => break,
            ' ' | '\t' => flush(&mut word, &mut in_word, current, redirected),
            '<' | '>' => {
                flush(&mut word, &mut in_word, current, redirected);
                redirected = true;
            }
            '|' | '&' | ';' | '(' | ')' => {
                flush(&mut word, &mut in_word, current, redirected);
                redirected = false;
                if !current.is_empty() {
                    commands.push(Vec::new());
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    let current = commands.last_mut().expect("never empty");
    flush(&mut word, &mut in_word, current, redirected);
    commands.retain(|c| !c.is_empty());
    commands
}

fn is_assignment(word: &str) -> Option<&str> {
    let (name, _) = word.split_once('=')?;
    let ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(name)
}

/// What one command asks of the tree.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    /// Arguments robit is run with.
    pub robit: Option<Vec<String>>,
    /// Paths in the tree, and whether each is run as a program.
    pub paths: Vec<(String, bool)>,
    /// Configuration keys named by variables or `--set`.
    pub keys: Vec<String>,
}

pub fn needs(words: &[String]) -> Needs {
    let mut needs = Needs::default();
    let mut rest = words;
    while let Some(first) = rest.first() {
        if is_assignment(first).is_some() || first == "sudo" {
            rest = &rest[1..];
        } else {
            break;
        }
    }
    for (i, word) in words.iter().enumerate() {
        let name = is_assignment(word).unwrap_or(word);
        if let Some(var) = name.strip_prefix("ROBIT_") {
            if var.contains("__") {
                needs.keys.push(normalise(&env_to_key(var)));
            }
        }
        if let Some(path) = tree_path(word) {
            let program = rest.first().is_some_and(|p| std::ptr::eq(p, &words[i]));
            needs.paths.push((path.to_string(), program));
        }
    }
    let args = match rest.first().map(String::as_str) {
        Some(p) if p == "robit" || p.ends_with("/robit") => Some(rest[1..].to_vec()),
        Some("cargo") if rest.get(1).map(String::as_str) == Some("run") => {
            let dashes = rest.iter().position(|w| w == "--").unwrap_or(rest.len());
            runs_robit(&rest[2..dashes]).then(|| rest[(dashes + 1).min(rest.len())..].to_vec())
        }
        _ => None,
    };
    if let Some(args) = &args {
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let setting = if arg == "--set" {
                it.next().map(String::as_str)
            } else {
                arg.strip_prefix("--set=")
            };
            if let Some((key, _)) = setting.and_then(|s| s.split_once('=')) {
                needs.keys.push(normalise(key.trim()));
            }
        }
    }
    needs.robit = args;
    needs
}

/// `word` as a path in the tree, when it names one (not a pattern or a placeholder).
fn tree_path(word: &str) -> Option<&str> {
    let path = word.strip_prefix("./").unwrap_or(word);
    let placeholder = ['*', '…', '<', '$', '{'].iter().any(|c| path.contains(*c));
    (TREE.iter().any(|t| path.starts_with(t)) && !placeholder).then_some(path)
}

/// Paths in the tree named in inline code (`scripts/fetch-guests [DIR]` names
/// `scripts/fetch-guests`) that do not exist.
pub fn check_inline_paths(doc: &Doc, repo: &Path) -> Vec<String> {
    inline_code(doc)
        .into_iter()
        .filter_map(|(code, line)| {
            let path = tree_path(code.split_whitespace().next()?)?;
            (!repo.join(path).exists()).then(|| {
                format!(
                    "{}:{line}: `{code}`: no such path {path}",
                    doc.path.display()
                )
            })
        })
        .collect()
}

/// Whether `cargo run` with these options runs the robit binary: the default binary of the
/// workspace, unless an example or another package or binary is named.
fn runs_robit(options: &[String]) -> bool {
    let mut it = options.iter();
    while let Some(option) = it.next() {
        let named = match option.as_str() {
            "-p" | "--package" | "--bin" => it.next().map(String::as_str),
            "--example" => return false,
            o => o
                .strip_prefix("--package=")
                .or_else(|| o.strip_prefix("--bin="))
                .or_else(|| o.strip_prefix("-p")),
        };
        if named.is_some_and(|n| !n.is_empty() && n != "robit") {
            return false;
        }
    }
    true
}

/// Checks every shown command against the tree at `repo`, the binary `robit` and the
/// documented configuration keys.
pub fn check(
    commands: &[Shown],
    repo: &Path,
    robit: &Path,
    documented: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut parsed: BTreeMap<Vec<String>, Result<(), String>> = BTreeMap::new();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    for shown in commands {
        let command = shown.words.join(" ");
        let needs = needs(&shown.words);
        for (path, program) in &needs.paths {
            let full = repo.join(path);
            match std::fs::metadata(&full) {
                Err(_) => problems.push(format!("{}: `{command}`: no such path {path}", shown.at)),
                Ok(meta) if *program && !executable(&meta) => problems.push(format!(
                    "{}: `{command}`: {path} is run as a program but is not executable",
                    shown.at
                )),
                Ok(_) => {}
            }
        }
        for key in &needs.keys {
            if !documented.contains(key) {
                problems.push(format!(
                    "{}: `{command}`: `{key}` is not a documented configuration key",
                    shown.at
                ));
            }
        }
        if let Some(args) = needs.robit {
            let result = parsed
                .entry(args.clone())
                .or_insert_with(|| parses(robit, &args, scratch.path()));
            if let Err(e) = result {
                problems.push(format!("{}: `{command}`: {e}", shown.at));
            }
        }
    }
    problems
}

fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_dir() || meta.permissions().mode() & 0o111 != 0
}

/// Runs `robit ARGS --help` in an empty directory with an empty environment (so no
/// `robit.toml` or `ROBIT_*` variable of the machine running the test takes part).
fn parses(robit: &Path, args: &[String], dir: &Path) -> Result<(), String> {
    let out = Command::new(robit)
        .args(args)
        .arg("--help")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", robit.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .collect();
    Err(format!("robit does not accept it: {}", first.join(" / ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        lex(line)
    }

    #[test]
    fn lines_split_into_commands_as_the_shell_would() {
        assert_eq!(
            words("echo 'print(input())' | robit run python - --stdin   # from stdin"),
            [
                vec!["echo", "print(input())"],
                vec!["robit", "run", "python", "-", "--stdin"]
            ]
        );
        assert_eq!(
            words("scripts/fetch-guests && cargo run --release -- serve"),
            [
                vec!["scripts/fetch-guests"],
                vec!["cargo", "run", "--release", "--", "serve"]
            ]
        );
        assert_eq!(
            words("A=\"x y\" robit usage > out.txt; curl $(robit x)/y"),
            [
                vec!["A=x y", "robit", "usage"],
                vec!["curl", "$"],
                vec!["robit", "x"],
                vec!["/y"]
            ]
        );
    }

    #[test]
    fn needs_name_robit_arguments_paths_and_keys() {
        let w = |s: &str| lex(s).remove(0);
        let n = needs(&w(
            "ROBIT_LLM__BASE_URL=http://x ROBIT_LLM__MODEL=m robit chat --set engine.history_limit=3",
        ));
        assert_eq!(
            n.robit,
            Some(vec![
                "chat".into(),
                "--set".into(),
                "engine.history_limit=3".into()
            ])
        );
        assert_eq!(
            n.keys,
            ["llm.base_url", "llm.model", "engine.history_limit"]
        );
        let n = needs(&w(
            "docker compose -f docker/compose.yaml up -e ROBIT_LLM__PROVIDERS__A__API_KEY",
        ));
        assert_eq!(n.robit, None);
        assert_eq!(n.paths, [("docker/compose.yaml".to_string(), false)]);
        assert_eq!(n.keys, ["llm.providers.*.api_key"]);
        let n = needs(&w(
            "cargo run --release -p robit-slack --example bench -- 20000 --compare",
        ));
        assert_eq!(n.robit, None);
        let n = needs(&w("cargo run --release -p robit -- doctor"));
        assert_eq!(n.robit, Some(vec!["doctor".to_string()]));
        let n = needs(&w("./scripts/test --nocapture"));
        assert_eq!(n.paths, [("scripts/test".to_string(), true)]);
    }

    /// The repository and the built binary: the fixtures run the real `robit`.
    fn fixture(text: &str) -> (tempfile::TempDir, Vec<Shown>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chapter.md");
        std::fs::write(&file, text).unwrap();
        let shown = shown(&Doc::read(&file).unwrap());
        (dir, shown)
    }

    #[test]
    fn paths_in_inline_code_must_exist() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chapter.md");
        std::fs::write(
            &file,
            "See `scripts/fetch-guests [DIR]`, `docker/k8s/`, `crates/*/src`, `robit serve`\n\
             and `tests/no/such/file.rs`.\n",
        )
        .unwrap();
        let problems = check_inline_paths(&Doc::read(&file).unwrap(), repo);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("chapter.md:2: `tests/no/such/file.rs`: no such path"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn unknown_subcommands_flags_paths_and_keys_fail_and_real_ones_pass() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let robit = robit_system_tests::robit_bin();
        let documented: BTreeSet<String> = ["llm.model".to_string()].into();
        let (_dir, good) = fixture(
            "```sh\nrobit emulate slack --port 8901 --events-url http://127.0.0.1:3000/e\n\
             ROBIT_LLM__MODEL=x robit run python -c 'print(1)' \\\n  --stdin\n\
             scripts/fetch-guests && cargo run --release -- guests fetch --dir /tmp/g\n\
             robit --set llm.model=gpt-4o doctor\n```\n\
             ```console\n$ robit apikey revoke 3\nrevoked\n```\n\
             ```python\nrobit nonsense --here\n```\n",
        );
        assert_eq!(good.len(), 6);
        let problems = check(&good, repo, &robit, &documented);
        assert!(problems.is_empty(), "{problems:#?}");

        let (_dir, bad) = fixture(
            "```sh\nrobit emulate slack --port 8901 --nope\n\
             robit servee\n\
             robit usage --days N\n\
             scripts/no-such-script --x\n\
             ROBIT_LLM__MODLE=x robit chat\n```\n",
        );
        let problems = check(&bad, repo, &robit, &documented);
        let expected = [
            "chapter.md:2: `robit emulate slack --port 8901 --nope`: robit does not accept it",
            "chapter.md:3: `robit servee`: robit does not accept it",
            "chapter.md:4: `robit usage --days N`: robit does not accept it",
            "chapter.md:5: `scripts/no-such-script --x`: no such path scripts/no-such-script",
            "`llm.modle` is not a documented configuration key",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(problem.contains(want), "{problem} should say {want}");
        }
        assert!(problems[0].contains("--nope"), "{}", problems[0]);
    }
}
