//! Where Discord attachments may be downloaded from, for the engine's shared downloader
//! (`robit_core::download`, which fetches, checks every redirect hop against this list and
//! caps the body).
//!
//! Discord serves attachments from its CDN with plain GETs (the URLs are signed, no token).
//! Only Discord's CDN hosts, or the host of a configured `api_base` (an emulator or proxy),
//! are fetched from: an attachment URL is data from a message, and the bot must not be usable
//! to make requests to arbitrary places. This file holds the list and nothing else.

use robit_core::download::Downloader;

/// Where Discord serves attachments from.
const CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];

/// The downloader for Discord's attachments (and `api_base`'s host, when set).
pub(crate) fn downloader(api_base: Option<&str>) -> Downloader {
    Downloader::new(CDN_HOSTS, api_base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cdn_and_the_configured_api_host_are_fetched_from() {
        let d = downloader(Some("http://127.0.0.1:4000"));
        let ok = |u: &str| d.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://cdn.discordapp.com/attachments/1/2/a.txt?ex=1"));
        assert!(ok("https://media.discordapp.net/attachments/1/2/a.png"));
        assert!(ok("http://127.0.0.1:4000/attachments/1/2/a.txt"));
        assert!(!ok("http://cdn.discordapp.com/attachments/1/2/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
        assert!(!ok("https://evil.example/a.txt"));
        let plain = downloader(None);
        assert!(!plain.allows(&reqwest::Url::parse("http://127.0.0.1:4000/a").unwrap()));
    }
}
