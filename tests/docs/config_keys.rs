//! The configuration chapter against `robit.example.toml`: the same keys, and the same
//! defaults where the chapter writes a default as a TOML value.
//!
//! The example file names a key in one of three ways, and all count:
//! - set: a `key = value` line (its value is the default unless a comment there says
//!   otherwise);
//! - commented out: `# key = value`, for keys with no default (`# shard_ids = [0, 0]`);
//! - by its environment variable in a comment (`ROBIT_DISCORD__TOKEN`), for secrets, which
//!   never belong in the file.
//!
//! The chapter documents a key as a row of a table whose header starts with `key`: the first
//! code span of the row's first cell is the dotted key path, the second cell its default.
//! `robit.example.toml` itself is kept equal to the code's `Config` by `crates/robit`'s
//! `config::tests::example_config_parses_and_covers_every_key`, so together the two tests
//! tie the chapter to the code.

use crate::markdown::{tables, Doc};
use std::collections::BTreeMap;

/// Sections whose table names are chosen by the user (`[llm.providers.anthropic]`): their
/// keys are compared whatever the name, written `<name>` in the chapter.
const NAMED: [&str; 2] = ["llm.providers", "mcp.servers"];

/// Keys whose value is a map of the user's data: one setting each, not a section.
const MAPS: [&str; 4] = [
    "engine.model_context_tokens",
    "engine.system_prompts",
    "llm.fallbacks",
    "mcp.servers.*.env",
];

/// How the example file names a key.
#[derive(Debug, Clone, PartialEq)]
pub enum InExample {
    Set(toml::Value),
    CommentedOut,
    EnvOnly,
}

/// Every key `robit.example.toml` names, by normalised dotted path.
pub fn example_keys(text: &str) -> Result<BTreeMap<String, InExample>, String> {
    let value: toml::Table =
        toml::from_str(text).map_err(|e| format!("robit.example.toml does not parse: {e}"))?;
    let mut keys = BTreeMap::new();
    collect("", &value, &mut keys);

    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = header.trim().to_string();
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        if let Some(key) = commented_out_key(comment) {
            let path = normalise(&join(&section, &key));
            keys.entry(path).or_insert(InExample::CommentedOut);
        }
        for var in env_vars(comment) {
            keys.entry(var).or_insert(InExample::EnvOnly);
        }
    }
    Ok(keys)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `llm.providers.anthropic.kind` → `llm.providers.*.kind`; `<name>` (the chapter's
/// spelling) → `*` too.
pub fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let before = parts[..i].join(".");
        if NAMED.contains(&before.as_str()) {
            out.push("*".into());
        } else {
            out.push(part.to_string());
        }
    }
    out.join(".")
}

fn collect(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, InExample>) {
    for (key, value) in table {
        let path = normalise(&join(prefix, key));
        match value {
            toml::Value::Table(t) if !MAPS.contains(&path.as_str()) => {
                collect(&join(prefix, key), t, out)
            }
            _ => {
                // Two named sections (two MCP servers) may set one key differently; the
                // values are examples then, not defaults, and are never compared.
                let named = NAMED.iter().any(|n| path.starts_with(&format!("{n}.")));
                let entry = if named {
                    InExample::CommentedOut
                } else {
                    InExample::Set(value.clone())
                };
                out.insert(path, entry);
            }
        }
    }
}

/// `shard_ids = [0, 0]` in `# shard_ids = [0, 0]`, when the rest parses as one TOML
/// assignment; prose that happens to contain `=` does not.
fn commented_out_key(comment: &str) -> Option<String> {
    let body = comment.trim();
    let (key, _) = body.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !bare {
        return None;
    }
    let parsed: toml::Table = toml::from_str(body).ok()?;
    (parsed.len() == 1).then(|| key.to_string())
}

