//! The optional admin HTTP API (`admin_api.enabled`), mounted on the binary's HTTP server
//! under `/admin/v1`: the same settings `/config` changes, and the audit log, for holders of
//! a key from `robit apikey create`.
//!
//! - `GET    /admin/v1/settings/{platform}/{workspace}/{channel}`: effective settings, with
//!   where each comes from
//! - `PUT    /admin/v1/settings/{platform}/{workspace}/{channel}/{key}` with
//!   `{"value": "…"}`: set (`channel` = `-` for the whole workspace)
//! - `DELETE /admin/v1/settings/{platform}/{workspace}/{channel}/{key}`: unset
//! - `GET    /admin/v1/audit?limit=N`: the newest audit entries
//!
//! Handlers are thin: validation, storage and auditing are the engine's
//! (`Engine::change_setting`), exactly as for `/config`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use robit_core::{Engine, SettingError, Sourced};
use robit_store::{SettingPlace, Store};
use robit_types::{ChannelId, ConversationKey, Platform, SettingKey, WorkspaceId};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
struct ApiState {
    engine: Engine,
    store: Arc<dyn Store>,
}

pub fn router(engine: Engine, store: Arc<dyn Store>) -> Router {
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
        .with_state(ApiState { engine, store })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The actor (`apikey:<id>`) of a request with a valid key.
async fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<String, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(key) => match crate::apikey::verify(state.store.as_ref(), key.trim()).await {
            Some(id) => Ok(format!("apikey:{id}")),
            None => Err(error(StatusCode::UNAUTHORIZED, "invalid API key")),
        },
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <key>` (create one with `robit apikey create`)",
        )),
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

fn sourced<T: serde::Serialize>(s: &Sourced<T>) -> Value {
    json!({ "value": s.value, "source": s.source.as_str() })
}

async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((p, workspace, channel)): Path<(String, String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &headers).await {
        return r;
    }
    let platform = match platform(&p) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let key = ConversationKey::new(platform, workspace, channel, None);
    let e = state.engine.effective_settings(&key).await;
    Json(json!({
        "system_prompt": sourced(&e.system_prompt),
        "model": sourced(&e.model),
        "run_code": sourced(&e.run_code),
        "sandbox.wall_time_ms": sourced(&e.wall_time_ms),
        "sandbox.memory_mb": sourced(&e.memory_mb),
        "sandbox.output_kb": sourced(&e.output_kb),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct SetBody {
    value: String,
}

async fn set(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String, String)>,
    Json(body): Json<SetBody>,
) -> Response {
    change(state, headers, path, Some(body.value)).await
}

async fn unset(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String, String)>,
) -> Response {
    change(state, headers, path, None).await
}

async fn change(
    state: ApiState,
    headers: HeaderMap,
    (p, workspace, channel, key): (String, String, String, String),
    value: Option<String>,
) -> Response {
    let actor = match authorize(&state, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
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

async fn audit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(r) = authorize(&state, &headers).await {
        return r;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use robit_core::EngineConfig;
    use tower::ServiceExt;

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
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
    async fn settings_change_only_with_a_valid_key_and_a_valid_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = robit_store::connect_sqlite(dir.path().join("api.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let engine = Engine::new(EngineConfig::default(), store.clone(), None, None);
        let app = router(engine, store.clone());
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
}
