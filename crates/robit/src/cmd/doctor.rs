//! `robit doctor`: checks each part of the setup and says how to fix what is wrong.

use crate::app;
use crate::config::Loaded;
use crate::guests::locate::Source;
use robit_sandbox::Sandbox;
use std::process::ExitCode;

pub async fn run(loaded: Loaded) -> anyhow::Result<ExitCode> {
    let config = &loaded.config;
    let mut problems = 0;
    match &loaded.file {
        Some(f) => println!("ok    configuration: {}", f.display()),
        None => println!("ok    configuration: defaults and ROBIT_* variables (no robit.toml here; see robit.example.toml)"),
    }

    let url = app::redact_url(&config.database.url);
    match app::open_store(config).await {
        Ok(store) => match store.migration_status().await {
            Ok(status) => println!(
                "ok    database {url}: {}, migrations applied {:?}, pending {:?}",
                status.server_version, status.applied, status.pending
            ),
            Err(e) => {
                problems += 1;
                println!("FAIL  database {url}: {e}");
            }
        },
        Err(e) => {
            problems += 1;
            println!("FAIL  database {url}: {e:#}");
            println!("      fix: check database.url (ROBIT_DATABASE__URL); for PostgreSQL make sure the server runs and the database exists");
        }
    }

    match crate::providers::clients(config) {
        Ok(clients) if clients.is_empty() => {
            let local = if config.llm.probe_local {
                robit_llm::probe_local(std::time::Duration::from_millis(500)).await
            } else {
                None
            };
            match local {
                Some(found) => println!(
                    "ok    LLM provider: none configured; using local {} at {} ({} models)",
                    found.name,
                    found.base_url,
                    found.models.len()
                ),
                None => {
                    problems += 1;
                    println!("FAIL  LLM provider: none configured, and no local server answers");
                    println!("      fix: set llm.base_url (for example https://api.openai.com/v1, or http://127.0.0.1:11434/v1 for Ollama) and ROBIT_LLM__API_KEY");
                }
            }
        }
        Ok(clients) => {
            for (name, client) in clients {
                match client.probe().await {
                    Ok(models) => {
                        println!(
                            "ok    LLM provider {name}: reachable, {} models listed",
                            models.len()
                        )
                    }
                    Err(e) => {
                        problems += 1;
                        println!("FAIL  LLM provider {name}: {e}");
                        println!("      fix: check its base_url and API key (ROBIT_LLM__API_KEY, ROBIT_LLM__PROVIDERS__{}__API_KEY or api_key_file)", name.to_uppercase());
                    }
                }
            }
        }
        Err(e) => {
            problems += 1;
            println!("FAIL  LLM provider: {e:#}");
        }
    }

    if config.sandbox.enabled {
        problems += check_guests(config);
    } else {
        println!("ok    sandbox: disabled (sandbox.enabled = false)");
    }
    problems += crate::gvisor::doctor(config).await;

    problems += check_mcp(config).await;

    if problems == 0 {
        println!("\nall checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\n{problems} problem(s) found");
        Ok(ExitCode::FAILURE)
    }
}

/// Says where each guest was found (or where robit looked) and whether it is the pinned
/// build; returns the number of problems.
fn check_guests(config: &crate::config::Config) -> usize {
    let locations = crate::guests::locate::locate_all(&config.sandbox);
    let mut problems = 0;
    for guest in Sandbox::guest_status(&app::sandbox_config(config)) {
        let Some(location) = locations.iter().find(|l| l.language == guest.language) else {
            continue;
        };
        let what = format!(
            "sandbox guest {} ({}; {})",
            guest.language,
            guest.path.display(),
            location.describe()
        );
        if guest.present && guest.sha256_ok {
            println!("ok    {what}");
            continue;
        }
        problems += 1;
        let problem = if guest.present {
            "checksum does not match the pinned build"
        } else {
            "missing"
        };
        println!("FAIL  {what}: {problem}");
        if let Some(sha) = &guest.sha256 {
            println!(
                "      its sha256 is {sha}, the pinned build's {}",
                expected(guest.language)
            );
        }
        let dir = guest.path.parent().unwrap_or(&guest.path).display();
        let mut fix = match location.source {
            Source::NotFound => format!(
                "run `robit guests fetch` (installs both in {dir}), or scripts/fetch-guests in a checkout"
            ),
            Source::DataDir => "run `robit guests fetch`".to_string(),
            Source::Configured | Source::WorkingDir => format!(
                "run `robit guests fetch --dir {dir}` (or scripts/fetch-guests {dir})"
            ),
        };
        if guest.present {
            fix.push_str(
                " to replace it, or keep it if you installed a different build on purpose",
            );
        } else if location.source == Source::Configured {
            fix.push_str(", or unset the setting to look in the default places");
        }
        println!("      fix: {fix}");
    }
    problems
}

fn expected(language: robit_sandbox::Language) -> &'static str {
    crate::guests::GUESTS
        .iter()
        .find(|g| g.language == language)
        .map_or("", |g| g.sha256)
}

/// Connects each MCP server as `serve` would; returns the number that failed.
async fn check_mcp(config: &crate::config::Config) -> usize {
    use robit_mcp::ToolProvider;
    let tools = match crate::mcp::connect(&config.mcp).await {
        Ok(Some(tools)) => tools,
        Ok(None) => return 0,
        Err(e) => {
            println!("FAIL  MCP servers: {e:#}");
            return 1;
        }
    };
    let defs = tools.tools();
    let mut problems = 0;
    for status in tools.status() {
        match &status.result {
            Ok(n) => {
                let allowed = defs
                    .iter()
                    .filter(|t| t.server == status.name && t.allowed)
                    .count();
                println!(
                    "ok    MCP server {}: {n} tools, {allowed} on its allow-list",
                    status.name
                );
            }
            Err(e) => {
                problems += 1;
                println!("FAIL  MCP server {}: {e}", status.name);
                println!(
                    "      fix: check mcp.servers.{}.command or url (and its token); robit runs without this server's tools",
                    status.name
                );
            }
        }
    }
    problems
}
