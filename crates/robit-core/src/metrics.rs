//! The engine's metrics, named in one place so the list in docs/operations.md can be checked
//! against it. Recorded through the `metrics` facade; the binary installs the exporter.

pub const EVENTS_RECEIVED: &str = "robit_events_received_total";
pub const EVENTS_DEDUPLICATED: &str = "robit_events_deduplicated_total";
pub const TURNS: &str = "robit_turns_total";
pub const TURN_SECONDS: &str = "robit_turn_duration_seconds";
pub const FIRST_REPLY_SECONDS: &str = "robit_time_to_first_reply_seconds";
pub const LLM_TOKENS: &str = "robit_llm_tokens_total";
pub const SANDBOX_RUNS: &str = "robit_sandbox_runs_total";
pub const MCP_TOOL_CALLS: &str = "robit_mcp_tool_calls_total";
pub const PLATFORM_CALLS: &str = "robit_platform_api_calls_total";
pub const PLATFORM_RATE_LIMITED: &str = "robit_platform_rate_limited_total";
pub const QUEUE_DEPTH: &str = "robit_queue_depth";
pub const ACTIVE_CONVERSATIONS: &str = "robit_active_conversations";
pub const CALL_BUDGET_WAITS: &str = "robit_call_budget_waits_total";
pub const REFUSALS: &str = "robit_refusals_total";
pub const EVENTS_UNSAVED: &str = "robit_events_unsaved_total";
pub const TURNS_RESUMED: &str = "robit_turns_resumed_total";
pub const TURNS_LOST: &str = "robit_turns_lost_total";
pub const ANSWER_ACTIONS: &str = "robit_answer_actions_total";

/// A span around one stage of an event's path (intake, queueing, the turn up to its first
/// post), under the target `robit_core::stage` at debug level: `robit bench engine` times
/// them per stage, and an operator can turn them on with `RUST_LOG=robit_core::stage=debug`.
macro_rules! stage {
    ($name:literal) => {
        tracing::debug_span!(target: "robit_core::stage", $name)
    };
}
pub(crate) use stage;

/// Every metric the engine records, with its type, labels and meaning.
pub const ALL: &[(&str, &str, &str, &str)] = &[
    (
        ANSWER_ACTIONS,
        "counter",
        "platform,action",
        "clicks on an answer's buttons that took effect (stop, regenerate, up, down) and edits that had it written again (edit)",
    ),
    (
        EVENTS_UNSAVED,
        "counter",
        "platform",
        "events refused because the store could not save them (not acknowledged)",
    ),
    (
        TURNS_RESUMED,
        "counter",
        "",
        "journaled turns taken over from a crashed, stopped or dead holder",
    ),
    (
        TURNS_LOST,
        "counter",
        "",
        "turns stopped because another replica took their lease, or that could not be resumed",
    ),
    (
        EVENTS_RECEIVED,
        "counter",
        "platform",
        "inbound events handed to the engine",
    ),
    (
        EVENTS_DEDUPLICATED,
        "counter",
        "platform",
        "events dropped as already processed",
    ),
    (
        TURNS,
        "counter",
        "outcome",
        "turns finished, by how they ended",
    ),
    (
        TURN_SECONDS,
        "histogram",
        "kind",
        "time from a turn's start to its end",
    ),
    (
        FIRST_REPLY_SECONDS,
        "histogram",
        "platform",
        "time from receiving an event to the first text posted",
    ),
    (
        LLM_TOKENS,
        "counter",
        "provider, model, kind",
        "prompt and completion tokens",
    ),
    (SANDBOX_RUNS, "counter", "language, tier, outcome", "sandbox runs"),
    (
        MCP_TOOL_CALLS,
        "counter",
        "server, outcome",
        "MCP tool calls: ok, tool_error, error, timeout, needs_approval, disabled",
    ),
    (
        PLATFORM_CALLS,
        "counter",
        "platform, call",
        "posts, edits and uploads sent to a platform",
    ),
    (
        PLATFORM_RATE_LIMITED,
        "counter",
        "platform",
        "platform calls answered with a rate limit",
    ),
    (
        QUEUE_DEPTH,
        "gauge",
        "",
        "turns waiting for their conversation or a free slot",
    ),
    (
        ACTIVE_CONVERSATIONS,
        "gauge",
        "",
        "conversations with queued or running turns",
    ),
    (
        CALL_BUDGET_WAITS,
        "counter",
        "",
        "platform calls that waited for the budget shared by replicas",
    ),
    (
        REFUSALS,
        "counter",
        "platform, reason",
        "events refused by an access rule, a rate limit or a quota (reason: denied, not_admin, user_rate, channel_rate, quota, unavailable)",
    ),
];
