//! Ordinary runs: data libraries, charts, files, the warm pool, languages.

use std::time::{Duration, Instant};

use robit_sandbox::{CodeRunner, InputFile, Language, Outcome, SandboxError, Tier};

use crate::common::{assert_host_clean, limits, sandbox};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

#[tokio::test]
async fn pandas_and_matplotlib_return_output_and_a_png() {
    let Some(sb) = sandbox(0).await else { return };
    let code = r#"
import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv("sales.csv")
print(df.groupby("region")["amount"].sum().to_string())
df.plot(x="month", y="amount", kind="bar")
plt.title("sales")
plt.show()
"#;
    let csv = "month,region,amount\n1,north,10\n2,north,5\n1,south,7\n2,south,1\n";
    let files = vec![InputFile {
        name: "sales.csv".into(),
        bytes: csv.as_bytes().to_vec(),
    }];
    let out = sb
        .run_with_files(Language::Python, code, b"", files, limits())
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("north    15"), "{}", out.stdout);
    assert!(out.stdout.contains("south     8"), "{}", out.stdout);
    let names: Vec<&str> = out.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["figure-1.png"], "unchanged inputs are not returned");
    assert!(out.files[0].1.starts_with(PNG_MAGIC));
    assert!(
        out.files[0].1.len() > 5_000,
        "a real chart, not an empty image"
    );
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn figures_left_open_are_saved_and_savefig_works() {
    let Some(sb) = sandbox(0).await else { return };
    let code = r#"
import numpy as np, matplotlib.pyplot as plt, scipy.stats as st
x = np.linspace(0, 1, 50)
plt.figure(); plt.plot(x, x**2); plt.savefig("mine.png")
plt.figure(); plt.plot(x, st.norm.pdf(x))
print(round(float(st.norm.cdf(0)), 3))
"#;
    let out = sb.run(Language::Python, code, b"", limits()).await.unwrap();
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "0.5");
    let names: Vec<&str> = out.files.iter().map(|(n, _)| n.as_str()).collect();
    // Both figures were still open at the end: both are saved; `mine.png` as the user named it.
    assert_eq!(names, ["figure-1.png", "figure-2.png", "mine.png"]);
    assert!(out.files.iter().all(|(_, b)| b.starts_with(PNG_MAGIC)));
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn stdin_exit_codes_and_errors_look_like_python() {
    let Some(sb) = sandbox(0).await else { return };
    let out = sb
        .run(
            Language::Python,
            "import sys\nprint(sys.stdin.read().upper())\nraise SystemExit(3)",
            b"hello",
            limits(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "HELLO");
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.outcome, Outcome::Finished);

    let out = sb
        .run(Language::Python, "1/0", b"", limits())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(1));
    assert!(out.stderr.contains("ZeroDivisionError"), "{}", out.stderr);
    assert!(!out.stderr.contains("_robit_main"), "{}", out.stderr);
    assert_host_clean(&sb).await;
}

#[tokio::test]
async fn javascript_is_refused_not_run_elsewhere() {
    let Some(sb) = sandbox(0).await else { return };
    let err = sb
        .run(Language::JavaScript, "console.log(1)", b"", limits())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SandboxError::UnsupportedLanguage {
            tier: Tier::Gvisor,
            ..
        }
    ));
    assert_eq!(sb.tiers(), [Tier::Gvisor]);
}

#[tokio::test]
async fn warm_pool_is_faster_single_use_and_refilled() {
    let Some(sb) = sandbox(1).await else { return };
    let code = "import numpy; print(numpy.arange(10).sum())";
    tokio::time::timeout(Duration::from_secs(120), sb.warm_up())
        .await
        .expect("pool filled");
    assert_eq!(sb.live_sandboxes(), 1);
    let t = Instant::now();
    let out = sb.run(Language::Python, code, b"", limits()).await.unwrap();
    let warm = t.elapsed();
    assert_eq!(out.stdout.trim(), "45", "{out:?}");
    // A program that marks its sandbox: the next run must not see the mark.
    let out = sb
        .run(
            Language::Python,
            "import os, builtins\nprint(hasattr(builtins, 'robit_mark'))\nbuiltins.robit_mark = 1\nopen('/tmp/mark', 'w').write('x')",
            b"",
            limits(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "False");
    let out = sb
        .run(
            Language::Python,
            "import os, builtins\nprint(hasattr(builtins, 'robit_mark'), os.path.exists('/tmp/mark'))",
            b"",
            limits(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "False False");
    // The pool refills after each run.
    tokio::time::timeout(Duration::from_secs(120), sb.warm_up())
        .await
        .expect("pool refilled");
    let cold = {
        let cold_sb = sandbox(0).await.unwrap();
        let t = Instant::now();
        let out = cold_sb
            .run(Language::Python, code, b"", limits())
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), "45");
        let cold = t.elapsed();
        assert_host_clean(&cold_sb).await;
        cold
    };
    assert!(
        warm < cold,
        "a warm run ({warm:?}) is faster than a cold one ({cold:?})"
    );
    drop(sb);
}

/// `shutdown` (what robit calls when it stops) closes the pool and returns only when every
/// warm sandbox and its scratch mount are gone from the host.
#[tokio::test]
async fn shutdown_removes_the_warm_pool_from_the_host() {
    let Some(sb) = sandbox(2).await else { return };
    sb.warm_up().await;
    assert_eq!(sb.live_sandboxes(), 2);
    sb.shutdown().await;
    assert_eq!(sb.live_sandboxes(), 0, "shutdown waited for the teardown");
    assert_host_clean(&sb).await;
}
