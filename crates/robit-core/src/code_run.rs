//! Running code: `/run`, the model's `run_code` tool and the files that go in and come out.
//!
//! One path for both: check the tier, run the program in the sandbox, post the code (for the
//! model's runs), the output (inline, as a file, or cut with a note) and the files the run
//! left, and tell the model what it needs of the result. The tool's spec and dispatch are
//! `tools.rs`'s; whether a tier may be used is `tiers.rs`'s.

use crate::attachments::{self, AttachmentLimits};
use crate::config::EngineConfig;
use crate::metrics as m;
use crate::outcome::TurnOutcome;
use crate::reply::say;
use crate::settings::Effective;
use crate::tiers;
use robit_sandbox::{CodeRunner, InputFile, Limits, Outcome, RunOutput};
use robit_types::fence::code_block;
use robit_types::{Inbound, Language, ReplySink, Tier};
use std::sync::Arc;
use tracing::Instrument;

/// A program to run: what `/run` parsed or the model's `run_code` call asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    pub language: Language,
    pub code: String,
    pub tier: Tier,
}

/// `/run`: runs the program with the message's attachments as input files, in the sandbox
/// limits of this conversation's settings.
pub(crate) async fn command(
    sandbox: Option<&dyn CodeRunner>,
    config: &EngineConfig,
    settings: &Effective,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
    program: Program,
) -> TurnOutcome {
    if !settings.run_code.value {
        say(sink, "⚠️ Running code is turned off in this channel.").await;
        return TurnOutcome::Failed("run_code disabled".into());
    }
    if let Err(why) = tiers::check(sandbox, settings, program.tier) {
        say(sink, &format!("⚠️ Not run: {why}.")).await;
        return TurnOutcome::Failed(why);
    }
    let limits = settings.limits(&config.sandbox_limits);
    // Without a sandbox there is nothing to place the files in; run_and_post says so.
    let files = if sandbox.is_some() {
        run_inputs(&config.attachments, inbound, sink).await
    } else {
        Vec::new()
    };
    if let Err(e) = run_and_post(
        sandbox,
        &config.attachments,
        sink,
        &program,
        files,
        false,
        limits,
    )
    .await
    {
        say(sink, &format!("⚠️ {e}")).await;
        return TurnOutcome::Failed(e.to_string());
    }
    TurnOutcome::Command
}

/// The model's `run_code` call: runs the program (shown in the thread) and returns the text
/// fed back to the model.
pub(crate) async fn for_model(
    sandbox: Option<&dyn CodeRunner>,
    config: &EngineConfig,
    settings: &Effective,
    sink: &Arc<dyn ReplySink>,
    program: Program,
) -> String {
    if let Err(why) = tiers::check(sandbox, settings, program.tier) {
        return format!("error: {why}");
    }
    let limits = settings.limits(&config.sandbox_limits);
    match run_and_post(
        sandbox,
        &config.attachments,
        sink,
        &program,
        Vec::new(),
        true,
        limits,
    )
    .await
    {
        Ok(output) => tool_result(&output),
        Err(e) => format!("error: the sandbox failed: {e}"),
    }
}

/// Most output characters fed back to the model from one run.
const TOOL_RESULT_MAX: usize = 8_000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("the sandbox is not available: the guest interpreters are missing or failed to load (run `robit guests fetch`, or `scripts/fetch-guests` in a checkout, then `robit doctor`)")]
    NoSandbox,
    #[error("the sandbox failed: {0}")]
    Sandbox(String),
}

