//! Namespaced tool names: `server__tool`, in the charset and length every provider accepts
//! (`^[a-zA-Z0-9_-]{1,64}$`, OpenAI's and Anthropic's rule), stable across restarts so a
//! stored tool call still names the same tool.

/// The longest tool name providers accept.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// The name the model sees for `tool` on `server`.
///
/// Characters outside the charset become `_`. A name that would be too long is cut and ends
/// in a hash of the full pair, so two long names that share a prefix stay apart.
pub fn namespaced(server: &str, tool: &str) -> String {
    let name = format!("{}__{}", sanitize(server), sanitize(tool));
    if name.len() <= MAX_TOOL_NAME_LEN {
        return name;
    }
    let suffix = format!("_{:08x}", hash(server, tool));
    let mut cut: String = name
        .chars()
        .take(MAX_TOOL_NAME_LEN - suffix.len())
        .collect();
    cut.push_str(&suffix);
    cut
}

/// A second name for a pair whose [`namespaced`] name is taken by another pair (after
/// sanitizing, `a.b` and `a_b` are the same name).
pub(crate) fn disambiguated(server: &str, tool: &str) -> String {
    let suffix = format!("_{:08x}", hash(server, tool));
    let base = namespaced(server, tool);
    let keep = base.len().min(MAX_TOOL_NAME_LEN - suffix.len());
    format!("{}{suffix}", &base[..keep])
}

fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

/// FNV-1a: small and stable across Rust versions, unlike `DefaultHasher`.
fn hash(server: &str, tool: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in server.bytes().chain([0]).chain(tool.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        (1..=MAX_TOOL_NAME_LEN).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn short_names_are_server_then_tool() {
        assert_eq!(namespaced("calc", "add"), "calc__add");
        assert_eq!(namespaced("git-hub", "list_issues"), "git-hub__list_issues");
    }

    #[test]
    fn characters_outside_the_charset_become_underscores() {
        assert_eq!(namespaced("my files", "read.file"), "my_files__read_file");
        assert_eq!(namespaced("é", "x/y"), "___x_y");
        assert!(valid(&namespaced("", "")));
    }

    #[test]
    fn long_names_are_cut_with_a_distinguishing_hash() {
        let a = namespaced("server", &"a".repeat(100));
        let b = namespaced("server", &format!("{}b", "a".repeat(99)));
        assert!(valid(&a) && valid(&b), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, namespaced("server", &"a".repeat(100)), "stable");
    }

    #[test]
    fn disambiguated_names_differ_and_stay_valid() {
        let a = disambiguated("s", "a.b");
        assert_ne!(a, namespaced("s", "a_b"));
        assert!(valid(&a));
        assert!(valid(&disambiguated(&"s".repeat(80), "t")));
    }
}
