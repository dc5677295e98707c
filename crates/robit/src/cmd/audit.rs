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

/// `2026-11-25 23:59:01Z` from unix milliseconds, without a date crate.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
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
