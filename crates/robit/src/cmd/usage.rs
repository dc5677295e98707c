//! `robit usage`: token usage by workspace, channel, user, model or day.

use crate::app::open_store;
use crate::cli::{UsageArgs, UsageBy};
use crate::config::Loaded;
use robit_store::UsageGroup;
use std::process::ExitCode;

pub async fn run(loaded: Loaded, args: UsageArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&loaded.config).await?;
    let group = match args.by {
        UsageBy::Workspace => UsageGroup::Workspace,
        UsageBy::Channel => UsageGroup::Channel,
        UsageBy::User => UsageGroup::User,
        UsageBy::Model => UsageGroup::Model,
        UsageBy::Day => UsageGroup::Day,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let day_ms = 86_400_000;
    let since = (now_ms / day_ms - i64::from(args.days.saturating_sub(1))) * day_ms;
    let rows = store.usage_summary(group, since).await?;
    println!(
        "{:<40} {:>9} {:>14} {:>14}",
        format!("{:?}", args.by).to_lowercase(),
        "requests",
        "prompt tok",
        "completion tok"
    );
    for r in &rows {
        println!(
            "{:<40} {:>9} {:>14} {:>14}",
            r.group, r.requests, r.prompt_tokens, r.completion_tokens
        );
    }
    if rows.is_empty() {
        println!("(no usage in the last {} days)", args.days);
    }
    Ok(ExitCode::SUCCESS)
}
