//! `robit run`: runs one program in the sandbox from the command line
//! (`robit run python -c 'print(1)'`, `robit run js file.js`) and exits with its status.

use crate::app::{limits, sandbox_config};
use crate::cli::RunArgs;
use crate::config::Loaded;
use anyhow::Context;
use robit_sandbox::Sandbox;
use robit_types::Language;
use std::process::ExitCode;
use tokio::io::AsyncReadExt;

pub async fn run(loaded: Loaded, args: RunArgs) -> anyhow::Result<ExitCode> {
    let language = Language::parse(&args.language)
        .with_context(|| format!("unknown language `{}`: use python or js", args.language))?;
    let code = match (&args.code, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut s = String::new();
            tokio::io::stdin().read_to_string(&mut s).await?;
            s
        }
        (None, Some(p)) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        (None, None) => anyhow::bail!("give the program with -c CODE or a file path"),
    };
    let mut stdin = Vec::new();
    if args.stdin {
        tokio::io::stdin().read_to_end(&mut stdin).await?;
    }
    let sandbox = Sandbox::new(sandbox_config(&loaded.config))
        .await
        .context("starting the sandbox (run `robit guests fetch` if the guests are missing)")?;
    let out = sandbox
        .run(language, &code, &stdin, limits(&loaded.config))
        .await
        .context("running the program")?;
    // A terminal obeys escape sequences in what it prints; the program's output is untrusted.
    // Piped output stays byte for byte.
    use std::io::IsTerminal;
    let shown = |text: &str, terminal: bool| -> String {
        if terminal {
            robit_console::strip_terminal_escapes(text).into_owned()
        } else {
            text.to_string()
        }
    };
    print!("{}", shown(&out.stdout, std::io::stdout().is_terminal()));
    eprint!("{}", shown(&out.stderr, std::io::stderr().is_terminal()));
    eprintln!(
        "[{:?} · exit {} · {} ms]",
        out.outcome,
        out.exit_code.map_or("-".to_string(), |c| c.to_string()),
        out.duration.as_millis()
    );
    Ok(match out.exit_code {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
