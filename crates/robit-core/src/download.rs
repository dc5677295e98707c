//! The one attachment downloader both chat adapters use, for `ReplySink::fetch_attachment`.
//!
//! A file URL is data from a platform event, so whoever can post a message chooses it. The
//! downloader fetches only from an allow-list (HTTPS hosts of the platform's file service,
//! plus the exact `host:port` of a configured API base, for emulators and proxies), and it
//! follows a redirect only after checking its target against the same list: reqwest's own
//! redirect handling is off, because it would follow a CDN's redirect to any host (the
//! Discord adapter once did). A bearer token, when the platform needs one, therefore only
//! ever goes to allowed hosts. The body is read up to the caller's byte cap and no further.
//! This file must not name a platform: the adapters give it their hosts.

use reqwest::Url;
use robit_types::{Attachment, SinkError};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// A download that takes longer than this is given up.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed (each re-checked) before giving up.
const MAX_REDIRECTS: usize = 3;

/// Downloads attachments from allowed hosts only.
#[derive(Clone)]
pub struct Downloader {
    client: reqwest::Client,
    /// Hosts fetched from over HTTPS.
    https_hosts: Vec<String>,
    /// `host:port` of a configured API base, fetched from over its own scheme.
    extra: Option<String>,
    bearer: Option<SecretString>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("https_hosts", &self.https_hosts)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

fn host_port(url: &Url) -> Option<String> {
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

impl Downloader {
    /// Fetches from `https_hosts` over HTTPS, and from the host and port of `api_base`.
    pub fn new(https_hosts: &[&str], api_base: Option<&str>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            https_hosts: https_hosts.iter().map(|h| h.to_string()).collect(),
            extra: api_base
                .and_then(|b| Url::parse(b).ok())
                .and_then(|u| host_port(&u)),
            bearer: None,
        }
    }

    /// Sends `token` as a bearer token (to allowed hosts only, like every request).
    pub fn with_bearer(mut self, token: SecretString) -> Self {
        self.bearer = Some(token);
        self
    }

    /// Whether `url` may be fetched from.
    pub fn allows(&self, url: &Url) -> bool {
        let listed = url.scheme() == "https"
            && url
                .host_str()
                .is_some_and(|h| self.https_hosts.iter().any(|a| a == h));
        listed || (self.extra.is_some() && host_port(url) == self.extra)
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
            .ok_or(SinkError::Rejected("the file has no url".into()))?;
        let mut url =
            Url::parse(url).map_err(|e| SinkError::Rejected(format!("bad file url: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            if !self.allows(&url) {
                return Err(SinkError::Rejected(format!(
                    "file url not on an allowed host: {}",
                    url.host_str().unwrap_or_default()
                )));
            }
            let mut request = self.client.get(url.clone());
            if let Some(token) = &self.bearer {
                request = request.bearer_auth(token.expose_secret());
            }
            let mut response = request
                .send()
                .await
                .map_err(|e| SinkError::Unavailable(e.to_string()))?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| {
                        SinkError::Rejected(format!(
                            "file download: http {status} without Location"
                        ))
                    })?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(if status.is_server_error() {
                    SinkError::Unavailable(format!("file download: http {status}"))
                } else {
                    SinkError::Rejected(format!("file download: http {status}"))
                });
            }
            return read_capped(&mut response, max_bytes).await;
        }
        Err(SinkError::Rejected(format!(
            "file download: more than {MAX_REDIRECTS} redirects"
        )))
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
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP server answering every request with `respond(path)`; it records each
    /// request head it gets.
    async fn server(
        respond: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, respond) = (seen.clone(), Arc::new(respond));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (log, respond) = (log.clone(), respond.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    log.lock().unwrap().push(head);
                    let _ = s.write_all(respond(&path).as_bytes()).await;
                });
            }
        });
        (base, seen)
    }

    fn redirect(to: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    fn attachment(url: String) -> Attachment {
        Attachment {
            name: "a.txt".into(),
            content_type: None,
            size: 0,
            url: Some(url),
        }
    }

    #[tokio::test]
    async fn a_redirect_to_a_host_off_the_list_is_not_followed_and_gets_no_token() {
        let (evil, evil_seen) = server(|_| {
            "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret".to_string()
        })
        .await;
        let evil_target = format!("{evil}/steal");
        let (allowed, allowed_seen) = server(move |path| match path {
            "/away" => redirect(&evil_target),
            "/moved" => redirect("/file"),
            _ => {
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string()
            }
        })
        .await;
        let d = Downloader::new(&["cdn.example"], Some(&allowed)).with_bearer(SecretString::from(
            "xoxb-token-for-allowed-hosts".to_string(),
        ));

        let err = d
            .fetch(&attachment(format!("{allowed}/away")), 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::Rejected(m) if m.contains("not on an allowed host")),
            "{err:?}"
        );
        assert!(
            evil_seen.lock().unwrap().is_empty(),
            "the other host was contacted"
        );

        // A redirect within the allowed host is followed, and capped reads still apply.
        let got = d
            .fetch(&attachment(format!("{allowed}/moved")), 3)
            .await
            .unwrap();
        assert_eq!(got, b"hel");
        let heads = allowed_seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 3, "{heads:?}");
        assert!(heads.iter().all(|h| h
            .to_ascii_lowercase()
            .contains("authorization: bearer xoxb-token-for-allowed-hosts")));

        // Directly off the list: never requested.
        let err = d
            .fetch(&attachment(format!("{evil}/direct")), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, SinkError::Rejected(_)));
        assert!(evil_seen.lock().unwrap().is_empty());
    }

    #[test]
    fn only_listed_https_hosts_and_the_exact_api_host_are_allowed() {
        let d = Downloader::new(&["files.example"], Some("http://127.0.0.1:4000/api"));
        let ok = |u: &str| d.allows(&Url::parse(u).unwrap());
        assert!(ok("https://files.example/a.txt"));
        assert!(ok("http://127.0.0.1:4000/files/a.txt"));
        assert!(!ok("http://files.example/a.txt"));
        assert!(!ok("https://files.example.evil.example/a.txt"));
        assert!(!ok("http://127.0.0.1:4001/a.txt"));
        let plain = Downloader::new(&["files.example"], None);
        assert!(!plain.allows(&Url::parse("http://127.0.0.1:4000/a").unwrap()));
    }
}
