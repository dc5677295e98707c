//! The commands robit understands, in one parsed form whichever platform they came from.

use crate::config_command::{ConfigCommand, ConfigParseError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A language the sandbox can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    JavaScript,
}

impl Language {
    /// Accepts the names people type and the tags they put on code fences.
    pub fn parse(s: &str) -> Option<Language> {
        match s.trim().to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => Some(Language::Python),
            "javascript" | "js" | "node" | "quickjs" => Some(Language::JavaScript),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which sandbox runs a program.
///
/// `Wasm` (the default) is CPython/QuickJS compiled to WebAssembly under Wasmtime: starts in
/// milliseconds, standard library only. `Gvisor` is the native CPython of a read-only Debian
/// root filesystem with numpy, pandas, matplotlib and scipy, under gVisor (`runsc`): native
/// speed and the data libraries, for Python only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    #[default]
    Wasm,
    Gvisor,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Tier> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wasm" | "wasmtime" => Some(Tier::Wasm),
            "gvisor" | "native" => Some(Tier::Gvisor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Wasm => "wasm",
            Tier::Gvisor => "gvisor",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A language name as typed after `/run` or on a fence, with the tier it may name:
/// `python`, `gvisor` (Python on the gVisor tier), `python-gvisor`, `py-gvisor`.
fn language_and_tier(s: &str) -> Option<(Language, Tier)> {
    let s = s.trim().to_ascii_lowercase();
    if Tier::parse(&s) == Some(Tier::Gvisor) {
        return Some((Language::Python, Tier::Gvisor));
    }
    if let Some((lang, tier)) = s.rsplit_once('-') {
        if let (Some(l), Some(t)) = (Language::parse(lang), Tier::parse(tier)) {
            return Some((l, t));
        }
    }
    Language::parse(&s).map(|l| (l, Tier::Wasm))
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Ask {
        prompt: String,
    },
    Run {
        language: Language,
        code: String,
        /// The sandbox tier: `/run gvisor …` or a ```python-gvisor block; absent in commands
        /// stored before tiers existed, hence the default.
        #[serde(default)]
        tier: Tier,
    },
    Reset,
    Model {
        name: Option<String>,
    },
    Help,
    /// `/config …`: settings and access rules (admins only, except `show`).
    Config(ConfigCommand),
}

/// Why a command could not be parsed; shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandParseError {
    #[error("unknown command `/{0}`; try /help")]
    Unknown(String),
    #[error("`/ask` needs a prompt, for example `/ask what is a monad?`")]
    EmptyPrompt,
    #[error("`/run` needs a language and code, for example `/run python print(1)` or a ```python code block")]
    MissingCode,
    #[error("unknown language `{0}`; use python or js")]
    UnknownLanguage(String),
    #[error(transparent)]
    Config(#[from] ConfigParseError),
}

impl Command {
    /// The command name without its slash.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ask { .. } => "ask",
            Command::Run { .. } => "run",
            Command::Reset => "reset",
            Command::Model { .. } => "model",
            Command::Help => "help",
            Command::Config(_) => "config",
        }
    }

    /// Parses a command from its name and the rest of the line, as a slash-command
    /// integration delivers it (`name = "run"`, `args = "python print(1)"`).
    pub fn from_parts(name: &str, args: &str) -> Result<Command, CommandParseError> {
        let args = args.trim();
        match name.trim_start_matches('/').to_ascii_lowercase().as_str() {
            "ask" => {
                if args.is_empty() {
                    Err(CommandParseError::EmptyPrompt)
                } else {
                    Ok(Command::Ask {
                        prompt: args.to_string(),
                    })
                }
            }
            "run" => parse_run(args),
            "reset" => Ok(Command::Reset),
            "model" => Ok(Command::Model {
                name: (!args.is_empty()).then(|| args.to_string()),
            }),
            "help" => Ok(Command::Help),
            "config" => Ok(Command::Config(ConfigCommand::parse(args)?)),
            other => Err(CommandParseError::Unknown(other.to_string())),
        }
    }

    /// Parses a command typed as text (console lines, Slack `/robit ask …`, a message that starts
    /// with `/`). Returns `None` when the text is not a command at all, so it is chat.
    pub fn parse_text(text: &str) -> Option<Result<Command, CommandParseError>> {
        let text = text.trim_start();
        let rest = text.strip_prefix('/')?;
        let (name, args) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if name.is_empty() {
            return None;
        }
        Some(Command::from_parts(name, args))
    }
}

/// `python print(1)`, `js console.log(1)`, or a fenced block (```python … ```), optionally after
/// the language name. `gvisor` (or `python-gvisor`) in place of the language, or a
/// ```python-gvisor fence, chooses the gVisor tier.
fn parse_run(args: &str) -> Result<Command, CommandParseError> {
    if let Some((lang, code)) = fenced_block(args).filter(|_| args.starts_with("```")) {
        let (language, tier) = match lang {
            Some(l) => {
                language_and_tier(l).ok_or_else(|| CommandParseError::UnknownLanguage(l.into()))?
            }
            None => return Err(CommandParseError::MissingCode),
        };
        return Ok(Command::Run {
            language,
            code,
            tier,
        });
    }
    let (lang, code) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim()),
        None => (args, ""),
    };
    if lang.is_empty() {
        return Err(CommandParseError::MissingCode);
    }
    let (language, mut tier) =
        language_and_tier(lang).ok_or_else(|| CommandParseError::UnknownLanguage(lang.into()))?;
    if let Some((fence_lang, code)) = fenced_block(code) {
        if let Some(fl) = fence_lang {
            match language_and_tier(fl) {
                Some((l, t)) if l == language => {
                    if t == Tier::Gvisor {
                        tier = Tier::Gvisor;
                    }
                }
                _ => return Err(CommandParseError::UnknownLanguage(fl.into())),
            }
        }
        return Ok(Command::Run {
            language,
            code,
            tier,
        });
    }
    if code.is_empty() {
        return Err(CommandParseError::MissingCode);
    }
    Ok(Command::Run {
        language,
        code: code.to_string(),
        tier,
    })
}

