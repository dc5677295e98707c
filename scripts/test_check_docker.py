"""Tests of check_docker.py: its parsers, and its checks on small repositories made here.

Run: python3 -m unittest discover -s scripts -p 'test_*.py'
"""

import io
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_docker as cd  # noqa: E402


class DockerfileParsing(unittest.TestCase):
    def test_continuations_join_and_comments_inside_them_are_dropped(self):
        text = "FROM rust AS build\n# a comment\nRUN a \\\n# dropped\n    && b\n\nCMD [\"x\"]\n"
        self.assertEqual(
            cd.dockerfile_instructions(text),
            ["FROM rust AS build", "RUN a      && b", 'CMD ["x"]'],
        )

    def test_copy_shell_and_exec_forms_give_the_same_sources(self):
        shell = cd.parse_copy("COPY --chown=1:1 a b dest/")
        exec_form = cd.parse_copy('COPY ["a", "b", "dest/"]')
        for copy in (shell, exec_form):
            self.assertEqual((copy.sources, copy.dest, copy.from_stage), (["a", "b"], "dest/", None))

    def test_copy_from_a_stage_and_other_instructions(self):
        self.assertEqual(cd.parse_copy("COPY --from=build /x /y").from_stage, "build")
        self.assertIsNone(cd.parse_copy("RUN cp a b"))
        self.assertIsNone(cd.parse_copy("add only-one").dest)

    def test_the_program_an_instruction_runs(self):
        self.assertEqual(cd.program_of('ENTRYPOINT ["/usr/local/bin/robit"]'), "robit")
        self.assertEqual(cd.program_of("ENTRYPOINT robit serve"), "robit")
        self.assertEqual(
            cd.program_of('HEALTHCHECK --interval=30s --timeout=3s CMD ["robit", "healthcheck"]'),
            "robit",
        )


class DockerIgnoreRules(unittest.TestCase):
    def test_star_stays_in_one_element_and_double_star_spans(self):
        ignore = cd.DockerIgnore("*.md\n**/*.tmp\n")
        self.assertEqual(ignore.excluded_by("README.md"), "*.md")
        self.assertIsNone(ignore.excluded_by("docs/a.md"))
        self.assertEqual(ignore.excluded_by("a/b/c.tmp"), "**/*.tmp")

    def test_a_directory_pattern_excludes_what_is_below_and_the_last_match_wins(self):
        ignore = cd.DockerIgnore("# comment\ntarget\ndocs\n!docs/keep.md\n")
        self.assertEqual(ignore.excluded_by("target/debug/robit"), "target")
        self.assertEqual(ignore.excluded_by("docs/other.md"), "docs")
        self.assertIsNone(ignore.excluded_by("docs/keep.md"))
        self.assertIsNone(ignore.excluded_by("crates/x.rs"))


class ConfigurationKeys(unittest.TestCase):
    EXAMPLE = '[llm]\nmodel = "m"\napi_key_file = "/k"\n[engine]\ntokens = { a = 1 }\n'

    def test_variables_name_keys(self):
        self.assertEqual(cd.env_var_key("ROBIT_LLM__BASE_URL"), "llm.base_url")
        text = "ROBIT_LLM__MODEL=x and ROBIT_MCP__SERVERS__<NAME>__TOKEN, not ROBIT_CONFIG"
        self.assertEqual(cd.ENV_VAR.findall(text), ["ROBIT_LLM__MODEL"])

    def test_written_keys_keep_inline_tables_whole_and_leaf_keys_do_not(self):
        self.assertEqual(
            cd.written_keys(self.EXAMPLE), {"llm.model", "llm.api_key_file", "engine.tokens"}
        )
        import tomllib

        self.assertIn("engine.tokens.a", cd.toml_leaf_keys(tomllib.loads(self.EXAMPLE)))


