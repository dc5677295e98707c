//! One turn: a chat exchange with the model (with tool rounds) or a command.

use crate::attachments;
use crate::budget;
use crate::journal::PAUSED_NOTE;
use crate::metrics as m;
use crate::outcome::TurnOutcome;
use crate::render::{wait_until, StreamRenderer};
use crate::reply::say;
use crate::settings;
use crate::shared::{RunningTurn, Shared};
use crate::tokens::estimate_tokens;
use crate::tools::{Toolbox, RUN_CODE_TOOL};
use futures::StreamExt;
use robit_llm::{ChatMessage, ChatRequest, LlmError, Provider, Role, StreamEvent, ToolCall};
use robit_store::{
    Conversation, MessageRole, MessageStatus, NewMessage, Served, StoredMessage, TurnStatus,
    UsageRecord,
};
use robit_types::{AnswerControls, Inbound, ReplySink};
use std::sync::Arc;
use tracing::Instrument;

/// Ends a journaled turn's journal entry. A turn cut off by a graceful stop stays open, so
/// the next process finishes it. Retried a few times: a turn left open would be answered a
/// second time by whoever takes it over.
pub(crate) async fn close_turn(
    shared: &Arc<Shared>,
    turn: i64,
    holder: &str,
    outcome: &TurnOutcome,
) {
    let status = match outcome {
        TurnOutcome::Cancelled if shared.shutdown.is_cancelled() => return,
        TurnOutcome::Cancelled | TurnOutcome::Stopped => TurnStatus::Cancelled,
        TurnOutcome::Failed(_) => TurnStatus::Failed,
        _ => TurnStatus::Done,
    };
    let mut pause = std::time::Duration::from_millis(100);
    for _ in 0..5 {
        match shared.store.set_turn_status(turn, holder, status).await {
            Ok(_) => return,
            Err(e) => tracing::warn!(error = %e, turn, "closing a turn failed; retrying"),
        }
        tokio::time::sleep(pause).await;
        pause *= 3;
    }
    tracing::error!(
        turn,
        "closing a turn failed; it may be answered again after a takeover"
    );
}

/// What a takeover found of the turn's earlier attempt.
enum Earlier {
    /// Its answer is stored: the crash came after it was complete.
    Answered,
    /// Start (again) from the stored history; `tool_rounds` says whether completed tool
    /// rounds are reused.
    Continue { tool_rounds: bool },
}

/// Prepares a resumed chat turn: reuses completed tool rounds and tells the model, for each
/// call that was in flight, that its result is unknown. A tool call is never repeated by the
/// engine: an MCP tool may have had effects; code runs are pure, so the model may simply ask
/// for the run again.
async fn take_over(shared: &Arc<Shared>, conversation: &Conversation, turn: i64) -> Earlier {
    let history = match shared
        .store
        .turn_history(conversation.id, turn, shared.config.history_limit)
        .await
    {
        Ok(h) => h,
        Err(_) => return Earlier::Continue { tool_rounds: false },
    };
    let Some(start) = history.iter().position(|m| m.id == turn) else {
        return Earlier::Continue { tool_rounds: false };
    };
    let own = &history[start + 1..];
    if let Some(last) = own.last() {
        if last.role == MessageRole::Assistant
            && last.tool_calls.is_none()
            && last.status == MessageStatus::Complete
        {
            return Earlier::Answered;
        }
    }
    let mut calls: Vec<ToolCall> = Vec::new();
    for m in own {
        if let Some(json) = &m.tool_calls {
            calls.extend(serde_json::from_str::<Vec<ToolCall>>(json).unwrap_or_default());
        }
    }
    let answered: Vec<&str> = own
        .iter()
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    for call in calls.iter().filter(|c| !answered.contains(&c.id.as_str())) {
        let content = if call.name == RUN_CODE_TOOL {
            "error: robit restarted while this code ran, so its result is unknown; call \
             run_code again if you need it."
        } else {
            "error: robit restarted while this tool call was in flight, so its result is \
             unknown; it was not repeated, since it may have taken effect. Tell the user."
        };
        persist(
            shared,
            conversation,
            turn,
            tool_result(&call.id, content.to_string()),
        )
        .await;
    }
    Earlier::Continue {
        tool_rounds: !calls.is_empty(),
    }
}

