//! Every run gets a fresh instance: nothing one run does is visible to the next,
//! whether the instances come from the pool or are started cold.

use robit_sandbox::{Language, Limits, Sandbox, SandboxConfig};

use crate::common::{config, py, sandbox};

#[tokio::test]
async fn globals_do_not_leak_between_runs() {
    let first =
        py("leak = 42\nimport json\njson.leak = 1\nopen('left.txt', 'w').write('x')\nprint('set')")
            .await;
    assert_eq!(first.stdout, "set\n");
    let second =
        py("import json, os\nprint('leak' in globals(), hasattr(json, 'leak'), os.listdir('/'))")
            .await;
    assert_eq!(second.stdout, "False False []\n", "{second:?}");
}

#[tokio::test]
async fn user_globals_start_like_python_c() {
    let out = py("print(sorted(k for k in globals()))").await;
    assert_eq!(
        out.stdout,
        "['__annotations__', '__builtins__', '__doc__', '__loader__', '__name__', '__package__', '__spec__']\n"
    );
}

#[tokio::test]
async fn pooled_and_cold_python_behave_the_same() {
    let cold = Sandbox::new(SandboxConfig {
        python_pool_size: 0,
        ..config()
    })
    .await
    .unwrap();
    let warm = sandbox().await;
    warm.warm_up().await;
    let code = "import sys\nprint(sys.argv, input())\nraise SystemExit(5)";
    let a = cold
        .run(Language::Python, code, b"in\n", Limits::default())
        .await
        .unwrap();
    let b = warm
        .run(Language::Python, code, b"in\n", Limits::default())
        .await
        .unwrap();
    assert_eq!((a.stdout.as_str(), a.exit_code), ("['-c'] in\n", Some(5)));
    assert_eq!(
        (&a.stdout, &a.stderr, a.exit_code),
        (&b.stdout, &b.stderr, b.exit_code)
    );
}

#[tokio::test]
async fn hash_seeds_differ_between_runs() {
    // Pooled interpreters are started separately, not cloned from one snapshot.
    let a = py("print(hash('robit'))").await;
    let b = py("print(hash('robit'))").await;
    assert_ne!(a.stdout, b.stdout);
}
