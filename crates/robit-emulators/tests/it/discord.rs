//! The Discord emulator's REST answers on the wire: Discord's error codes and shapes, rate-limit
//! headers and 429 bodies, multipart uploads, interaction rules, and the control API. (The
//! gateway is exercised end to end by robit-discord's tests with the real serenity client.)

use reqwest::{Client, Response};
use robit_emulators::discord::{DiscordEmulator, EmulatorConfig};
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    emu: DiscordEmulator,
    http: Client,
}

impl Api {
    async fn start() -> Api {
        Self::with(EmulatorConfig::default()).await
    }

    async fn with(config: EmulatorConfig) -> Api {
        Api {
            emu: DiscordEmulator::start_with(config).await,
            http: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v10{path}", self.emu.base_url())
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .header("authorization", format!("Bot {}", self.emu.token()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    async fn post_message(&self, channel: u64, content: &str) -> Response {
        self.send(
            "POST",
            &format!("/channels/{channel}/messages"),
            Some(json!({"content": content})),
        )
        .await
    }
}

async fn body(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rejects_requests_without_the_bot_token() {
    let api = Api::start().await;
    let r = api
        .http
        .get(api.url("/users/@me"))
        .header("authorization", "Bot wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(r).await,
        (401, json!({"code": 0, "message": "401: Unauthorized"}))
    );
    let (status, me) = body(api.send("GET", "/users/@me", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], api.emu.bot_id().to_string());
    assert_eq!(me["bot"], true);
}

#[tokio::test]
async fn message_validation_uses_discords_error_codes() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    let (status, err) = body(api.post_message(channel, &"é".repeat(2001)).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], 50035);
    assert_eq!(
        err["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    assert_eq!(
        body(api.post_message(channel, &"é".repeat(2000)).await)
            .await
            .0,
        200
    );
    let (status, err) = body(api.post_message(channel, "").await).await;
    assert_eq!((status, err["code"].clone()), (400, json!(50006)));
    let (status, err) = body(api.post_message(42, "hi").await).await;
    assert_eq!((status, err["code"].clone()), (404, json!(10003)));
}

#[tokio::test]
async fn the_sixth_message_in_five_seconds_gets_a_real_429() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    for i in 0..5 {
        let r = api.post_message(channel, &format!("m{i}")).await;
        assert_eq!(r.status(), 200);
        let remaining = r.headers()["x-ratelimit-remaining"].to_str().unwrap();
        assert_eq!(remaining, (4 - i).to_string());
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
        assert!(r.headers().contains_key("x-ratelimit-reset-after"));
        assert!(r.headers().contains_key("x-ratelimit-bucket"));
    }
    let r = api.post_message(channel, "one too many").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["x-ratelimit-scope"], "user");
    let (_, err) = body(r).await;
    assert_eq!(err["message"], "You are being rate limited.");
    assert_eq!(err["global"], false);
    assert!(err["retry_after"].as_f64().unwrap() > 0.0);
    assert!(err.get("code").is_none());
    // Another channel has its own bucket.
    let other = api.emu.add_text_channel(api.emu.guild_id(), "other");
    assert_eq!(api.post_message(other, "fine").await.status(), 200);
}

#[tokio::test]
async fn multipart_uploads_keep_the_file() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    let form = reqwest::multipart::Form::new()
        .text("payload_json", r#"{"content":"see attached"}"#)
        .part(
            "files[0]",
            reqwest::multipart::Part::bytes(b"hello file".to_vec()).file_name("out.txt"),
        );
    let r = api
        .http
        .post(api.url(&format!("/channels/{channel}/messages")))
        .header("authorization", format!("Bot {}", api.emu.token()))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, m) = body(r).await;
    assert_eq!(status, 200);
    assert_eq!(m["attachments"][0]["filename"], "out.txt");
    assert_eq!(m["attachments"][0]["size"], 10);
    let stored = api.emu.messages(channel).pop().unwrap();
    assert_eq!(stored.content, "see attached");
    assert_eq!(stored.attachments[0].data, b"hello file");
}

#[tokio::test]
async fn a_message_starts_one_thread_with_its_own_id() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    let source = api.emu.user_says(channel, "topic");
    let path = format!("/channels/{channel}/messages/{source}/threads");
    let (status, thread) = body(
        api.send("POST", &path, Some(json!({"name": "topic"})))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(thread["id"], source.to_string());
    assert_eq!(thread["type"], 11);
    assert_eq!(thread["owner_id"], api.emu.bot_id().to_string());
    let (status, err) = body(
        api.send("POST", &path, Some(json!({"name": "again"})))
            .await,
    )
    .await;
    assert_eq!((status, err["code"].clone()), (400, json!(160_004)));
    let (_, got) = body(api.send("GET", &format!("/channels/{source}"), None).await).await;
    assert_eq!(got["parent_id"], channel.to_string());
}

#[tokio::test]
async fn interactions_are_acknowledged_once_and_only_in_time() {
    let api = Api::with(EmulatorConfig {
        interaction_deadline: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let channel = api.emu.channel_id();
    let cmd = api.emu.slash_command(channel, "ask", &[("prompt", "hi")]);
    let callback = format!("/interactions/{}/{}/callback", cmd.id, cmd.token);
    let defer = json!({"type": 5, "data": {}});
    assert_eq!(
        api.http
            .post(api.url(&callback))
            .json(&defer)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let (status, err) = body(
        api.http
            .post(api.url(&callback))
            .json(&defer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err["code"].clone()), (400, json!(40060)));

    // The first follow-up after a deferral fills the placeholder; the next is a new message.
    let hook = api.url(&format!(
        "/webhooks/{}/{}",
        api.emu.application_id(),
        cmd.token
    ));
    let first = body(
        api.http
            .post(&hook)
            .json(&json!({"content": "one"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let second = body(
        api.http
            .post(&hook)
            .json(&json!({"content": "two"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first.0, 200);
    let i = api.emu.interaction(cmd.id).unwrap();
    assert_eq!(first.1["id"], i.original.unwrap().to_string());
    assert_eq!(second.1["id"], i.followups[0].to_string());

    let late = api.emu.slash_command(channel, "ask", &[("prompt", "slow")]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let callback = format!("/interactions/{}/{}/callback", late.id, late.token);
    let (status, err) = body(
        api.http
            .post(api.url(&callback))
            .json(&defer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err["code"].clone()), (404, json!(10062)));
}

#[tokio::test]
async fn the_control_api_drives_a_scenario() {
    let api = Api::start().await;
    let base = api.emu.base_url();
    let info: Value = api
        .http
        .get(format!("{base}/_emulator/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["token"], api.emu.token());
    let posted: Value = api
        .http
        .post(format!("{base}/_emulator/messages"))
        .json(&json!({"content": "hello from outside"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list: Value = api
        .http
        .get(format!(
            "{base}/_emulator/channels/{}/messages",
            info["channel_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], posted["id"]);
    assert_eq!(list[0]["content"], "hello from outside");
    let r = api
        .http
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"method": "GET", "path_prefix": "/users/", "count": 1, "kind": "status", "status": 503}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(api.send("GET", "/users/@me", None).await.status(), 503);
    assert_eq!(api.send("GET", "/users/@me", None).await.status(), 200);
}

#[tokio::test]
async fn application_info_and_callbacks_with_response() {
    let api = Api::start().await;
    let (status, app) = body(api.send("GET", "/oauth2/applications/@me", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(app["id"], api.emu.application_id().to_string());
    assert_eq!(app["verify_key"], api.emu.public_key());
    let channel = api.emu.channel_id();
    let cmd = api.emu.slash_command(channel, "ask", &[]);
    let callback = format!(
        "/interactions/{}/{}/callback?with_response=true",
        cmd.id, cmd.token
    );
    let answer = json!({"type": 4, "data": {"embeds": [{"title": "only an embed"}]}});
    let (status, r) = body(api.send("POST", &callback, Some(answer)).await).await;
    assert_eq!(status, 200);
    assert_eq!(r["interaction"]["id"], cmd.id.to_string());
    assert_eq!(r["interaction"]["type"], 2);
    assert_eq!(r["resource"]["type"], 4);
    assert_eq!(
        r["resource"]["message"]["embeds"][0]["title"],
        "only an embed"
    );
    assert_eq!(
        r["interaction"]["response_message_id"],
        r["resource"]["message"]["id"]
    );
    // Without the parameter the same callback answers 204.
    let cmd = api.emu.slash_command(channel, "ask", &[]);
    let plain = format!("/interactions/{}/{}/callback", cmd.id, cmd.token);
    let r = api
        .send("POST", &plain, Some(json!({"type": 5, "data": {}})))
        .await;
    assert_eq!(r.status().as_u16(), 204);
}

#[tokio::test]
async fn embeds_components_replies_and_silent_messages() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    let path = format!("/channels/{channel}/messages");
    let (status, m) = body(
        api.send(
            "POST",
            &path,
            Some(json!({"embeds": [{"description": "no content"}], "flags": 4096})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["flags"], 4096);
    let row = json!([{"type": 1, "components": [
        {"type": 2, "style": 1, "label": "Go", "custom_id": "go"}]}]);
    let reply = json!({"components": row, "message_reference": {"message_id": m["id"]}});
    let (status, r) = body(api.send("POST", &path, Some(reply)).await).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["type"], 19);
    assert_eq!(r["referenced_message"]["id"], m["id"]);
    assert_eq!(r["components"], row);
    let clicked = api
        .emu
        .click(r["id"].as_str().unwrap().parse().unwrap(), "go")
        .unwrap();
    assert_eq!(api.emu.interaction(clicked.id).unwrap().kind, 3);
    assert!(api.emu.click(1, "go").is_err());
    // Components v2 refuse content; a dangling reply is a form error.
    let v2 =
        json!({"flags": 1 << 15, "content": "x", "components": [{"type": 10, "content": "t"}]});
    let (status, e) = body(api.send("POST", &path, Some(v2)).await).await;
    assert_eq!((status, e["code"].clone()), (400, json!(50035)));
    let dangling = json!({"content": "x", "message_reference": {"message_id": "1"}});
    let (status, e) = body(api.send("POST", &path, Some(dangling)).await).await;
    assert_eq!((status, e["code"].clone()), (400, json!(50035)));
}

#[tokio::test]
async fn reactions_pins_and_a_global_rate_limit() {
    let api = Api::start().await;
    let channel = api.emu.channel_id();
    let (_, m) = body(api.post_message(channel, "hi").await).await;
    let mid = m["id"].as_str().unwrap().to_string();
    let react = format!("/channels/{channel}/messages/{mid}/reactions/%F0%9F%91%8D/@me");
    assert_eq!(api.send("PUT", &react, None).await.status().as_u16(), 204);
    let pin = format!("/channels/{channel}/pins/{mid}");
    assert_eq!(api.send("PUT", &pin, None).await.status().as_u16(), 204);
    let (_, got) = body(
        api.send("GET", &format!("/channels/{channel}/messages/{mid}"), None)
            .await,
    )
    .await;
    assert_eq!(got["reactions"][0]["emoji"]["name"], "👍");
    assert_eq!(got["reactions"][0]["me"], true);
    assert_eq!(got["pinned"], true);
    api.emu
        .inject(robit_emulators::discord::Fault::global_rate_limit(
            "GET",
            "/channels/",
            1,
            Duration::from_millis(250),
        ));
    let r = api.send("GET", &format!("/channels/{channel}"), None).await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["x-ratelimit-global"], "true");
    assert_eq!(r.headers()["via"], "1.1 google");
    let (_, b) = body(r).await;
    assert_eq!(b["global"], true);
    assert_eq!(b["retry_after"], 0.25);
}
