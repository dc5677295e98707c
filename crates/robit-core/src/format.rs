//! Running code for `/run` and the `run_code` tool, and showing the result in the thread.

use crate::commands::say;
use crate::engine::Inner;
use robit_sandbox::{InputFile, Outcome, RunOutput};
use robit_types::fence::code_block;
use robit_types::{Language, ReplySink, Tier};
use std::sync::Arc;

/// Most output characters fed back to the model from one run.
const TOOL_RESULT_MAX: usize = 8_000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("the sandbox is not available: the guest interpreters are missing or failed to load (run `robit guests fetch`, or `scripts/fetch-guests` in a checkout, then `robit doctor`)")]
    NoSandbox,
    #[error("the sandbox failed: {0}")]
    Sandbox(String),
}

/// Runs `code` on `tier`, posting the code first when `show_code` (tool calls: the user should
/// see what the model runs) and then the output.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_and_post(
    inner: &Arc<Inner>,
    sink: &Arc<dyn ReplySink>,
    language: Language,
    code: &str,
    files: Vec<InputFile>,
    show_code: bool,
    limits: robit_sandbox::Limits,
    tier: Tier,
) -> Result<RunOutput, RunError> {
    let sandbox = inner.sandbox.clone().ok_or(RunError::NoSandbox)?;
    if show_code {
        say(
            sink,
            &format!(
                "Running {language}{}:\n{}",
                if tier == Tier::Wasm {
                    String::new()
                } else {
                    format!(" ({tier})")
                },
                code_block(fence_tag(language), code)
            ),
        )
        .await;
    }
    let _ = sink.typing().await;
    let output = sandbox
        .run_on(tier, language, code, b"", files, limits)
        .await
        .map_err(|e| RunError::Sandbox(e.to_string()))?;
    let outcome = match output.outcome {
        Outcome::Finished => "finished",
        Outcome::TimedOut => "timed_out",
        Outcome::OutOfMemory => "out_of_memory",
        Outcome::OutputTruncated => "output_truncated",
        Outcome::DiskLimit => "disk_limit",
        Outcome::Trapped(_) => "trapped",
    };
    metrics::counter!(crate::metrics::SANDBOX_RUNS, "language" => language.as_str(), "tier" => tier.as_str(), "outcome" => outcome)
        .increment(1);
    post_output(sink, language, &output).await;
    crate::attachments::upload_outputs(inner, sink, &output).await;
    Ok(output)
}

fn fence_tag(language: Language) -> &'static str {
    match language {
        Language::Python => "python",
        Language::JavaScript => "js",
    }
}

pub(crate) fn status_line(output: &RunOutput) -> String {
    let exit = match output.exit_code {
        Some(c) => format!("exit {c}"),
        None => "no exit code".to_string(),
    };
    let outcome = match &output.outcome {
        Outcome::Finished => String::new(),
        Outcome::TimedOut => " · ⏱️ timed out".to_string(),
        Outcome::OutOfMemory => " · 💥 out of memory".to_string(),
        Outcome::OutputTruncated => " · ✂️ output truncated".to_string(),
        Outcome::DiskLimit => " · 💾 disk limit reached".to_string(),
        Outcome::Trapped(why) => format!(" · 💥 crashed: {why}"),
    };
    format!("`{exit} · {} ms`{outcome}", output.duration.as_millis())
}

fn combined(output: &RunOutput) -> String {
    let mut s = output.stdout.clone();
    if !output.stderr.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&output.stderr);
    }
    s
}

async fn post_output(sink: &Arc<dyn ReplySink>, _language: Language, output: &RunOutput) {
    let caps = sink.capabilities();
    let status = status_line(output);
    let body = combined(output);
    let inline = if body.is_empty() {
        format!("(no output)\n{status}")
    } else {
        format!("{}\n{status}", code_block("", body.trim_end_matches('\n')))
    };
    if inline.chars().count() <= caps.max_message_len {
        say(sink, &inline).await;
        return;
    }
    if let Some(limit) = caps.max_upload_bytes {
        if body.len() as u64 <= limit {
            match sink
                .upload(
                    "output.txt",
                    body.as_bytes(),
                    &format!("Output attached. {status}"),
                )
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "uploading output failed, truncating instead"),
            }
        }
    }
    // Fit the head of the output in one message, with a note saying how much was left out.
    let note_room = status.chars().count() + 80;
    let keep = caps.max_message_len.saturating_sub(note_room);
    let head: String = body.chars().take(keep).collect();
    let left = body.chars().count() - head.chars().count();
    say(
        sink,
        &format!(
            "{}\n… {left} more characters not shown. {status}",
            code_block("", head.trim_end_matches('\n'))
        ),
    )
    .await;
}

/// What the model sees of a run.
pub(crate) fn tool_result(output: &RunOutput) -> String {
    let mut s = format!("{}\n", status_line(output).replace('`', ""));
    let body = combined(output);
    if body.chars().count() > TOOL_RESULT_MAX {
        s.extend(body.chars().take(TOOL_RESULT_MAX));
        s.push_str("\n[output cut]");
    } else {
        s.push_str(&body);
    }
    // The model should know the files exist (the user sees them uploaded), not their bytes.
    if !output.files.is_empty() {
        let names: Vec<String> = output
            .files
            .iter()
            .map(|(name, bytes)| format!("{name} ({} bytes)", bytes.len()))
            .collect();
        s.push_str(&format!("\n[files written: {}]", names.join(", ")));
    }
    if !output.files_left_out.is_empty() {
        s.push_str(&format!(
            "\n[files not returned: {}]",
            output.files_left_out.join("; ")
        ));
    }
    s
}