/// A chat turn: history → model → streamed reply, with up to `max_tool_rounds` tool rounds.
/// `taken_over`: the turn was started before, by a process that died or another replica.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn chat(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    conversation: &Conversation,
    turn: i64,
    sink: &Arc<dyn ReplySink>,
    running: &RunningTurn,
    journaled: bool,
    taken_over: bool,
    kept_tool_rounds: &mut bool,
) -> TurnOutcome {
    let Some(provider) = shared.provider.clone() else {
        say(sink, &shared.config.no_provider_hint).await;
        return TurnOutcome::NoProvider;
    };
    // Only an earlier attempt can have stored part of this turn (an answer, tool rounds): a
    // turn that starts here for the first time has nothing of its own stored yet.
    if taken_over {
        match take_over(shared, conversation, turn)
            .instrument(m::stage!("take_over"))
            .await
        {
            Earlier::Answered => return TurnOutcome::Replied,
            Earlier::Continue { tool_rounds } => *kept_tool_rounds = tool_rounds,
        }
    }
    // Settings first: the model they pick (unless the conversation chose one with `/model`)
    // is the one the request goes to, so it also decides whether images are sent.
    let settings = settings::effective(shared.store.as_ref(), &shared.config, &inbound.key)
        .instrument(m::stage!("settings"));
    let load_history = shared
        .store
        .turn_history(conversation.id, turn, shared.config.history_limit)
        .instrument(m::stage!("history"));
    let (settings, images, history) = if attachments::attachments(inbound).is_empty() {
        // Nothing to add to the history first: both reads at once.
        let (settings, history) = tokio::join!(settings, load_history);
        (settings, Vec::new(), history)
    } else {
        let settings = settings.await;
        let model = conversation
            .model
            .clone()
            .unwrap_or_else(|| settings.model.value.clone());
        // Before history is loaded, so the attachments' text is part of it.
        let images = attachments::include_in_turn(
            shared.store.as_ref(),
            &shared.config.attachments,
            inbound,
            conversation,
            turn,
            sink,
            &model,
        )
        .await;
        (settings, images, load_history.await)
    };
    let model = conversation
        .model
        .clone()
        .unwrap_or_else(|| settings.model.value.clone());
    let history = match history {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "loading history failed");
            say(
                sink,
                "⚠️ I couldn't load this conversation's history; please try again.",
            )
            .await;
            return TurnOutcome::Failed("history unavailable".into());
        }
    };
    let mut messages = vec![ChatMessage::new(
        Role::System,
        settings.system_prompt.value.clone(),
    )];
    messages.extend(history.iter().map(to_chat_message));
    let mut messages = match budget::fit(messages, shared.config.prompt_budget(&model)) {
        Ok(m) => m,
        Err(e) => {
            say(
                sink,
                &format!(
                    "⚠️ That message is too long for `{model}`: about {} tokens, and the model \
                     takes {}. Shorten it, or switch models with `/model`.",
                    e.needed, e.budget
                ),
            )
            .await;
            return TurnOutcome::Failed("prompt too large".into());
        }
    };
    attachments::attach_images(&mut messages, images);
    let toolbox = Toolbox::new(
        shared.sandbox.as_deref(),
        shared.tools.as_deref(),
        &shared.config,
        &settings,
    );
    let tools = toolbox.offered();
    let mut typing = Some(sink.typing());

    for round in 0..=shared.config.max_tool_rounds {
        // Stopped between rounds (while a tool ran): nothing more is asked of the model.
        if running.cancel.is_cancelled() {
            return match running.stopped_by() {
                Some(by) => {
                    say(sink, &format!("⏹️ Stopped by {by}.")).await;
                    TurnOutcome::Stopped
                }
                None => TurnOutcome::Cancelled,
            };
        }
        let request = ChatRequest {
            model: model.clone(),
            messages: messages.clone(),
            tools: if round < shared.config.max_tool_rounds {
                tools.clone()
            } else {
                // Last round: no tools, so the model has to answer in words.
                Vec::new()
            },
            max_tokens: Some(shared.config.max_reply_tokens.max(1)),
        };
        let prompt_estimate: u64 = request
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum();
        // One span per model call: what was asked of whom, and what it cost. The provider's
        // HTTP request carries it (`traceparent`), so a provider that traces joins the trace.
        // Numbers as i64: the OpenTelemetry bridge exports a u64 as a string.
        let call_span = tracing::info_span!(
            "model.call",
            round = round as i64,
            provider = provider.name(),
            model = %model,
            served_provider = tracing::field::Empty,
            served_model = tracing::field::Empty,
            input_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
            end = tracing::field::Empty,
        );
        let round_result = async {
            let stream = provider
                .stream(request, running.cancel.clone())
                .instrument(m::stage!("provider"));
            // The typing indicator goes out while the first request is made rather than
            // before it (on Discord it is an HTTP call of its own), and is done before
            // anything is posted, so it never shows after the answer has started.
            let stream = match typing.take() {
                Some(typing) => tokio::join!(typing, stream).1,
                None => stream.await,
            };
            stream_round(shared, stream, inbound, sink, running, journaled).await
        }
        .instrument(call_span.clone())
        .await;
        let (served_provider, served_model) = round_result
            .served
            .clone()
            .unwrap_or_else(|| (provider.name().to_string(), model.clone()));
        call_span.record("served_provider", served_provider.as_str());
        call_span.record("served_model", served_model.as_str());
        if let Some(usage) = &round_result.usage {
            call_span.record("input_tokens", usage.prompt_tokens as i64);
            call_span.record("output_tokens", usage.completion_tokens as i64);
        }
        call_span.record("end", round_result.end.name());
        record_usage(
            shared,
            inbound,
            conversation,
            &served_provider,
            &served_model,
            &round_result,
            prompt_estimate,
        )
        .instrument(m::stage!("usage"))
        .await;
        let served = Some(Served {
            provider: served_provider,
            model: served_model,
        });
        let answer = |text: String, status: MessageStatus| NewMessage {
            served: served.clone(),
            ..NewMessage::assistant(text, status)
        };
        match round_result.end {
            RoundEnd::Answered => {
                persist(
                    shared,
                    conversation,
                    turn,
                    answer(round_result.text, MessageStatus::Complete),
                )
                .instrument(m::stage!("persist_answer"))
                .await;
                return TurnOutcome::Replied;
            }
            RoundEnd::Capped => {
                // What the user saw, marked as cut short so the model knows it was.
                persist(
                    shared,
                    conversation,
                    turn,
                    answer(round_result.text, MessageStatus::Interrupted),
                )
                .await;
                return TurnOutcome::Replied;
            }
            RoundEnd::Stopped => {
                // What the user saw, marked as stopped: history matches the thread, and the
                // model knows the answer was cut by the user.
                if !round_result.text.is_empty() {
                    persist(
                        shared,
                        conversation,
                        turn,
                        answer(round_result.text, MessageStatus::Stopped),
                    )
                    .await;
                }
                return TurnOutcome::Stopped;
            }
            end @ (RoundEnd::Failed(_) | RoundEnd::Cancelled) => {
                // Keep what the user saw, marked as cut short, so history matches the thread;
                // except a journaled answer paused by a graceful stop: it will be finished.
                let paused = journaled
                    && matches!(end, RoundEnd::Cancelled)
                    && shared.shutdown.is_cancelled();
                if !round_result.text.is_empty() && !paused {
                    persist(
                        shared,
                        conversation,
                        turn,
                        answer(round_result.text, MessageStatus::Interrupted),
                    )
                    .await;
                }
                return match end {
                    RoundEnd::Failed(short) => TurnOutcome::Failed(short),
                    _ => TurnOutcome::Cancelled,
                };
            }
            RoundEnd::ToolCalls(calls) => {
                let calls_json = serde_json::to_string(&calls).expect("tool calls serialize");
                let mut assistant =
                    NewMessage::assistant(round_result.text.clone(), MessageStatus::Complete);
                assistant.tool_calls = Some(calls_json);
                persist(shared, conversation, turn, assistant).await;
                let mut msg = ChatMessage::new(Role::Assistant, round_result.text);
                msg.tool_calls = calls.clone();
                messages.push(msg);
                let cap = shared.config.max_tool_calls_per_round;
                if calls.len() > cap {
                    say(
                        sink,
                        &format!(
                            "⚠️ The model asked for {} tool calls at once; only the first {cap} \
                             were run.",
                            calls.len()
                        ),
                    )
                    .await;
                }
                let tool_round = tracing::info_span!(
                    "tool.round",
                    round = round as i64,
                    calls = calls.len() as i64
                );
                async {
                    for (i, call) in calls.into_iter().enumerate() {
                        // Every call gets a result (the APIs require one per call id); those past
                        // the cap say why they did not run.
                        let result = if i < cap {
                            // Stop cuts a tool run short too: the run's future is dropped (a
                            // sandbox ends a run whose caller went away), and the loop ends at
                            // the next round's check.
                            tokio::select! {
                                result = toolbox.run(sink, &call) => result,
                                _ = running.cancel.cancelled() => {
                                    "not run to the end: the turn was stopped".to_string()
                                }
                            }
                        } else {
                            format!("not run: at most {cap} tool calls are run per response")
                        };
                        persist(
                            shared,
                            conversation,
                            turn,
                            tool_result(&call.id, result.clone()),
                        )
                        .await;
                        let mut tool_msg = ChatMessage::new(Role::Tool, result);
                        tool_msg.tool_call_id = Some(call.id);
                        messages.push(tool_msg);
                    }
                }
                .instrument(tool_round)
                .await;
            }
        }
    }
    let note = format!(
        "⚠️ I stopped after {} tool rounds without a final answer.",
        shared.config.max_tool_rounds
    );
    say(sink, &note).await;
    TurnOutcome::Failed("tool round limit".into())
}

