//! Downloading files users share in messages (`url_private`), for
//! [`ReplySink::fetch_attachment`].
//!
//! Slack serves private files only with the bot token as a bearer token, so the token is sent
//! to Slack's file host (`https://files.slack.com`) or to the host of a configured `api_url`
//! (an emulator), and to nothing else: a file URL is data from an event, and the token must
//! never go to a host that merely appears in one. Redirects are not followed for the same
//! reason (Slack answers a missing scope with a redirect to a login page).
//!
//! [`ReplySink::fetch_attachment`]: robit_types::ReplySink::fetch_attachment

use robit_types::{Attachment, SinkError};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

const FILE_HOST: &str = "files.slack.com";
/// A download that takes longer than this is given up.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Downloader {
    client: reqwest::Client,
    token: SecretString,
    /// `host:port` of `api_url`, also trusted with the token.
    extra: Option<String>,
}

fn host_port(url: &reqwest::Url) -> Option<String> {
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

impl Downloader {
    pub fn new(token: SecretString, api_url: Option<&str>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            token,
            extra: api_url
                .and_then(|u| reqwest::Url::parse(u).ok())
                .and_then(|u| host_port(&u)),
        }
    }

    fn allowed(&self, url: &reqwest::Url) -> bool {
        let slack = url.scheme() == "https" && url.host_str() == Some(FILE_HOST);
        slack || (self.extra.is_some() && host_port(url) == self.extra)
    }

    /// The first `max_bytes` bytes of the file.
    pub async fn fetch(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        let url = attachment
            .url
            .as_deref()
            .ok_or(SinkError::Rejected("the file has no url_private".into()))?;
        let url = reqwest::Url::parse(url)
            .map_err(|e| SinkError::Rejected(format!("bad file url: {e}")))?;
        if !self.allowed(&url) {
            return Err(SinkError::Rejected(format!(
                "file url not on slack's file host: {}",
                url.host_str().unwrap_or_default()
            )));
        }
        let mut response = self
            .client
            .get(url)
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(if status.is_server_error() {
                SinkError::Unavailable(format!("file download: http {status}"))
            } else {
                SinkError::Rejected(format!("file download: http {status}"))
            });
        }
        let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < max {
            match response
                .chunk()
                .await
                .map_err(|e| SinkError::Unavailable(e.to_string()))?
            {
                Some(chunk) => {
                    let take = chunk.len().min(max - out.len());
                    out.extend_from_slice(&chunk[..take]);
                }
                None => break,
            }
        }
        Ok(out)
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
        let ok = |u: &str| d.allowed(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(ok("http://127.0.0.1:4000/files-pri/T1-F1/a.txt"));
        assert!(!ok("http://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(!ok("https://files.slack.com.evil.example/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
    }
}