def make_repo(test: unittest.TestCase, files: dict) -> Path:
    """A git repository holding `files` (path -> text), removed when `test` ends."""
    tmp = tempfile.TemporaryDirectory(prefix="check-docker-")
    test.addCleanup(tmp.cleanup)
    root = Path(tmp.name)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def run_checks(root: Path, *checks) -> tuple[cd.Report, str]:
    out = io.StringIO()
    report = cd.Report(out)
    repo = cd.Repo(root)
    for check in checks:
        check(repo, report)
    return report, out.getvalue()


GOOD = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/app"]\n',
    "Cargo.lock": "",
    "crates/app/Cargo.toml": '[package]\nname = "app"\n\n[[bin]]\nname = "app"\npath = "src/main.rs"\n',
    "crates/app/src/main.rs": 'const M: &str = include_str!("../schema.sql");\n',
    "crates/app/schema.sql": "",
    ".dockerignore": "target\n",
    "docker/Dockerfile": (
        "FROM rust AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY crates crates\n"
        "RUN cargo build --release -p app\n"
        "FROM debian\nCOPY --from=build /src/target/release/app /usr/local/bin/app\n"
        'ENTRYPOINT ["app"]\n'
    ),
}


class Checks(unittest.TestCase):
    def test_a_complete_build_context_passes(self):
        root = make_repo(self, GOOD)
        report, out = run_checks(root, cd.check_copy_sources, cd.check_build_context)
        self.assertEqual(report.failures, 0, out)
        self.assertIn("ok    all 1 workspace members are copied into the build stage", out)
        self.assertIn("ok    1 include_str!/include_bytes! targets checked", out)

    def test_an_ignored_include_and_a_missing_member_fail(self):
        files = dict(GOOD)
        files[".dockerignore"] = "target\n**/*.sql\n"
        files["Cargo.toml"] = '[workspace]\nmembers = ["crates/app", "tools/gen"]\n'
        root = make_repo(self, files)
        report, out = run_checks(root, cd.check_copy_sources, cd.check_build_context)
        self.assertIn(
            "FAIL  crates/app/schema.sql (under COPY crates) is excluded by .dockerignore "
            "pattern '**/*.sql'",
            out,
        )
        self.assertIn("FAIL  workspace member tools/gen is not copied into the build stage", out)
        self.assertEqual(report.failures, 3, out)

    def test_the_binary_must_be_a_bin_of_the_manifest(self):
        files = dict(GOOD)
        files["docker/Dockerfile"] = GOOD["docker/Dockerfile"].replace('["app"]', '["other"]')
        root = make_repo(self, files)
        # The binary check reads the manifest robit's layout puts the [[bin]] in.
        (root / "crates/robit").mkdir(parents=True)
        (root / cd.BIN_MANIFEST).write_text(files["crates/app/Cargo.toml"])
        report, out = run_checks(root, cd.check_binary)
        self.assertIn("ok    cargo build -p app is the package of crates/robit/Cargo.toml", out)
        self.assertIn("FAIL  ENTRYPOINT runs 'other', not a [[bin]] of crates/robit/Cargo.toml", out)
        self.assertIn("warn  docker/Dockerfile has no HEALTHCHECK", out)

    def test_variables_must_name_example_keys(self):
        files = dict(GOOD)
        files["robit.example.toml"] = '[llm]\nmodel = "m"\n'
        files["docker/compose.yaml"] = "env: [ROBIT_LLM__MODEL, ROBIT_LLM__MODLE, ROBIT_SLACK__X]\n"
        root = make_repo(self, files)
        report, out = run_checks(root, cd.check_env_vars)
        self.assertIn("ok    ROBIT_LLM__MODEL = llm.model", out)
        self.assertIn(
            "FAIL  ROBIT_LLM__MODLE = llm.modle: no such key in robit.example.toml "
            "(used in docker/compose.yaml)",
            out,
        )
        self.assertIn("warn  ROBIT_SLACK__X = slack.x: adapter key not in", out)
        self.assertEqual((report.failures, report.warnings), (1, 1), out)


if __name__ == "__main__":
    unittest.main()