/// The stored result of one tool call, as the APIs want one per call id.
fn tool_result(call_id: &str, content: String) -> NewMessage {
    NewMessage {
        role: MessageRole::Tool,
        content,
        tool_calls: None,
        tool_call_id: Some(call_id.to_string()),
        status: MessageStatus::Complete,
        author: None,
        turn: None,
        served: None,
        platform_ref: None,
    }
}

enum RoundEnd {
    Answered,
    /// The answer reached `max_reply_chars` and was cut there; the user was told.
    Capped,
    ToolCalls(Vec<ToolCall>),
    /// The provider or platform failed; the user was told. The string is a short reason.
    Failed(String),
    Cancelled,
    /// The asker (or an admin) pressed Stop.
    Stopped,
}

impl RoundEnd {
    /// How the round ended, for its span.
    fn name(&self) -> &'static str {
        match self {
            RoundEnd::Answered => "answered",
            RoundEnd::Capped => "capped",
            RoundEnd::ToolCalls(_) => "tool_calls",
            RoundEnd::Failed(_) => "failed",
            RoundEnd::Cancelled => "cancelled",
            RoundEnd::Stopped => "stopped",
        }
    }
}

struct RoundResult {
    text: String,
    usage: Option<robit_llm::Usage>,
    /// The provider and upstream model that answered, when a router says so.
    served: Option<(String, String)>,
    end: RoundEnd,
}

