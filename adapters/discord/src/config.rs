//! The adapter's typed settings. The binary fills them from its configuration (file, then
//! `ROBIT_DISCORD__*` environment); this crate never reads the environment itself.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Discord settings. Unknown keys are rejected so a typo is an error, not a silent default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// The bot token. Set it through `ROBIT_DISCORD__TOKEN`, never in a file; it is a
    /// `SecretString`, so `Debug` and logs show it redacted.
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
    /// Usually unnecessary: serenity reads the application id from READY.
    pub application_id: Option<u64>,
    /// The first and last shard this process runs, inclusive (`[2, 3]` runs shards 2 and 3).
    /// `None` runs every shard `0..shard_total`. Give each replica its own range.
    pub shard_ids: Option<(u32, u32)>,
    /// Shards across all replicas.
    pub shard_total: u32,
    /// Register the slash commands on this guild only (instant updates while developing)
    /// instead of globally.
    pub dev_guild_id: Option<u64>,
    /// The fastest a streamed reply is edited, in milliseconds.
    pub edit_interval_ms: u64,
    /// Send REST calls to this base URL (an emulator or an HTTP proxy) instead of
    /// `https://discord.com`. Serenity's own ratelimiter is then off, so the adapter's pacing
    /// (below) is the only rate limiting.
    pub api_base: Option<String>,
    /// Connect the gateway here instead of the URL `GET /gateway` returns.
    pub gateway_url: Option<String>,
    /// Requests (creates and edits together) per channel or interaction per window. Discord's
    /// per-channel message budget is not documented; 5 per 5 s is the widely reported value.
    pub channel_requests: u32,
    /// The window of `channel_requests`, in milliseconds.
    pub channel_window_ms: u64,
    /// Largest file the bot uploads (Discord's default limit for bots).
    pub max_upload_bytes: u64,
    /// The application's public key (hex, from the developer portal), for verifying HTTP
    /// interactions ([`HttpInteractions`](crate::HttpInteractions)). Not a secret.
    pub public_key: Option<String>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            token: None,
            application_id: None,
            shard_ids: None,
            shard_total: 1,
            dev_guild_id: None,
            edit_interval_ms: 1000,
            api_base: None,
            gateway_url: None,
            channel_requests: 5,
            channel_window_ms: 5000,
            max_upload_bytes: 8 * 1024 * 1024,
            public_key: None,
        }
    }
}

impl DiscordConfig {
    /// The inclusive shard range this process runs, checked against `shard_total`.
    pub fn shard_range(&self) -> Result<(u32, u32), String> {
        if self.shard_total == 0 {
            return Err("shard_total must be at least 1".into());
        }
        let (first, last) = self.shard_ids.unwrap_or((0, self.shard_total - 1));
        if first > last || last >= self.shard_total {
            return Err(format!(
                "shard_ids [{first}, {last}] must satisfy first <= last < shard_total ({})",
                self.shard_total
            ));
        }
        Ok((first, last))
    }

    pub fn edit_interval(&self) -> Duration {
        Duration::from_millis(self.edit_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_every_shard() {
        let c = DiscordConfig::default();
        assert_eq!(c.shard_range(), Ok((0, 0)));
        let c = DiscordConfig {
            shard_total: 4,
            ..DiscordConfig::default()
        };
        assert_eq!(c.shard_range(), Ok((0, 3)));
    }

    #[test]
    fn rejects_shards_outside_the_total() {
        let c = DiscordConfig {
            shard_ids: Some((1, 2)),
            shard_total: 2,
            ..DiscordConfig::default()
        };
        assert!(c.shard_range().is_err());
    }

    #[test]
    fn unknown_keys_are_errors_and_the_token_is_redacted() {
        let c: DiscordConfig =
            serde_json::from_str(r#"{"token":"sekrit","shard_ids":[0,1],"shard_total":2}"#)
                .unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
        assert_eq!(c.shard_ids, Some((0, 1)));
        assert!(serde_json::from_str::<DiscordConfig>(r#"{"tokn":"x"}"#).is_err());
    }
}