/// Finds the first ``` fenced block; returns its language tag (if any) and body.
fn fenced_block(s: &str) -> Option<(Option<&str>, String)> {
    let start = s.find("```")?;
    let after = &s[start + 3..];
    let nl = after.find('\n')?;
    let tag = after[..nl].trim();
    let body = &after[nl + 1..];
    let end = body.find("```").unwrap_or(body.len());
    let code = body[..end].trim_end_matches(['\n', '\r']).to_string();
    Some(((!tag.is_empty()).then_some(tag), code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inline_run() {
        assert_eq!(
            Command::parse_text("/run python print(1)")
                .unwrap()
                .unwrap(),
            Command::Run {
                language: Language::Python,
                code: "print(1)".into(),
                tier: Tier::Wasm,
            }
        );
    }

    #[test]
    fn parses_fenced_run_with_language_from_tag() {
        let cmd = Command::parse_text("/run\n```py\nx = 1\nprint(x)\n```")
            .unwrap()
            .unwrap();
        assert_eq!(
            cmd,
            Command::Run {
                language: Language::Python,
                code: "x = 1\nprint(x)".into(),
                tier: Tier::Wasm,
            }
        );
    }

    #[test]
    fn parses_fenced_run_after_language() {
        let cmd = Command::parse_text("/run js ```\nconsole.log(2)\n```")
            .unwrap()
            .unwrap();
        assert_eq!(
            cmd,
            Command::Run {
                language: Language::JavaScript,
                code: "console.log(2)".into(),
                tier: Tier::Wasm,
            }
        );
    }

    #[test]
    fn gvisor_tier_syntax() {
        let gv = |code: &str| Command::Run {
            language: Language::Python,
            code: code.into(),
            tier: Tier::Gvisor,
        };
        assert_eq!(
            Command::parse_text("/run gvisor import numpy").unwrap(),
            Ok(gv("import numpy"))
        );
        assert_eq!(
            Command::parse_text("/run python-gvisor print(1)").unwrap(),
            Ok(gv("print(1)"))
        );
        assert_eq!(
            Command::parse_text("/run\n```python-gvisor\nprint(2)\n```").unwrap(),
            Ok(gv("print(2)"))
        );
        assert_eq!(
            Command::parse_text("/run gvisor ```python\nprint(3)\n```").unwrap(),
            Ok(gv("print(3)"))
        );
        assert_eq!(
            Command::parse_text("/run python ```python-gvisor\nprint(4)\n```").unwrap(),
            Ok(gv("print(4)"))
        );
        // JavaScript has no gVisor tier.
        assert_eq!(
            Command::parse_text("/run js-gvisor 1").unwrap(),
            Ok(Command::Run {
                language: Language::JavaScript,
                code: "1".into(),
                tier: Tier::Gvisor,
            })
        );
        // A command stored before tiers existed still deserializes, on the wasm tier.
        let old: Command =
            serde_json::from_str(r#"{"Run":{"language":"python","code":"1"}}"#).unwrap();
        assert_eq!(
            old,
            Command::Run {
                language: Language::Python,
                code: "1".into(),
                tier: Tier::Wasm
            }
        );
    }

    #[test]
    fn rejects_unknown_language_and_empty_code() {
        assert_eq!(
            Command::from_parts("run", "cobol DISPLAY 'HI'"),
            Err(CommandParseError::UnknownLanguage("cobol".into()))
        );
        assert_eq!(
            Command::from_parts("run", "python"),
            Err(CommandParseError::MissingCode)
        );
        assert_eq!(
            Command::from_parts("ask", "  "),
            Err(CommandParseError::EmptyPrompt)
        );
    }

    #[test]
    fn plain_text_is_not_a_command() {
        assert!(Command::parse_text("hello /run").is_none());
        assert!(Command::parse_text("/ just a slash").is_none());
        assert_eq!(
            Command::parse_text("/model gpt-4o").unwrap().unwrap(),
            Command::Model {
                name: Some("gpt-4o".into())
            }
        );
        assert_eq!(
            Command::parse_text("/frob").unwrap(),
            Err(CommandParseError::Unknown("frob".into()))
        );
    }
}
