//! Requests the emulator makes *to* the bot: HTTP interactions POSTed to the application's
//! Interactions Endpoint URL, signed with Ed25519 over `timestamp + body` in the
//! `X-Signature-Ed25519` / `X-Signature-Timestamp` headers, as Discord signs them.
//!
//! A 200 answer carries the interaction response in its body (applied like a callback); a
//! 202/204 means the bot answered through the callback endpoint instead. Every delivery is
//! recorded. Like the rest of the emulator, it only ever talks to loopback URLs it is given.

use super::routes;
use super::server::Shared;
use super::state::Delivery;
use ed25519_dalek::Signer;
use serde_json::Value;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// POSTs `body` to `url`; `valid_signature: false` sends a signature that cannot verify, the
/// way Discord probes that an endpoint checks them.
pub(crate) async fn deliver(
    shared: Arc<Shared>,
    url: String,
    interaction_id: Option<u64>,
    body: String,
    valid_signature: bool,
) -> Delivery {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let signature = if valid_signature {
        let key = shared.lock().signing_key.clone();
        let message = [timestamp.as_bytes(), body.as_bytes()].concat();
        hex::encode(key.sign(&message).to_bytes())
    } else {
        "00".repeat(64)
    };
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "Discord-Interactions/1.0 (+https://discord.com)",
        )
        .header("x-signature-ed25519", signature)
        .header("x-signature-timestamp", timestamp)
        .body(body)
        .send()
        .await;
    let (status, text) = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        // Discord shows "The application did not respond"; 0 records "no answer".
        Err(_) => (0, String::new()),
    };
    let mut st = shared.lock();
    if let (200, Some(iid)) = (status, interaction_id) {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            routes::respond_in_body(&mut st, iid, &v);
        }
    }
    let delivery = Delivery {
        interaction_id,
        status,
        body: text,
    };
    st.deliveries.push(delivery.clone());
    delivery
}

/// A PING interaction, as Discord sends when the endpoint URL is saved.
pub(crate) fn ping(st: &mut super::state::State) -> String {
    let id = st.next_id();
    serde_json::json!({
        "id": id.to_string(),
        "application_id": st.application_id.to_string(),
        "type": 1,
        "token": format!("cGluZw-{id}"),
        "version": 1,
    })
    .to_string()
}