/// Streams one model response (the provider's answer to the round's request) into the thread.
async fn stream_round(
    shared: &Arc<Shared>,
    stream: Result<robit_llm::ChatStream, LlmError>,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    running: &RunningTurn,
    journaled: bool,
) -> RoundResult {
    let platform = inbound.key.platform;
    let mut renderer =
        StreamRenderer::new(sink.clone(), platform).measure_first_reply_from(inbound.received_at);
    // Stop while it streams; the votes once this round's text is the answer (a round that
    // ends in tool calls drops its buttons: the answer comes in a later round).
    renderer.set_controls(AnswerControls::Streaming { turn: running.turn });
    let done = AnswerControls::Done { turn: running.turn };
    let mut calls = Vec::new();
    let mut usage = None;
    let mut served = None;
    let max_chars = shared.config.max_reply_chars;
    let mut shown_chars = 0usize;
    let mut finish_reason = String::new();
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "provider request failed");
            say(sink, &provider_failure_note(&e, false)).await;
            let end = match running.stopped_by() {
                Some(_) => RoundEnd::Stopped,
                None => RoundEnd::Failed(e.to_string()),
            };
            return RoundResult {
                text: String::new(),
                usage,
                served: served.clone(),
                end,
            };
        }
    };
    let end = loop {
        let flush_at = renderer.next_flush_at();
        tokio::select! {
            biased;
            _ = async { wait_until(flush_at.expect("guarded")).await }, if flush_at.is_some() => {
                if let Err(e) = renderer.flush().await {
                    tracing::warn!(error = %e, "posting the reply failed");
                    break RoundEnd::Failed(format!("platform: {e}"));
                }
            }
            event = stream.next() => match event {
                Some(Ok(StreamEvent::TextDelta(t))) => {
                    let n = t.chars().count();
                    if shown_chars + n <= max_chars {
                        shown_chars += n;
                        renderer.push(&t);
                        continue;
                    }
                    // Cut here: dropping the stream ends the request, so a model that does
                    // not stop costs no more than this.
                    let head: String = t.chars().take(max_chars - shown_chars).collect();
                    renderer.push(&head);
                    if open_fence(renderer.text()) {
                        renderer.push("\n```");
                    }
                    let note = format!(
                        "✂️ The answer was cut here: replies are limited to {max_chars} characters."
                    );
                    renderer.set_controls(done);
                    if let Err(e) = renderer.finish(Some(&note)).await {
                        tracing::warn!(error = %e, "posting the reply failed");
                    }
                    let text = strip_note(renderer.text(), &note);
                    return RoundResult { text, usage, served, end: RoundEnd::Capped };
                }
                Some(Ok(StreamEvent::ToolCall(c))) => calls.push(c),
                Some(Ok(StreamEvent::Usage(u))) => usage = Some(u),
                // Which provider answered; the engine does not record it yet.
                Some(Ok(StreamEvent::Served { provider, model })) => {
                    tracing::info!(%provider, %model, "serving provider");
                    served = Some((provider, model));
                }
                Some(Ok(StreamEvent::Done { reason })) => {
                    finish_reason = reason;
                    break if calls.is_empty() { RoundEnd::Answered } else { RoundEnd::ToolCalls(std::mem::take(&mut calls)) };
                }
                None => {
                    break if calls.is_empty() { RoundEnd::Answered } else { RoundEnd::ToolCalls(std::mem::take(&mut calls)) };
                }
                Some(Err(LlmError::Cancelled)) => {
                    let stopped = running.stopped_by().map(|by| format!("⏹️ Stopped by {by}."));
                    let note = if let Some(stopped) = &stopped {
                        stopped.as_str()
                    } else if shared.shutdown.is_cancelled() && journaled {
                        PAUSED_NOTE
                    } else if shared.shutdown.is_cancelled() {
                        "⚠️ robit is restarting; this answer was cut off. Ask again in a moment."
                    } else {
                        "⏹️ Stopped: a newer message in this conversation replaced this answer."
                    };
                    // A paused answer keeps no buttons: the next process finishes it.
                    renderer.set_controls(if shared.shutdown.is_cancelled() {
                        AnswerControls::None
                    } else {
                        done
                    });
                    let _ = renderer.finish(Some(note)).await;
                    if let Some(stopped) = &stopped {
                        let text = strip_note(renderer.text(), stopped);
                        return RoundResult { text, usage, served, end: RoundEnd::Stopped };
                    }
                    break RoundEnd::Cancelled;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "provider stream failed");
                    let shown = renderer.has_posted() || !renderer.text().is_empty();
                    let note = provider_failure_note(&e, shown);
                    renderer.set_controls(done);
                    if let Err(se) = renderer.finish(Some(&note)).await {
                        tracing::warn!(error = %se, "posting the error note failed");
                    }
                    let text = strip_note(renderer.text(), &note);
                    return RoundResult { text, usage, served, end: RoundEnd::Failed(e.to_string()) };
                }
            }
        }
    };
    if matches!(end, RoundEnd::Answered | RoundEnd::ToolCalls(_)) {
        // The provider stopped at `max_tokens`: say so, or the user takes it for the end.
        let note = note_text(&finish_reason, shared);
        if note.is_some() && open_fence(renderer.text()) {
            renderer.push("\n```");
        }
        renderer.set_controls(match end {
            RoundEnd::ToolCalls(_) => AnswerControls::None,
            _ => done,
        });
        if let Err(e) = renderer.finish(note.as_deref()).await {
            tracing::warn!(error = %e, "posting the reply failed");
            return RoundResult {
                text: renderer.text().to_string(),
                usage,
                served: served.clone(),
                end: RoundEnd::Failed(format!("platform: {e}")),
            };
        }
    }
    let text = match &note_text(&finish_reason, shared) {
        Some(note) => strip_note(renderer.text(), note),
        None => renderer.text().to_string(),
    };
    RoundResult {
        text,
        usage,
        served,
        end,
    }
}

