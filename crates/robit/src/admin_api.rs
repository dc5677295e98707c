//! The optional admin HTTP API (`admin_api.enabled`), mounted on the binary's HTTP server
//! under `/admin/v1`: the same settings `/config` changes, and the audit log, for holders of
//! a key from `robit apikey create`.
//!
//! - `GET    /admin/v1/settings/{platform}/{workspace}/{channel}`: every setting `/config show`
//!   lists (`Effective::entries`), with its typed value and where it comes from
//! - `PUT    /admin/v1/settings/{platform}/{workspace}/{channel}/{key}` with
//!   `{"value": "…"}`: set (`channel` = `-` for the whole workspace)
//! - `DELETE /admin/v1/settings/{platform}/{workspace}/{channel}/{key}`: unset
//! - `GET    /admin/v1/audit?limit=N`: the newest audit entries
//! - `GET    /admin/v1/feedback?days=N`: 👍/👎 votes on answers per provider and model in the
//!   last `N` days (default 30), with the share of 👍
//!
//! Handlers are thin: validation, storage and auditing are the engine's
//! (`Engine::change_setting`), exactly as for `/config`.
//!
//! Authentication is a layer in front of every route, so nothing of an unauthenticated
//! request is read or parsed (its body included): no key, 401, whatever the request holds.
//! Bodies are capped at [`MAX_BODY_BYTES`].

use crate::apikey::{Rejected, Verifier};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use robit_core::{Engine, SettingError, SettingValue};
use robit_store::{SettingPlace, Store};
use robit_types::{ChannelId, ConversationKey, Platform, SettingKey, WorkspaceId};
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest request body the admin API reads (a setting's value: a system prompt at most).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct ApiState {
    engine: Engine,
    store: Arc<dyn Store>,
}

/// Who made an authenticated request: `apikey:<id>`.
#[derive(Clone)]
struct Actor(String);

