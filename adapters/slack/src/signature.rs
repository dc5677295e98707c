//! Slack request signing (`v0`): HMAC-SHA256 over `v0:{timestamp}:{body}` with the app's
//! signing secret, sent as `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.
//!
//! Verification compares in constant time and refuses timestamps more than five minutes from
//! now (replays). This file only computes and checks signatures; it must not log secrets or
//! signatures.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Slack's replay window.
pub const MAX_AGE_SECS: i64 = 5 * 60;
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Why a request was refused. Callers answer 401 for every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("request timestamp is not a number")]
    BadTimestamp,
    #[error("request timestamp is {0} s away from now (more than 5 minutes)")]
    Stale(i64),
    #[error("signature does not match")]
    Mismatch,
}

/// `v0=<hex hmac>` for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(mac(secret, timestamp, body)))
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("hmac accepts any key length");
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Checks a request's signature headers against `body` at time `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Check the signature first so an attacker learns nothing from the timestamp answer.
    let given = signature
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    let expected = mac(secret, timestamp, body);
    if given.len() != expected.len() || !bool::from(given.ct_eq(&expected)) {
        return Err(SignatureError::Mismatch);
    }
    let age = now - ts;
    if age.abs() > MAX_AGE_SECS {
        return Err(SignatureError::Stale(age));
    }
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_slacks_documented_example() {
        // From Slack's "Verifying requests from Slack" guide.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(secret, "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn refuses_bad_and_stale_signatures() {
        let s = b"secret";
        let sig = sign(s, "1000", b"{}");
        assert_eq!(verify(s, Some(&sig), Some("1000"), b"{}", 1100), Ok(()));
        assert_eq!(
            verify(s, Some(&sig), Some("1000"), b"{ }", 1100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&sig), Some("1000"), b"{}", 1100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(s, Some(&sig), Some("1000"), b"{}", 1000 + 301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(s, None, Some("1000"), b"{}", 1000),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
    }
}
