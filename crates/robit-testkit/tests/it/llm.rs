//! The fake LLM's bytes: SSE framing, chunk fields, usage, errors, the model list and auth.

use robit_testkit::{FakeLlm, Reply};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 exchange: status, lower-case headers, and the de-chunked body.
pub(super) struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of an SSE body, checking the framing on the way.
    fn sse_data(&self) -> Vec<String> {
        assert!(self.body.ends_with("\n\n"), "{:?}", self.body);
        self.body
            .split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").unwrap_or_else(|| {
                    panic!("event without a data field: {event:?}");
                });
                assert!(!data.contains('\n'), "{event:?}");
                data.to_string()
            })
            .collect()
    }
}

/// Sends `request` as it is and reads the whole answer (the request should say
/// `Connection: close`).
pub(super) async fn exchange(addr: SocketAddr, request: &str) -> Raw {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    socket.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_lowercase(), v.trim().to_string())
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

async fn post_chat(fake: &FakeLlm, body: &Value, auth: Option<&str>) -> Raw {
    let body = body.to_string();
    let auth = auth.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(fake.addr(), &request).await
}

fn chat_body(include_usage: bool) -> Value {
    json!({
        "model": "gpt-wire",
        "stream": true,
        "stream_options": {"include_usage": include_usage},
        "messages": [{"role": "user", "content": "say hello world"}],
    })
}

#[tokio::test]
async fn text_answer_has_the_openai_chunk_shape() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::text("hello big world").usage(4, 3));
    let raw = post_chat(&fake, &chat_body(true), None).await;
    assert_eq!(raw.status, 200);
    assert!(raw
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let data = raw.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-wire");
        assert!(chunk["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(chunk["created"].is_u64());
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "hello big world");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
}

#[tokio::test]
async fn usage_chunk_is_sent_only_when_asked_for() {
    let fake = FakeLlm::start().await;
    let raw = post_chat(&fake, &chat_body(false), None).await;
    let data = raw.sse_data();
    assert!(data.iter().all(|d| !d.contains("usage")), "{data:?}");
    assert_eq!(data.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn tool_call_is_split_into_an_opening_piece_and_argument_fragments() {
    let fake = FakeLlm::start().await;
    let arguments = r#"{"code":"print('hi')","language":"python"}"#;
    fake.push(Reply::tool_call("run_code", arguments));
    let data = post_chat(&fake, &chat_body(false), None).await.sse_data();
    let pieces: Vec<Value> = data
        .iter()
        .filter(|d| d.contains("tool_calls"))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .collect();
    assert!(pieces.len() > 2, "{pieces:?}");
    assert_eq!(pieces[0]["id"], "call_1_0");
    assert_eq!(pieces[0]["type"], "function");
    assert_eq!(pieces[0]["function"]["name"], "run_code");
    assert!(pieces[1..]
        .iter()
        .all(|p| p.get("id").is_none() && p["index"] == 0));
    let joined: String = pieces
        .iter()
        .filter_map(|p| p["function"]["arguments"].as_str())
        .collect();
    assert_eq!(joined, arguments);
    assert!(data
        .iter()
        .any(|d| d.contains(r#""finish_reason":"tool_calls""#)));
}

#[tokio::test]
async fn error_after_sends_an_error_chunk_and_no_done() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::error_after("partial", "boom"));
    let data = post_chat(&fake, &chat_body(true), None).await.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["message"], "boom");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[tokio::test]
async fn status_reply_has_an_openai_error_body_and_retry_after() {
    let fake = FakeLlm::start().await;
    fake.push(Reply::status(429).retry_after(3));
    let raw = post_chat(&fake, &chat_body(true), None).await;
    assert_eq!(raw.status, 429);
    assert_eq!(raw.header("retry-after"), Some("3"));
    let body: Value = serde_json::from_str(&raw.body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn models_requires_the_key_when_one_is_set() {
    let fake = FakeLlm::with_api_key("sk-k").await;
    let get = |auth: &str| {
        format!("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
    };
    let denied = exchange(fake.addr(), &get("")).await;
    assert_eq!(denied.status, 401);
    let ok = exchange(fake.addr(), &get("Authorization: Bearer sk-k\r\n")).await;
    assert_eq!(ok.status, 200);
    let body: Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(
        body["data"][0],
        json!({"id": "fake-model", "object": "model", "created": 0, "owned_by": "robit-testkit"})
    );
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_body() {
    let fake = FakeLlm::with_api_key("sk-k").await;
    post_chat(&fake, &chat_body(true), Some("sk-k")).await;
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("Authorization"), Some("Bearer sk-k"));
    assert_eq!(recorded[0].body, chat_body(true));
}

#[tokio::test]
async fn scripted_replies_are_used_in_order_then_the_echo() {
    let fake = FakeLlm::start().await;
    fake.push_all([Reply::text("first"), Reply::text("second")]);
    let mut answers = Vec::new();
    for _ in 0..3 {
        let data = post_chat(&fake, &chat_body(false), None).await.sse_data();
        let text: String = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        answers.push(text);
    }
    assert_eq!(answers, ["first", "second", "echo: say hello world"]);
    assert_eq!(fake.pending(), 0);
}