pub fn router(engine: Engine, store: Arc<dyn Store>) -> Router {
    let verifier = Verifier::new(store.clone());
    Router::new()
        .route(
            "/admin/v1/settings/{platform}/{workspace}/{channel}",
            get(show),
        )
        .route(
            "/admin/v1/settings/{platform}/{workspace}/{channel}/{key}",
            axum::routing::put(set).delete(unset),
        )
        .route("/admin/v1/audit", get(audit))
        .route("/admin/v1/feedback", get(feedback))
        // Layers run outside in: the key is checked before any extractor of a handler
        // (the body limit only takes effect when a handler reads the body).
        .route_layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(ApiState { engine, store })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The authentication layer: passes the request on with its [`Actor`] only for a valid key.
async fn authenticate(State(verifier): State<Verifier>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| k.trim().to_string());
    let Some(key) = presented else {
        return error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <key>` (create one with `robit apikey create`)",
        );
    };
    match verifier.verify(&key).await {
        Ok(id) => {
            req.extensions_mut().insert(Actor(format!("apikey:{id}")));
            next.run(req).await
        }
        Err(Rejected::Invalid) => error(StatusCode::UNAUTHORIZED, "invalid API key"),
        Err(Rejected::Busy) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "an old (argon2id) key is being checked; retry, or replace the key",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    }
}

fn platform(s: &str) -> Result<Platform, Box<Response>> {
    Platform::parse(s).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("unknown platform `{s}`; use discord, slack or console"),
        ))
    })
}

/// A setting's value as JSON of its type (string, number or boolean).
fn value_json(value: &SettingValue) -> Value {
    match value {
        SettingValue::Text(text) => json!(text),
        SettingValue::Number(n) => json!(n),
        SettingValue::Switch(on) => json!(on),
    }
}

async fn show(
    State(state): State<ApiState>,
    Path((p, workspace, channel)): Path<(String, String, String)>,
) -> Response {
    let platform = match platform(&p) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = ConversationKey::new(platform, workspace, channel, None);
    // The list `/config show` prints, so the two cannot disagree on what the settings are.
    let settings: serde_json::Map<String, Value> = state
        .engine
        .effective_settings(&key)
        .await
        .entries()
        .into_iter()
        .map(|s| {
            let entry = json!({ "value": value_json(&s.value), "source": s.source.as_str() });
            (s.key.as_str().to_string(), entry)
        })
        .collect();
    Json(Value::Object(settings)).into_response()
}

#[derive(serde::Deserialize)]
struct SetBody {
    value: String,
}

async fn set(
    State(state): State<ApiState>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(path): Path<(String, String, String, String)>,
    Json(body): Json<SetBody>,
) -> Response {
    change(state, actor, path, Some(body.value)).await
}

async fn unset(
    State(state): State<ApiState>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(path): Path<(String, String, String, String)>,
) -> Response {
    change(state, actor, path, None).await
}

async fn change(
    state: ApiState,
    actor: String,
    (p, workspace, channel, key): (String, String, String, String),
    value: Option<String>,
) -> Response {
    let platform = match platform(&p) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Some(setting) = SettingKey::parse(&key) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown setting `{key}`; settings are {}",
                SettingKey::names()
            ),
        );
    };
    let place = SettingPlace {
        platform,
        workspace: WorkspaceId(workspace),
        channel: (channel != "-").then_some(ChannelId(channel)),
    };
    match state
        .engine
        .change_setting(&place, setting, value.as_deref(), &actor)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(SettingError::Invalid(problem)) => error(StatusCode::BAD_REQUEST, problem),
        Err(e) => {
            tracing::error!(error = %e, "admin api: storing a setting failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the settings could not be stored",
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit(State(state): State<ApiState>, Query(q): Query<AuditQuery>) -> Response {
    match state
        .store
        .audit_log(0, q.limit.unwrap_or(100).min(1000))
        .await
    {
        Ok(entries) => Json(
            entries
                .into_iter()
                .map(|e| {
                    json!({
                        "id": e.id, "at_ms": e.at, "platform": e.entry.platform,
                        "workspace": e.entry.workspace, "channel": e.entry.channel,
                        "actor": e.entry.actor, "action": e.entry.action,
                        "detail": e.entry.detail,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin api: reading the audit log failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log could not be read",
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct FeedbackQuery {
    days: Option<u32>,
}

async fn feedback(State(state): State<ApiState>, Query(q): Query<FeedbackQuery>) -> Response {
    let since = crate::cli::since_ms(q.days.unwrap_or(30));
    match state.store.feedback_summary(since).await {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|r| {
                    json!({
                        "provider": r.provider, "model": r.model, "up": r.up, "down": r.down,
                        "up_rate": r.up_rate(),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin api: reading feedback failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the feedback could not be read",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use robit_core::EngineConfig;
    use robit_store::Vote;
    use tower::ServiceExt;

    /// The admin API on an engine with the default configuration and a fresh SQLite store.
    struct Api {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        engine: Engine,
        app: Router,
    }

    impl Api {
        async fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = robit_store::connect_sqlite(dir.path().join("api.db"))
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let engine = Engine::new(EngineConfig::default(), store.clone(), None, None);
            let app = router(engine.clone(), store.clone());
            Api {
                _dir: dir,
                store,
                engine,
                app,
            }
        }
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call_raw(app, method, uri, key, body.map(|b| b.to_string())).await
    }

    async fn call_raw(
        app: &Router,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn feedback_lists_votes_per_model_with_the_share_of_up() {
        let Api {
            _dir, store, app, ..
        } = Api::start().await;
        let key = crate::apikey::create(store.as_ref(), "test").await.unwrap();
        let (status, _) = call(&app, "GET", "/admin/v1/feedback", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call(&app, "GET", "/admin/v1/feedback", Some(&key), None).await;
        assert_eq!((status, body), (StatusCode::OK, json!([])));

        let k = ConversationKey::new(Platform::Slack, "T1", "C1", Some("1.1".into()));
        let Ok(robit_store::Accepted::New {
            conversation,
            message_id: Some(q),
            ..
        }) = store
            .accept(robit_store::NewEvent {
                platform: Platform::Slack,
                event_id: robit_types::EventId::new("Ev1"),
                key: k,
                message: Some(robit_store::NewMessage::user(
                    robit_types::UserId::new("U1"),
                    "question",
                )),
                turn: None,
                edit: None,
            })
            .await
        else {
            panic!("a new question");
        };
        let answer = robit_store::NewMessage {
            turn: Some(q),
            served: Some(robit_store::Served {
                provider: "openai".into(),
                model: "gpt-x".into(),
            }),
            ..robit_store::NewMessage::assistant("answer", robit_store::MessageStatus::Complete)
        };
        store.append_message(conversation.id, answer).await.unwrap();
        for (user, vote) in [
            ("U1", Vote::Up),
            ("U2", Vote::Up),
            ("U3", Vote::Down),
            ("U4", Vote::Up),
        ] {
            let user = robit_types::UserId::new(user);
            assert!(store.record_feedback(q, &user, vote).await.unwrap());
        }
        let (status, body) = call(&app, "GET", "/admin/v1/feedback?days=7", Some(&key), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!([{"provider": "openai", "model": "gpt-x", "up": 3, "down": 1, "up_rate": 0.75}])
        );
    }

    #[tokio::test]
    async fn settings_change_only_with_a_valid_key_and_a_valid_value() {
        let Api {
            _dir, store, app, ..
        } = Api::start().await;
        let key = crate::apikey::create(store.as_ref(), "test").await.unwrap();
        let url = "/admin/v1/settings/slack/T1/C1";

        let (status, _) = call(&app, "GET", url, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&app, "GET", url, Some("robit_1_wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let put = format!("{url}/system_prompt");
        let (status, _) = call(
            &app,
            "PUT",
            &put,
            Some(&key),
            Some(json!({"value": "Be terse."})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = call(&app, "GET", url, Some(&key), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["system_prompt"],
            json!({"value": "Be terse.", "source": "channel"})
        );

        let (status, body) = call(
            &app,
            "PUT",
            &format!("{url}/sandbox.memory_mb"),
            Some(&key),
            Some(json!({"value": "100000"})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("sandbox.memory_mb"),
            "{body}"
        );
        let (status, _) = call(
            &app,
            "PUT",
            &format!("{url}/colour"),
            Some(&key),
            Some(json!({"value": "x"})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, body) = call(&app, "GET", "/admin/v1/audit", Some(&key), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
        assert!(body[0]["actor"].as_str().unwrap().starts_with("apikey:"));
    }

    #[tokio::test]
    async fn authentication_comes_before_the_body_is_read() {
        let Api {
            _dir, store, app, ..
        } = Api::start().await;
        let put = "/admin/v1/settings/slack/T1/C1/system_prompt";
        // Bad JSON without a key (or with a wrong one) is 401, not 400: nothing was parsed.
        for key in [None, Some("robit_1_0000")] {
            let (status, _) = call_raw(&app, "PUT", put, key, Some("{not json".into())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "key {key:?}");
        }
        let key = crate::apikey::create(store.as_ref(), "test").await.unwrap();
        let (status, _) = call_raw(&app, "PUT", put, Some(&key), Some("{not json".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A body over the limit is refused even with a key.
        let big = json!({ "value": "x".repeat(MAX_BODY_BYTES) }).to_string();
        let (status, _) = call_raw(&app, "PUT", put, Some(&key), Some(big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn lists_every_setting_config_show_lists() {
        let Api {
            _dir,
            store,
            engine,
            app,
        } = Api::start().await;
        let limits = EngineConfig::default().sandbox_limits;
        let key = crate::apikey::create(store.as_ref(), "test").await.unwrap();
        let (status, body) = call(
            &app,
            "GET",
            "/admin/v1/settings/slack/T1/C1",
            Some(&key),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let listed: std::collections::BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();

        // The names `/config show` prints, read from its text: "• `name` (source): value".
        let effective = engine
            .effective_settings(&ConversationKey::new(Platform::Slack, "T1", "C1", None))
            .await;
        let text = effective.show(&limits);
        let shown: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("• `")?.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        assert!(shown.contains("mcp_servers"), "{text}");
        assert_eq!(listed, shown, "{body}");
        assert_eq!(
            body["mcp_servers"],
            json!({"value": "all", "source": "global"})
        );
        assert_eq!(body["run_code"]["value"], json!(true));
    }
}