/// The note shown when the provider stopped at `max_tokens`.
fn note_text(finish_reason: &str, shared: &Shared) -> Option<String> {
    (finish_reason == "length").then(|| {
        format!(
            "✂️ The answer reached the limit of {} tokens and stops here.",
            shared.config.max_reply_tokens
        )
    })
}

/// Whether `text` ends inside a code block (an odd number of fence lines).
fn open_fence(text: &str) -> bool {
    let safe = robit_types::fence::fence_safe(text);
    safe.lines()
        .filter(|l| robit_types::fence::is_bare_fence_line(l))
        .count()
        % 2
        == 1
}

/// The renderer holds text + note; history keeps only what the model said.
fn strip_note(text: &str, note: &str) -> String {
    text.strip_suffix(note)
        .unwrap_or(text)
        .trim_end()
        .to_string()
}

fn provider_failure_note(e: &LlmError, after_text: bool) -> String {
    let what = match e {
        LlmError::Connect(_) => "I couldn't reach the model provider".to_string(),
        LlmError::Auth { .. } => "the model provider rejected robit's API key".to_string(),
        LlmError::RateLimited { .. } => "the model provider is rate limiting robit".to_string(),
        LlmError::Timeout(what) => format!("the model provider timed out ({what})"),
        LlmError::Status { status, .. } => format!("the model provider failed (HTTP {status})"),
        LlmError::Stream(_) | LlmError::Protocol(_) => {
            "the model provider's answer broke off".to_string()
        }
        LlmError::Cancelled => "the answer was cancelled".to_string(),
        LlmError::UnknownModel(model) => format!("no model is configured as `{model}`"),
    };
    if after_text {
        format!("⚠️ The answer was cut off: {what}. Ask again to retry.")
    } else {
        format!("⚠️ Sorry, {what}. Please try again in a moment.")
    }
}

