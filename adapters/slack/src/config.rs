//! The adapter's typed settings. The binary fills them (file < env < CLI); this crate never
//! reads the environment. Secrets are `SecretString`s: redacted in `Debug`, never logged.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Settings of the Slack adapter (`[slack]` in robit.toml; tokens from the environment).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// Bot token (`xoxb-…`) for the Web API. Required for both intakes.
    #[serde(skip_serializing)]
    pub bot_token: Option<SecretString>,
    /// App-level token (`xapp-…`) for Socket Mode.
    #[serde(skip_serializing)]
    pub app_token: Option<SecretString>,
    /// Signing secret for the HTTP Events API intake.
    #[serde(skip_serializing)]
    pub signing_secret: Option<SecretString>,
    /// Run the Socket Mode intake. Unset: on when `app_token` is set (see [`Self::socket_mode`]).
    pub socket_mode: Option<bool>,
    /// Where the binary mounts [`crate::events_router`] (events and slash commands both).
    pub events_path: String,
    /// Web API base, e.g. `http://127.0.0.1:PORT/api` for the emulator. Unset: Slack's.
    pub api_url: Option<String>,
    /// Minimum time between two edits of one message (`chat.update`, Tier 3).
    pub edit_interval_ms: u64,
    /// Stream replies with `chat.startStream/appendStream/stopStream` instead of edits.
    pub use_streaming_api: bool,
    /// Show "is thinking…" with `assistant.threads.setStatus` (apps with the assistant
    /// feature only; elsewhere Slack refuses it, which is ignored).
    pub assistant_status: bool,
    /// Socket Mode connections kept open (Slack allows up to 10; each envelope goes to one).
    pub socket_connections: u32,
    /// Wait before retrying a Socket Mode connection that failed to open.
    pub socket_reconnect_secs: u64,
    /// How many 429s one Web API call waits out (honouring `Retry-After`) before giving up.
    pub max_rate_limit_waits: u32,
    /// Largest file the sink uploads (sandbox output), bytes.
    pub max_upload_bytes: u64,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            bot_token: None,
            app_token: None,
            signing_secret: None,
            socket_mode: None,
            events_path: "/slack/events".to_string(),
            api_url: None,
            edit_interval_ms: 1000,
            use_streaming_api: false,
            assistant_status: false,
            socket_connections: 2,
            socket_reconnect_secs: 10,
            max_rate_limit_waits: 8,
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

impl SlackConfig {
    /// Whether the Socket Mode intake should run: as configured, else when an app token is set.
    pub fn socket_mode(&self) -> bool {
        self.socket_mode.unwrap_or(self.app_token.is_some())
    }

    pub fn edit_interval(&self) -> Duration {
        Duration::from_millis(self.edit_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_mode_defaults_to_whether_an_app_token_is_set() {
        let mut c = SlackConfig::default();
        assert!(!c.socket_mode());
        c.app_token = Some("xapp-1".into());
        assert!(c.socket_mode());
        c.socket_mode = Some(false);
        assert!(!c.socket_mode());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let c: Result<SlackConfig, _> = serde_json::from_str(r#"{"edit_interval_ms": 500}"#);
        assert_eq!(c.unwrap().edit_interval_ms, 500);
        let bad: Result<SlackConfig, _> = serde_json::from_str(r#"{"edit_intervl_ms": 500}"#);
        assert!(bad.is_err());
    }
}
