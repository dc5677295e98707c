//! The HTTP side of the emulator: everything under `/api/v10`, the way Discord answers it.
//!
//! One handler takes every request so that recording, injected faults, authentication,
//! rate-limit headers and 429s are applied the same way to every route; the per-route work is
//! in `routes.rs`. Bodies are JSON or `multipart/form-data` (`payload_json` + `files[n]`), as
//! serenity sends them. Nothing here knows about robit.

use super::routes::{self, ApiBody, Reply};
use super::server::Shared;
use super::state::{BucketState, FaultKind, RecordedRequest};
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A file part of a multipart body.
#[derive(Debug, Clone)]
pub struct FilePart {
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

pub async fn api(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let full_path = uri.path().to_string();
    let Some(path) = full_path.strip_prefix("/api/v10") else {
        return (StatusCode::NOT_FOUND, "404: Not Found").into_response();
    };
    let path = path.to_string();
    let method_s = method.as_str().to_string();
    let (json_body, files) = match parse_body(&headers, &body) {
        Ok(parsed) => parsed,
        Err(msg) => {
            let reply = Reply::error(400, 50109, &msg);
            return finish(
                &shared,
                &method_s,
                &path,
                &uri,
                &headers,
                Value::Null,
                &[],
                reply,
            );
        }
    };

    let fault = shared.lock().take_fault(&method_s, &path);
    match fault {
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::RateLimited { retry_after }) => {
            let limit = shared.lock().config.message_rate_limit.limit;
            let reply = rate_limited(
                BucketState {
                    limit,
                    remaining: 0,
                    reset_after: retry_after,
                    limited: Some(retry_after),
                },
                "injected",
            );
            return finish(
                &shared, &method_s, &path, &uri, &headers, json_body, &files, reply,
            );
        }
        Some(FaultKind::GlobalRateLimited { retry_after }) => {
            let reply = Reply {
                status: 429,
                body: Some(json!({
                    "message": "You are being rate limited.",
                    "retry_after": (retry_after.as_secs_f64() * 1000.0).ceil() / 1000.0,
                    "global": true,
                    "code": 0,
                })),
                bucket: None,
            };
            let mut response = finish(
                &shared, &method_s, &path, &uri, &headers, json_body, &files, reply,
            );
            let h = response.headers_mut();
            put(h, "x-ratelimit-global", "true".to_string());
            put(h, "x-ratelimit-scope", "global".to_string());
            put(
                h,
                header::RETRY_AFTER.as_str(),
                retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            );
            if let Some(last) = shared.lock().requests.last_mut() {
                last.response_headers = header_list(response.headers());
            }
            return response;
        }
        Some(FaultKind::Status(status)) => {
            let reply = Reply::error(status, 0, &format!("{status}: Emulated failure"));
            return finish(
                &shared, &method_s, &path, &uri, &headers, json_body, &files, reply,
            );
        }
        None => {}
    }

    let reply = {
        let mut st = shared.lock();
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.strip_prefix("Bot ") == Some(st.config.token.as_str()));
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let request = ApiBody {
            json: &json_body,
            files: &files,
            query: uri.query().unwrap_or_default(),
        };
        routes::route(&mut st, &method_s, &segments, request, authorized)
    };
    finish(
        &shared, &method_s, &path, &uri, &headers, json_body, &files, reply,
    )
}

/// The CDN: an attachment's bytes at the URL its message carries (no auth, as on Discord).
pub async fn attachment(
    AxumState(shared): AxumState<Arc<Shared>>,
    axum::extract::Path((channel, id, _name)): axum::extract::Path<(u64, u64, String)>,
) -> Response {
    let st = shared.lock();
    let found = st
        .messages
        .values()
        .filter(|m| m.channel_id == channel)
        .flat_map(|m| m.attachments.iter())
        .find(|a| a.id == id)
        .cloned();
    match found {
        Some(a) => {
            let ct = a
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_string());
            ([(header::CONTENT_TYPE, ct)], a.data).into_response()
        }
        None => (StatusCode::NOT_FOUND, "404: Not Found").into_response(),
    }
}