/// Configuration keys named by `ROBIT_SECTION__KEY` variables in a comment (variables
/// without `__` are flags' variables, not configuration).
fn env_vars(comment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = comment;
    while let Some(at) = rest.find("ROBIT_") {
        let after = &rest[at + "ROBIT_".len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        if name.contains("__") && !name.ends_with('_') {
            out.push(normalise(&env_to_key(name)));
        }
        rest = &after[len..];
    }
    out
}

/// `LLM__BASE_URL` (after `ROBIT_`) → `llm.base_url`.
pub fn env_to_key(name: &str) -> String {
    name.split("__")
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// A documented key: its default as a TOML value when the chapter writes one, and the line.
#[derive(Debug)]
pub struct Documented {
    pub default: Option<toml::Value>,
    pub line: usize,
}

/// The keys the chapter documents: rows of tables whose header's first cell is `key`.
pub fn chapter_keys(doc: &Doc) -> Result<BTreeMap<String, Documented>, Vec<String>> {
    let mut keys = BTreeMap::new();
    let mut problems = Vec::new();
    for table in tables(doc) {
        let Some((_, header)) = table.rows.first() else {
            continue;
        };
        if header.first().map(|c| c.text.trim().to_lowercase()) != Some("key".into()) {
            continue;
        }
        for (line, cells) in &table.rows[1..] {
            let Some(key) = cells.first().and_then(|c| c.code.first()) else {
                problems.push(format!(
                    "{}:{line}: a row of a key table without a `key` code span",
                    doc.path.display()
                ));
                continue;
            };
            let default = cells.get(1).and_then(|c| toml_literal(&c.text, &c.code));
            let path = normalise(key);
            if keys
                .insert(
                    path.clone(),
                    Documented {
                        default,
                        line: *line,
                    },
                )
                .is_some()
            {
                problems.push(format!(
                    "{}:{line}: `{key}` is documented twice",
                    doc.path.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(keys)
    } else {
        Err(problems)
    }
}

/// A default cell that is exactly one code span holding a TOML value (`8`, `"text"`,
/// `[]`); a default in words ("unset", "one per CPU core") is not compared.
fn toml_literal(text: &str, code: &[String]) -> Option<toml::Value> {
    let [span] = code else { return None };
    if text.trim() != span.trim() {
        return None;
    }
    let table: toml::Table = toml::from_str(&format!("v = {span}")).ok()?;
    table.get("v").cloned()
}

/// Every difference between the chapter and the example, as lines for a failure message.
pub fn compare(
    chapter: &Doc,
    documented: &BTreeMap<String, Documented>,
    example: &BTreeMap<String, InExample>,
) -> Vec<String> {
    let file = chapter.path.display();
    let mut problems = Vec::new();
    for (key, doc) in documented {
        match example.get(key) {
            None => problems.push(format!(
                "{file}:{}: `{key}` is documented but robit.example.toml does not name it",
                doc.line
            )),
            Some(InExample::Set(value)) => {
                if let Some(default) = &doc.default {
                    if default != value {
                        problems.push(format!(
                            "{file}:{}: `{key}` is documented with default `{default}` but \
                             robit.example.toml sets `{value}` (where the example shows a \
                             value that is not the default, write the default in words)",
                            doc.line
                        ));
                    }
                }
            }
            Some(InExample::CommentedOut | InExample::EnvOnly) => {}
        }
    }
    for key in example.keys() {
        if !documented.contains_key(key) {
            problems.push(format!(
                "{file}: `{key}` is in robit.example.toml but not documented"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[database]
url = "sqlite://robit.db"
max_connections = 8
# Secret: ROBIT_DATABASE__PASSWORD, never here. Prose = not a key.
[discord]
# shard_ids = [0, 0]
[llm.providers.anthropic]
kind = "anthropic"
[mcp.servers.a]
timeout_secs = 30
env = { X = "1" }
[mcp.servers.b]
timeout_secs = 15
"#;

    #[test]
    fn the_example_names_keys_by_value_comment_and_variable() {
        let keys = example_keys(EXAMPLE).unwrap();
        let names: Vec<_> = keys.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "database.max_connections",
                "database.password",
                "database.url",
                "discord.shard_ids",
                "llm.providers.*.kind",
                "mcp.servers.*.env",
                "mcp.servers.*.timeout_secs",
            ]
        );
        assert_eq!(
            keys["database.max_connections"],
            InExample::Set(toml::Value::Integer(8))
        );
        assert_eq!(keys["discord.shard_ids"], InExample::CommentedOut);
        assert_eq!(keys["database.password"], InExample::EnvOnly);
    }

    #[test]
    fn an_undocumented_key_an_unknown_key_and_a_wrong_default_fail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("configuration.md");
        std::fs::write(
            &file,
            "| key | default | meaning |\n| --- | --- | --- |\n\
             | `database.url` | `\"sqlite://robit.db\"` | where |\n\
             | `database.max_connections` | `16` | pool |\n\
             | `database.password` | unset | secret |\n\
             | `database.colour` | `\"red\"` | not a key |\n\
             | `discord.shard_ids` | all shards | range |\n\
             | `llm.providers.<name>.kind` | — | kind |\n\
             | `mcp.servers.<name>.timeout_secs` | `30` | per server |\n\
             | `mcp.servers.<name>.env` | empty | environment |\n",
        )
        .unwrap();
        let doc = Doc::read(&file).unwrap();
        let documented = chapter_keys(&doc).unwrap();
        let problems = compare(&doc, &documented, &example_keys(EXAMPLE).unwrap());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("`database.colour` is documented but"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("`database.max_connections` is documented with default `16`"),
            "{problems:#?}"
        );

        // Drop a documented key: the example's key is reported as undocumented.
        std::fs::write(
            &file,
            "| key | default |\n| --- | --- |\n| `database.url` | `\"sqlite://robit.db\"` |\n",
        )
        .unwrap();
        let doc = Doc::read(&file).unwrap();
        let problems = compare(
            &doc,
            &chapter_keys(&doc).unwrap(),
            &example_keys(EXAMPLE).unwrap(),
        );
        assert!(
            problems
                .iter()
                .any(|p| p
                    .contains("`discord.shard_ids` is in robit.example.toml but not documented")),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }

    #[test]
    fn a_key_documented_twice_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("configuration.md");
        std::fs::write(
            &file,
            "| key | default |\n| --- | --- |\n| `log.format` | `\"text\"` |\n| `log.format` | `\"json\"` |\n",
        )
        .unwrap();
        let errors = chapter_keys(&Doc::read(&file).unwrap()).unwrap_err();
        assert!(errors[0].contains("documented twice"), "{errors:?}");
    }
}
