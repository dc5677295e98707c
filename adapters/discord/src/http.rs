//! The optional second intake: Discord's HTTP interactions. With an "Interactions Endpoint URL"
//! set in the developer portal, Discord POSTs slash commands to robit's HTTP server instead
//! of sending them over the gateway, signed with Ed25519.
//!
//! [`HttpInteractions::handle`] is framework-free (signature headers and body in, status and
//! body out) so the binary can mount it on its own HTTP server. A body over
//! [`robit_core::MAX_WEBHOOK_BODY_BYTES`] (the Slack intake's cap too) gets 413 unread. A
//! request whose signature does not verify gets 401, as Discord requires (it checks this when
//! the URL is saved), and so does a correctly signed one whose timestamp is more than
//! [`MAX_AGE_SECS`] from now: the signature covers the timestamp, so a captured request
//! cannot be replayed later with a fresh one. A PING gets
//! PONG. A command is deferred through the callback endpoint and handed to the engine exactly
//! as from the gateway, and the HTTP request is answered 202 with no body.

use crate::intake::Intake;
use crate::{build_http, DiscordConfig, DiscordError};
use robit_core::Engine;
use serenity::all::Interaction;
use serenity::http::Http;
use serenity::interactions_endpoint::Verifier;
use std::sync::Arc;

/// How far a request's `X-Signature-Timestamp` may be from now (as Slack's five minutes).
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// The answer to one HTTP request from Discord. `body`, when present, is JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub body: Option<String>,
}

impl HttpReply {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: Some(body.to_string()),
        }
    }
}

/// Verifies and takes Discord's HTTP interactions.
pub struct HttpInteractions {
    verifier: Verifier,
    http: Arc<Http>,
    intake: Arc<Intake>,
}

impl std::fmt::Debug for HttpInteractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpInteractions").finish_non_exhaustive()
    }
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

impl HttpInteractions {
    /// Needs `token` (follow-ups are sent with it) and `public_key` (the application's public
    /// key from the developer portal, hex).
    pub fn new(engine: Engine, config: &DiscordConfig) -> Result<Self, DiscordError> {
        let key = config
            .public_key
            .as_deref()
            .ok_or_else(|| DiscordError::Config("http interactions need public_key".into()))?;
        let key = parse_key(key).ok_or_else(|| {
            DiscordError::Config("public_key must be 64 hexadecimal digits".into())
        })?;
        let verifier = Verifier::try_new(key)
            .map_err(|_| DiscordError::Config("public_key is not an Ed25519 key".into()))?;
        let (http, caps, pacer) = build_http(config)?;
        Ok(Self {
            verifier,
            http: Arc::new(http),
            intake: Arc::new(Intake::new(
                engine,
                pacer,
                caps,
                crate::download::downloader(config.api_base.as_deref()),
            )),
        })
    }

    /// Handles one POST from Discord: `signature` and `timestamp` are the
    /// `X-Signature-Ed25519` and `X-Signature-Timestamp` headers, `body` the raw body.
    pub async fn handle(&self, signature: &str, timestamp: &str, body: &[u8]) -> HttpReply {
        if body.len() > robit_core::MAX_WEBHOOK_BODY_BYTES {
            return HttpReply::json(413, r#"{"message":"request body too large"}"#);
        }
        if self.verifier.verify(signature, timestamp, body).is_err() {
            return HttpReply::json(401, r#"{"message":"invalid request signature"}"#);
        }
        // Checked after the signature, so the answer says nothing to a forger.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let fresh = timestamp
            .trim()
            .parse::<i64>()
            .is_ok_and(|ts| (now - ts).abs() <= MAX_AGE_SECS);
        if !fresh {
            tracing::warn!("discord interaction refused: stale or unreadable timestamp");
            return HttpReply::json(401, r#"{"message":"stale request timestamp"}"#);
        }
        let interaction: Interaction = match serde_json::from_slice(body) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable discord interaction");
                return HttpReply::json(400, r#"{"message":"invalid interaction"}"#);
            }
        };
        match interaction {
            Interaction::Ping(_) => HttpReply::json(200, r#"{"type":1}"#),
            Interaction::Command(cmd) => {
                // Follow-ups go to /webhooks/{application}/…; without the gateway's READY, the
                // interaction is where the application id comes from.
                if self.http.application_id().is_none() {
                    self.http.set_application_id(cmd.application_id);
                }
                self.intake.prune();
                self.intake.command(&self.http, None, cmd).await;
                HttpReply {
                    status: 202,
                    body: None,
                }
            }
            Interaction::Component(click) => {
                if self.http.application_id().is_none() {
                    self.http.set_application_id(click.application_id);
                }
                self.intake.component(&self.http, None, click).await;
                HttpReply {
                    status: 202,
                    body: None,
                }
            }
            _ => HttpReply::json(400, r#"{"message":"unsupported interaction type"}"#),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_key;

    #[test]
    fn parses_hex_keys() {
        assert_eq!(parse_key(&"0f".repeat(32)), Some([15u8; 32]));
        assert_eq!(parse_key("abc"), None);
        assert_eq!(parse_key(&"zz".repeat(32)), None);
    }
}
