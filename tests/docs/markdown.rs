//! Reading Markdown the way mdBook does: `{{#include}}` expanded first, then pulldown-cmark
//! with mdBook's extensions, heading ids by mdBook's rule. The checks only ever look at
//! documents through this module, so a difference from mdBook is fixed in one place.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The parser options of mdBook 0.5's `new_cmark_parser` (`mdbook-markdown`) with its
/// defaults: smart punctuation (stated in `docs/book.toml` too, since it turns `--` into a
/// dash and so changes an id), definition lists and admonitions (GFM) on.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_DEFINITION_LIST
        | Options::ENABLE_GFM
}

/// A Markdown file as mdBook renders it.
pub struct Doc {
    pub path: PathBuf,
    /// The text with every `{{#include FILE}}` replaced by that file.
    pub text: String,
}

impl Doc {
    pub fn read(path: &Path) -> Result<Doc, String> {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let text = expand_includes(path, &raw, 0)?;
        Ok(Doc {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The 1-based line of a byte offset into `text`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub fn parser(&self) -> impl Iterator<Item = (Event<'_>, std::ops::Range<usize>)> + '_ {
        Parser::new_ext(&self.text, options()).into_offset_iter()
    }
}

/// mdBook's links preprocessor: `{{#include path}}`, relative to the including file, before
/// the Markdown is parsed (so an include inside a code fence becomes the fence's content).
/// Only whole-file includes are supported; a line range or anchor is reported, not guessed.
fn expand_includes(path: &Path, text: &str, depth: usize) -> Result<String, String> {
    const OPEN: &str = "{{#include ";
    if depth > 8 {
        return Err(format!("{}: includes nested too deep", path.display()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let escaped = rest[..start].ends_with('\\');
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let target = rest[start + OPEN.len()..start + len].trim();
        if escaped {
            out.push_str(&rest[..start - 1]);
            out.push_str(&rest[start..start + len + 2]);
        } else {
            if target.contains(':') {
                return Err(format!(
                    "{}: `{{{{#include {target}}}}}`: only whole-file includes are checked",
                    path.display()
                ));
            }
            let file = path.parent().unwrap_or(Path::new(".")).join(target);
            let included = std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "{}: `{{{{#include {target}}}}}`: {}: {e}",
                    path.display(),
                    file.display()
                )
            })?;
            out.push_str(&rest[..start]);
            out.push_str(&expand_includes(&file, &included, depth + 1)?);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// mdBook 0.5's `id_from_content`: the heading's text, trimmed and lower-cased; letters,
/// digits, `_` and `-` kept, whitespace turned into `-`, everything else dropped.
pub fn id_from_content(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The id mdBook gives each heading: from its text (`-1`, `-2`, … on repeats within a
/// chapter), or the `{#id}` written after it.
pub fn heading_ids(doc: &Doc) -> Vec<String> {
    let mut used = HashSet::new();
    let mut out = Vec::new();
    let mut current: Option<(Option<String>, String)> = None;
    for (event, _) in doc.parser() {
        match event {
            Event::Start(Tag::Heading { id, .. }) => {
                current = Some((id.map(|i| i.to_string()), String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text)) = &mut current {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((explicit, text)) = current.take() {
                    out.push(explicit.unwrap_or_else(|| unique(id_from_content(&text), &mut used)));
                }
            }
            _ => {}
        }
    }
    out
}

fn unique(id: String, used: &mut HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    (1..)
        .map(|n| format!("{id}-{n}"))
        .find(|candidate| used.insert(candidate.clone()))
        .expect("some suffix is free")
}

/// A link or image destination and the line it is on.
pub struct Link {
    pub dest: String,
    pub line: usize,
}

pub fn links(doc: &Doc) -> Vec<Link> {
    doc.parser()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(Link {
                dest: dest_url.to_string(),
                line: doc.line_of(range.start),
            }),
            _ => None,
        })
        .collect()
}

/// Inline code spans (outside code blocks and tables alike), with their lines.
pub fn inline_code(doc: &Doc) -> Vec<(String, usize)> {
    doc.parser()
        .filter_map(|(event, range)| match event {
            Event::Code(code) => Some((code.to_string(), doc.line_of(range.start))),
            _ => None,
        })
        .collect()
}

/// A fenced code block: its info string's first word and its text.
pub struct CodeBlock {
    pub lang: String,
    pub text: String,
    /// The line of the opening fence.
    pub line: usize,
}

pub fn code_blocks(doc: &Doc) -> Vec<CodeBlock> {
    let mut out = Vec::new();
    let mut current: Option<CodeBlock> = None;
    for (event, range) in doc.parser() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = Some(CodeBlock {
                    lang: info.split([' ', ',']).next().unwrap_or("").to_string(),
                    text: String::new(),
                    line: doc.line_of(range.start),
                });
            }
            Event::Text(t) => {
                if let Some(block) = &mut current {
                    block.text.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// One table cell: its text, and the inline code spans in it.
#[derive(Default, Clone)]
pub struct Cell {
    pub text: String,
    pub code: Vec<String>,
}

/// A table's rows, the header row first, with the line of each row.
pub struct Table {
    pub rows: Vec<(usize, Vec<Cell>)>,
}

pub fn tables(doc: &Doc) -> Vec<Table> {
    let mut out = Vec::new();
    let mut table: Option<Table> = None;
    let mut row: Option<(usize, Vec<Cell>)> = None;
    let mut cell: Option<Cell> = None;
    for (event, range) in doc.parser() {
        match event {
            Event::Start(Tag::Table(_)) => table = Some(Table { rows: Vec::new() }),
            Event::End(TagEnd::Table) => out.extend(table.take()),
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                row = Some((doc.line_of(range.start), Vec::new()))
            }
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => {
                if let (Some(t), Some(r)) = (&mut table, row.take()) {
                    t.rows.push(r);
                }
            }
            Event::Start(Tag::TableCell) => cell = Some(Cell::default()),
            Event::End(TagEnd::TableCell) => {
                if let (Some((_, cells)), Some(c)) = (&mut row, cell.take()) {
                    cells.push(c);
                }
            }
            Event::Text(t) => {
                if let Some(c) = &mut cell {
                    c.text.push_str(&t);
                }
            }
            Event::Code(t) => {
                if let Some(c) = &mut cell {
                    c.text.push_str(&t);
                    c.code.push(t.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_mdbooks_rule_and_repeat_with_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.md");
        std::fs::write(
            &file,
            "# Crashes, deploys and database outages\n## `[sandbox.gvisor]`\n## Notes\n## Notes\n\
             ## Ünïcode & *emphasis* -- dash {#custom-id}\n## Slack -- two\n",
        )
        .unwrap();
        let ids = heading_ids(&Doc::read(&file).unwrap());
        // Smart punctuation makes `--` an en dash, which is dropped like other punctuation.
        assert_eq!(
            ids,
            [
                "crashes-deploys-and-database-outages",
                "sandboxgvisor",
                "notes",
                "notes-1",
                "custom-id",
                "slack--two",
            ]
        );
    }

    #[test]
    fn includes_are_expanded_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.md"), "## Included heading\n").unwrap();
        let file = dir.path().join("a.md");
        std::fs::write(
            &file,
            "# Top\n{{#include inc.md}}\n\\{{#include nothing.md}}\n",
        )
        .unwrap();
        let doc = Doc::read(&file).unwrap();
        let ids = heading_ids(&doc);
        assert_eq!(ids, ["top", "included-heading"]);

        std::fs::write(&file, "{{#include missing.md}}\n").unwrap();
        let err = Doc::read(&file)
            .err()
            .expect("a missing include is an error");
        assert!(err.contains("missing.md"), "{err}");
    }
}
