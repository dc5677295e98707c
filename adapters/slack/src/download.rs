//! Downloading files users share in messages (`url_private`), for
//! [`ReplySink::fetch_attachment`], through the engine's shared downloader.
//!
//! Slack serves private files only with the bot token as a bearer token, so the token may go
//! to Slack's file host (`https://files.slack.com`) or to the host of a configured `api_url`
//! (an emulator), and to nothing else: a file URL is data from an event, and the token must
//! never go to a host that merely appears in one. A redirect is followed only when its target
//! is one of those hosts too (Slack answers a missing scope with a redirect to a login page
//! on another host, which is refused).
//!
//! [`ReplySink::fetch_attachment`]: robit_types::ReplySink::fetch_attachment

use robit_types::{Attachment, SinkError};
use secrecy::SecretString;

const FILE_HOST: &str = "files.slack.com";

pub(crate) struct Downloader(robit_core::download::Downloader);

impl Downloader {
    pub fn new(token: SecretString, api_url: Option<&str>) -> Self {
        Self(robit_core::download::Downloader::new(&[FILE_HOST], api_url).with_bearer(token))
    }

    /// The first `max_bytes` bytes of the file.
    pub async fn fetch(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.0.fetch(attachment, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_slack_files_or_the_configured_api_host() {
        let d = Downloader::new(
            "xoxb-t".to_string().into(),
            Some("http://127.0.0.1:4000/api"),
        );
        let ok = |u: &str| d.0.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(ok("http://127.0.0.1:4000/files-pri/T1-F1/a.txt"));
        assert!(!ok("http://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(!ok("https://files.slack.com.evil.example/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
    }
}
