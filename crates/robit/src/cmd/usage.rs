//! `robit usage`: token usage by workspace, channel, user, model or day, then the 👍/👎 votes
//! on answers per model with the share of 👍.

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
    let since = crate::cli::since_ms(args.days);
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
    let votes = store.feedback_summary(since).await?;
    println!();
    println!(
        "{:<40} {:>9} {:>9} {:>9}",
        "feedback", "👍", "👎", "👍 rate"
    );
    for v in &votes {
        let rate = v
            .up_rate()
            .map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        println!(
            "{:<40} {:>9} {:>9} {:>9}",
            format!("{}/{}", v.provider, v.model),
            v.up,
            v.down,
            rate
        );
    }
    if votes.is_empty() {
        println!("(no votes in the last {} days)", args.days);
    }
    Ok(ExitCode::SUCCESS)
}
