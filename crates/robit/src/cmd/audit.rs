//! `robit audit`: the audit log (admin changes and refusals), newest first.

use std::process::ExitCode;

pub async fn run(
    loaded: crate::config::Loaded,
    args: crate::cli::AuditArgs,
) -> anyhow::Result<ExitCode> {
    let store = crate::app::open_store(&loaded.config).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let since = now_ms - i64::from(args.hours) * 3_600_000;
    let entries = store.audit_log(since, args.limit).await?;
    for e in &entries {
        println!(
            "{}  {:<18} {:<14} {}:{}:{}  {}",
            utc(e.at),
            e.entry.action,
            e.entry.actor,
            e.entry.platform,
            e.entry.workspace,
            e.entry.channel,
            e.entry.detail.replace('\n', " ")
        );
    }
    if entries.is_empty() {
        println!("(no audit entries in the last {} hours)", args.hours);
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-25 23:59:01Z` from unix milliseconds (the raw number if out of range).
pub(crate) fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc(1_764_115_141_000), "2025-11-25 23:59:01Z");
    }
}
