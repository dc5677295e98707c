//! Where Slack files (`url_private`) may be downloaded from, and with which token, for the
//! engine's shared downloader (`robit_core::download`, which fetches, checks every redirect
//! hop against this list and caps the body).
//!
//! Slack serves private files only with the bot token as a bearer token, so the token may go
//! to Slack's file host (`https://files.slack.com`) or to the host of a configured `api_url`
//! (an emulator), and to nothing else: a file URL is data from an event, and the token must
//! never go to a host that merely appears in one. A redirect off those hosts (Slack answers a
//! missing scope with one, to a login page on another host) is refused by the downloader.
//! This file holds the list and the token and nothing else.

use robit_core::download::Downloader;
use secrecy::SecretString;

const FILE_HOST: &str = "files.slack.com";

/// The downloader for Slack's files, sending `token` (to allowed hosts only).
pub(crate) fn downloader(token: SecretString, api_url: Option<&str>) -> Downloader {
    Downloader::new(&[FILE_HOST], api_url).with_bearer(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_slack_files_or_the_configured_api_host() {
        let d = downloader(
            "xoxb-t".to_string().into(),
            Some("http://127.0.0.1:4000/api"),
        );
        let ok = |u: &str| d.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(ok("http://127.0.0.1:4000/files-pri/T1-F1/a.txt"));
        assert!(!ok("http://files.slack.com/files-pri/T1-F1/a.txt"));
        assert!(!ok("https://files.slack.com.evil.example/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
    }
}
