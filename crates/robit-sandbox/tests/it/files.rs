//! Files in and out: inputs appear in the scratch directory before the code runs, and what
//! the program writes there comes back in `RunOutput::files`, within the limits, without
//! ever reading a host file through a link.

use crate::common::sandbox;
use robit_sandbox::{InputFile, Language, Limits, Outcome};

fn input(name: &str, bytes: &[u8]) -> InputFile {
    InputFile {
        name: name.into(),
        bytes: bytes.to_vec(),
    }
}

#[tokio::test]
async fn python_file_written_to_scratch_comes_back() {
    let code = "with open('out.csv', 'w') as f:\n    f.write('a,b\\n1,2\\n')\nprint('done')";
    let out = sandbox()
        .await
        .run(Language::Python, code, b"", Limits::default())
        .await
        .unwrap();
    assert_eq!(out.outcome, Outcome::Finished, "{out:?}");
    assert_eq!(
        out.files,
        vec![("out.csv".to_string(), b"a,b\n1,2\n".to_vec())]
    );
    assert!(out.files_left_out.is_empty());
}

#[tokio::test]
async fn python_reads_an_input_file_and_unchanged_inputs_do_not_come_back() {
    let code = "import csv\nrows = list(csv.reader(open('data.csv')))\nprint(len(rows))\n\
                open('sum.txt', 'w').write(str(sum(int(r[1]) for r in rows)))";
    let out = sandbox()
        .await
        .run_with_files(
            Language::Python,
            code,
            b"",
            vec![input("data.csv", b"a,1\nb,2\nc,3\n")],
            Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "3\n", "{out:?}");
    assert_eq!(out.files, vec![("sum.txt".to_string(), b"6".to_vec())]);
}

#[tokio::test]
async fn javascript_sees_input_files_and_its_writes_come_back() {
    let code = "const t = std.loadFile('in.txt'); const f = std.open('out.txt', 'w'); \
                f.puts(t.toUpperCase()); f.close(); console.log(t.length);";
    let out = sandbox()
        .await
        .run_with_files(
            Language::JavaScript,
            code,
            b"",
            vec![input("in.txt", b"hello")],
            Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "5\n", "{out:?}");
    assert_eq!(out.files, vec![("out.txt".to_string(), b"HELLO".to_vec())]);
}

#[tokio::test]
async fn files_over_the_limits_are_reported_not_returned() {
    let code = "for i in range(4):\n    open(f'f{i}.txt', 'w').write('x')\n\
                open('big.bin', 'wb').write(b'0' * 5000)";
    let limits = Limits {
        max_files: 2,
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let out = sandbox()
        .await
        .run(Language::Python, code, b"", limits)
        .await
        .unwrap();
    let names: Vec<&str> = out.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["f0.txt", "f1.txt"], "{out:?}");
    assert_eq!(out.files_left_out.len(), 2, "{:?}", out.files_left_out);
    assert!(out.files_left_out[0].starts_with("big.bin (5000 bytes"));
    assert!(out.files_left_out[1].starts_with("2 more file(s)"));
}

#[tokio::test]
async fn a_link_the_guest_makes_is_never_followed_on_the_host() {
    // Whether WASI lets the guest create the link at all, the host must not read through it.
    let code =
        "import os\nfor target in ('/etc/passwd', '../../../../etc/passwd'):\n    try:\n        \
                os.symlink(target, 'l' + str(len(target)))\n    except OSError as e:\n        \
                print('refused', e.errno)\nopen('ok.txt', 'w').write('ok')";
    let out = sandbox()
        .await
        .run(Language::Python, code, b"", Limits::default())
        .await
        .unwrap();
    assert_eq!(
        out.files,
        vec![("ok.txt".to_string(), b"ok".to_vec())],
        "{out:?}"
    );
}

#[tokio::test]
async fn input_names_cannot_leave_the_scratch_directory() {
    let code = "import os\nprint(sorted(os.listdir('/')))";
    let out = sandbox()
        .await
        .run_with_files(
            Language::Python,
            code,
            b"",
            vec![input("../../escape.txt", b"x"), input(".hidden", b"y")],
            Limits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "['escape.txt', 'hidden']\n", "{out:?}");
    assert!(out.files.is_empty());
}
