//! The token estimate used where a provider reports no usage.
//!
//! Roughly four characters per token for English prose with BPE tokenizers (OpenAI's
//! published rule of thumb), plus a few tokens of per-message overhead. It is deliberately
//! simple and a slight over-estimate for code; it is only used for usage records when the
//! provider sends none, and for budgeting history.

/// Estimated tokens for `text`.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4) + 4
}

#[cfg(test)]
mod tests {
    #[test]
    fn grows_with_text() {
        assert_eq!(super::estimate_tokens(""), 4);
        assert_eq!(super::estimate_tokens("abcd"), 5);
        assert!(super::estimate_tokens(&"x".repeat(4000)) >= 1000);
    }
}