/// Records the request and turns a [`Reply`] into an HTTP response with Discord's headers.
#[allow(clippy::too_many_arguments)]
fn finish(
    shared: &Shared,
    method: &str,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Value,
    files: &[FilePart],
    reply: Reply,
) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Some(v) => (status, axum::Json(v)).into_response(),
        None => status.into_response(),
    };
    let h = response.headers_mut();
    // Discord's responses come through Google's front end; discord.py treats a 429 without
    // `Via` as a Cloudflare ban and gives up instead of waiting.
    put(h, "via", "1.1 google".to_string());
    if let Some((bucket, key)) = reply.bucket {
        // Rounded up to the millisecond: a client that waits this long finds the bucket reset.
        let reset_after = (bucket.reset_after.as_secs_f64() * 1000.0).ceil() / 1000.0;
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            + reset_after;
        put(h, "x-ratelimit-limit", bucket.limit.to_string());
        put(h, "x-ratelimit-remaining", bucket.remaining.to_string());
        put(h, "x-ratelimit-reset", format!("{reset:.3}"));
        put(h, "x-ratelimit-reset-after", format!("{reset_after:.3}"));
        put(h, "x-ratelimit-bucket", bucket_hash(&key));
        if let Some(retry) = bucket.limited {
            put(h, "x-ratelimit-scope", "user".to_string());
            // The header is whole seconds; the body has the precise float.
            put(
                h,
                header::RETRY_AFTER.as_str(),
                retry.as_secs_f64().ceil().max(1.0).to_string(),
            );
        }
    }
    shared.lock().requests.push(RecordedRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        files: files
            .iter()
            .map(|f| (f.field.clone(), f.filename.clone(), f.data.len()))
            .collect(),
        status: status.as_u16(),
        response_headers: header_list(response.headers()),
        at: Instant::now(),
    });
    response
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn put(h: &mut HeaderMap, name: &str, value: String) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&value),
    ) {
        h.insert(n, v);
    }
}

/// Discord's bucket ids are opaque hashes; a stable hex digest of the key stands in for one.
fn bucket_hash(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Discord's 429: body with `retry_after` in float seconds, headers filled by [`finish`].
pub fn rate_limited(bucket: BucketState, key: &str) -> Reply {
    let retry = bucket.limited.unwrap_or(Duration::ZERO);
    Reply {
        status: 429,
        body: Some(json!({
            "message": "You are being rate limited.",
            "retry_after": (retry.as_secs_f64() * 1000.0).ceil() / 1000.0,
            "global": false,
        })),
        bucket: Some((bucket, key.to_string())),
    }
}

type Parsed = (Value, Vec<FilePart>);

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Parsed, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(boundary) = content_type
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
    {
        return parse_multipart(body, boundary.trim_matches('"'));
    }
    if body.is_empty() {
        return Ok((Value::Null, Vec::new()));
    }
    serde_json::from_slice(body)
        .map(|v| (v, Vec::new()))
        .map_err(|_| "The request body contains invalid JSON.".to_string())
}

/// A small `multipart/form-data` reader: `payload_json` becomes the JSON body, every part
/// with a filename becomes a file.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Parsed, String> {
    let delimiter = format!("--{boundary}");
    let mut json_body = Value::Null;
    let mut files = Vec::new();
    for part in split_bytes(body, delimiter.as_bytes()).into_iter().skip(1) {
        if part.starts_with(b"--") {
            break;
        }
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let mut data = &part[split + 4..];
        data = data.strip_suffix(b"\r\n").unwrap_or(data);
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                name = param(line, "name");
                filename = param(line, "filename");
            } else if lower.starts_with("content-type:") {
                content_type = line.split_once(':').map(|(_, v)| v.trim().to_string());
            }
        }
        let name = name.unwrap_or_default();
        match filename {
            Some(filename) => files.push(FilePart {
                field: name,
                filename,
                content_type,
                data: data.to_vec(),
            }),
            None if name == "payload_json" => {
                json_body = serde_json::from_slice(data)
                    .map_err(|_| "payload_json is not valid JSON".to_string())?;
            }
            None => {}
        }
    }
    Ok((json_body, files))
}

fn param(line: &str, key: &str) -> Option<String> {
    line.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut hay: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(i) = find(hay, delimiter) {
        parts.push(&hay[..i]);
        hay = &hay[i + delimiter.len()..];
    }
    parts.push(hay);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_payload_json_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"content\":\"hi\"}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"out.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";
        let (json, files) = parse_multipart(body, "XyZ").unwrap();
        assert_eq!(json["content"], "hi");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].field, "files[0]");
        assert_eq!(files[0].filename, "out.txt");
        assert_eq!(files[0].data, b"line1\r\nline2");
    }
}
