//! Downloading files users attach to messages, for [`ReplySink::fetch_attachment`].
//!
//! Discord serves attachments from its CDN with plain GETs (the URLs are signed). Only
//! Discord's CDN hosts, or the host of a configured `api_base` (an emulator or proxy), are
//! fetched from: an attachment URL is data from a message, and the bot must not be usable to
//! make requests to arbitrary places.
//!
//! [`ReplySink::fetch_attachment`]: robit_types::ReplySink::fetch_attachment

use robit_types::{Attachment, SinkError};
use std::time::Duration;

/// Where Discord serves attachments from.
const CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];
/// A download that takes longer than this is given up.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct Downloader {
    client: reqwest::Client,
    /// `host:port` of `api_base`, also trusted to serve attachments.
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
    pub fn new(api_base: Option<&str>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            client,
            extra: api_base
                .and_then(|b| reqwest::Url::parse(b).ok())
                .and_then(|u| host_port(&u)),
        }
    }

    fn allowed(&self, url: &reqwest::Url) -> bool {
        let cdn = url.scheme() == "https" && url.host_str().is_some_and(|h| CDN_HOSTS.contains(&h));
        cdn || (self.extra.is_some() && host_port(url) == self.extra)
    }

    /// The first `max_bytes` bytes of the attachment.
    pub async fn fetch(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        let url = attachment
            .url
            .as_deref()
            .ok_or(SinkError::Rejected("the attachment has no url".into()))?;
        let url = reqwest::Url::parse(url)
            .map_err(|e| SinkError::Rejected(format!("bad attachment url: {e}")))?;
        if !self.allowed(&url) {
            return Err(SinkError::Rejected(format!(
                "attachment url not on discord's cdn: {}",
                url.host_str().unwrap_or_default()
            )));
        }
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(if status.is_server_error() {
                SinkError::Unavailable(format!("attachment download: http {status}"))
            } else {
                SinkError::Rejected(format!("attachment download: http {status}"))
            });
        }
        read_capped(&mut response, max_bytes).await
    }
}

/// Reads at most `max` bytes of the body, then stops (dropping the rest unread).
async fn read_capped(response: &mut reqwest::Response, max: u64) -> Result<Vec<u8>, SinkError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cdn_and_the_configured_api_host_are_fetched_from() {
        let d = Downloader::new(Some("http://127.0.0.1:4000"));
        let ok = |u: &str| d.allowed(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://cdn.discordapp.com/attachments/1/2/a.txt?ex=1"));
        assert!(ok("https://media.discordapp.net/attachments/1/2/a.png"));
        assert!(ok("http://127.0.0.1:4000/attachments/1/2/a.txt"));
        assert!(!ok("http://cdn.discordapp.com/attachments/1/2/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
        assert!(!ok("https://evil.example/a.txt"));
        let plain = Downloader::new(None);
        assert!(!plain.allowed(&reqwest::Url::parse("http://127.0.0.1:4000/a").unwrap()));
    }
}