/// Stores one message of a turn. Retried for about half a minute, so an answer that streamed
/// through a short database outage still lands in the history; the turn stays open (and its
/// lease renewed) meanwhile.
async fn persist(
    shared: &Arc<Shared>,
    conversation: &Conversation,
    turn: i64,
    message: NewMessage,
) {
    let message = NewMessage {
        turn: Some(turn),
        ..message
    };
    let mut pause = std::time::Duration::from_millis(100);
    for attempt in 0..12 {
        match shared
            .store
            .append_message(conversation.id, message.clone())
            .await
        {
            Ok(_) => return,
            Err(e) if attempt < 11 && !shared.shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "storing a message failed; retrying");
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a message failed");
                return;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

async fn record_usage(
    shared: &Arc<Shared>,
    inbound: &Inbound,
    conversation: &Conversation,
    provider: &str,
    model: &str,
    round: &RoundResult,
    prompt_estimate: u64,
) {
    let (prompt_tokens, completion_tokens, estimated) = match round.usage {
        Some(u) => (u.prompt_tokens, u.completion_tokens, false),
        None if round.text.is_empty() && matches!(round.end, RoundEnd::Failed(_)) => return,
        None => (prompt_estimate, estimate_tokens(&round.text), true),
    };
    let record = UsageRecord {
        conversation: conversation.id,
        key: inbound.key.clone(),
        user: Some(inbound.author.id.clone()),
        provider: provider.to_string(),
        model: model.to_string(),
        prompt_tokens,
        completion_tokens,
        estimated,
    };
    for (kind, n) in [("prompt", prompt_tokens), ("completion", completion_tokens)] {
        metrics::counter!(m::LLM_TOKENS, "provider" => provider.to_string(), "model" => model.to_string(), "kind" => kind)
            .increment(n);
    }
    if let Err(e) = shared.store.record_usage(record).await {
        tracing::error!(error = %e, "recording usage failed");
    }
}

fn to_chat_message(m: &StoredMessage) -> ChatMessage {
    let role = match m.role {
        MessageRole::User => Role::User,
        MessageRole::Assistant => Role::Assistant,
        MessageRole::Tool => Role::Tool,
    };
    let mut msg = ChatMessage::new(role, m.content.clone());
    if let Some(calls) = &m.tool_calls {
        msg.tool_calls = serde_json::from_str(calls).unwrap_or_default();
    }
    msg.tool_call_id = m.tool_call_id.clone();
    msg
}
