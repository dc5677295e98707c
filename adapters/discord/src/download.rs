//! Downloading files users attach to messages, for [`ReplySink::fetch_attachment`], through
//! the engine's shared downloader.
//!
//! Discord serves attachments from its CDN with plain GETs (the URLs are signed). Only
//! Discord's CDN hosts, or the host of a configured `api_base` (an emulator or proxy), are
//! fetched from, redirects included (each hop is checked again): an attachment URL is data
//! from a message, and the bot must not be usable to make requests to arbitrary places.
//!
//! [`ReplySink::fetch_attachment`]: robit_types::ReplySink::fetch_attachment

use robit_types::{Attachment, SinkError};

/// Where Discord serves attachments from.
const CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];

#[derive(Debug, Clone)]
pub(crate) struct Downloader(robit_core::download::Downloader);

impl Downloader {
    pub fn new(api_base: Option<&str>) -> Self {
        Self(robit_core::download::Downloader::new(CDN_HOSTS, api_base))
    }

    /// The first `max_bytes` bytes of the attachment.
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
    fn only_the_cdn_and_the_configured_api_host_are_fetched_from() {
        let d = Downloader::new(Some("http://127.0.0.1:4000"));
        let ok = |u: &str| d.0.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://cdn.discordapp.com/attachments/1/2/a.txt?ex=1"));
        assert!(ok("https://media.discordapp.net/attachments/1/2/a.png"));
        assert!(ok("http://127.0.0.1:4000/attachments/1/2/a.txt"));
        assert!(!ok("http://cdn.discordapp.com/attachments/1/2/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
        assert!(!ok("https://evil.example/a.txt"));
        let plain = Downloader::new(None);
        assert!(!plain
            .0
            .allows(&reqwest::Url::parse("http://127.0.0.1:4000/a").unwrap()));
    }
}