/// Runs `program`, posting the code first when `show_code` (tool calls: the user should see
/// what the model runs), then the output and the files the run left.
async fn run_and_post(
    sandbox: Option<&dyn CodeRunner>,
    files_out: &AttachmentLimits,
    sink: &Arc<dyn ReplySink>,
    program: &Program,
    files: Vec<InputFile>,
    show_code: bool,
    limits: Limits,
) -> Result<RunOutput, RunError> {
    let sandbox = sandbox.ok_or(RunError::NoSandbox)?;
    let (language, code, tier) = (program.language, program.code.as_str(), program.tier);
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
    // The run alone, not the posts around it: the span's duration is the sandbox's.
    let span = tracing::info_span!(
        "sandbox.run",
        tier = tier.as_str(),
        language = language.as_str(),
        outcome = tracing::field::Empty,
        exit_code = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let output = sandbox
        .run_on(tier, language, code, b"", files, limits)
        .instrument(span.clone())
        .await;
    // i64: the OpenTelemetry bridge exports a u64 as a string.
    span.record("duration_ms", started.elapsed().as_millis() as i64);
    let output = output.map_err(|e| {
        span.record("error", tracing::field::display(&e));
        RunError::Sandbox(e.to_string())
    })?;
    let outcome = match output.outcome {
        Outcome::Finished => "finished",
        Outcome::TimedOut => "timed_out",
        Outcome::OutOfMemory => "out_of_memory",
        Outcome::OutputTruncated => "output_truncated",
        Outcome::DiskLimit => "disk_limit",
        Outcome::Trapped(_) => "trapped",
    };
    span.record("outcome", outcome);
    if let Some(code) = output.exit_code {
        span.record("exit_code", code);
    }
    metrics::counter!(m::SANDBOX_RUNS, "language" => language.as_str(), "tier" => tier.as_str(), "outcome" => outcome)
        .increment(1);
    post_output(sink, language, &output).await;
    upload_outputs(files_out, sink, &output).await;
    Ok(output)
}

fn fence_tag(language: Language) -> &'static str {
    match language {
        Language::Python => "python",
        Language::JavaScript => "js",
    }
}

fn status_line(output: &RunOutput) -> String {
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
fn tool_result(output: &RunOutput) -> String {
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

/// For `/run`: downloads the message's attachments as input files for the sandbox. Files that
/// cannot be used are reported in the thread, so the user knows why the program misses them.
async fn run_inputs(
    limits: &AttachmentLimits,
    inbound: &Inbound,
    sink: &Arc<dyn ReplySink>,
) -> Vec<InputFile> {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for (i, a) in attachments::attachments(inbound).iter().enumerate() {
        if i >= limits.max_files {
            notes.push(format!(
                "at most {} files are placed in the sandbox",
                limits.max_files
            ));
            break;
        }
        match sink
            .fetch_attachment(a, limits.max_run_file_bytes.saturating_add(1))
            .await
        {
            Ok(bytes) if bytes.len() as u64 > limits.max_run_file_bytes => notes.push(format!(
                "`{}` is larger than {} bytes",
                a.name, limits.max_run_file_bytes
            )),
            Ok(bytes) => files.push(InputFile {
                name: a.name.clone(),
                bytes,
            }),
            Err(e) => {
                tracing::warn!(error = %e, file = %a.name, "fetching a /run file failed");
                notes.push(format!("`{}` could not be downloaded", a.name));
            }
        }
    }
    if !notes.is_empty() {
        say(
            sink,
            &format!("⚠️ Not placed in the sandbox: {}.", notes.join("; ")),
        )
        .await;
    }
    files
}

/// Uploads the files a run left in its scratch directory, within the configured and the
/// platform's limits; says in the thread what was left out and why.
async fn upload_outputs(limits: &AttachmentLimits, sink: &Arc<dyn ReplySink>, output: &RunOutput) {
    if output.files.is_empty() && output.files_left_out.is_empty() {
        return;
    }
    let platform_max = sink.capabilities().max_upload_bytes;
    let mut left_out = output.files_left_out.clone();
    if platform_max.is_none() && !output.files.is_empty() {
        left_out.push(format!(
            "{} file(s): this platform takes no uploads",
            output.files.len()
        ));
    } else {
        let max = limits.max_upload_bytes.min(platform_max.unwrap_or(0));
        for (i, (name, bytes)) in output.files.iter().enumerate() {
            if i >= limits.max_upload_files {
                left_out.push(format!(
                    "{} more file(s): at most {} are uploaded",
                    output.files.len() - i,
                    limits.max_upload_files
                ));
                break;
            }
            if bytes.len() as u64 > max {
                left_out.push(format!(
                    "{name} ({} bytes, over the {max} byte limit)",
                    bytes.len()
                ));
                continue;
            }
            // Platforms want a plain file name; a file from a subdirectory keeps its path in
            // the comment.
            let upload_name = robit_sandbox::safe_name(&name.replace('/', "_"));
            if let Err(e) = sink
                .upload(&upload_name, bytes, &format!("📎 `{name}` from the run"))
                .await
            {
                tracing::warn!(error = %e, file = %name, "uploading a run's file failed");
                left_out.push(format!("{name} (the upload failed)"));
            }
        }
    }
    if !left_out.is_empty() {
        say(
            sink,
            &format!("⚠️ Files not uploaded: {}.", left_out.join("; ")),
        )
        .await;
    }
}
