#!/usr/bin/env python3
"""Checks the deployment files (docker/, .dockerignore) without Docker or a cluster.

Run it as `scripts/check-docker` from anywhere; it exits 0 when nothing failed (warnings
allowed). Each check is one function below, taking the repository and a `Report`, and
`CHECKS` lists them in the order they run; to add a check, write a function and add it there.
The parsing helpers (Dockerfile instructions, .dockerignore patterns, configuration key
names) are plain functions with unit tests in `test_check_docker.py`
(`python3 -m unittest discover -s scripts -p 'test_*.py'`).

What is checked:

- every COPY/ADD source in docker/Dockerfile that comes from the build context exists and is
  not excluded by .dockerignore (copies --from= another stage are skipped), and the copied
  paths cover every workspace member and every file the crates include_str!;
- the binary the Dockerfile builds, copies and runs is a [[bin]] of crates/robit;
- Cargo.lock satisfies `cargo build --locked`;
- every YAML file under docker/ parses (PyYAML; installed with pip if missing, skipped if
  that fails), and the Kubernetes manifests hang together: selectors match pod labels,
  referenced ConfigMap/Secret keys exist, the ConfigMap's robit.toml uses only keys of
  robit.example.toml, probes name a declared port;
- every ROBIT_<SECTION>__<KEY> variable in docker/ and docs/operations.md names a key of
  robit.example.toml. Adapter keys (discord.*, slack.*, http.*) not there yet are warnings,
  not failures;
- the StatefulSet's shell wrapper passes `sh -n`.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DOCKERFILE = "docker/Dockerfile"
DOCKERIGNORE = ".dockerignore"
BIN_MANIFEST = "crates/robit/Cargo.toml"
EXAMPLE = "robit.example.toml"


class Report:
    """Prints one line per finding and counts failures and warnings."""

    def __init__(self, out=sys.stdout):
        self.out = out
        self.failures = 0
        self.warnings = 0

    def _line(self, tag: str, message: str) -> None:
        print(f"{tag:<6}{message}", file=self.out)

    def ok(self, message: str) -> None:
        self._line("ok", message)

    def fail(self, message: str) -> None:
        self.failures += 1
        self._line("FAIL", message)

    def warn(self, message: str) -> None:
        self.warnings += 1
        self._line("warn", message)

    def skip(self, message: str) -> None:
        self._line("skip", message)

    def note(self, message: str) -> None:
        self._line("", message)

    def section(self, title: str) -> None:
        print(file=self.out)
        print(f"== {title}", file=self.out)


@dataclass
class Repo:
    """The repository being checked, and what earlier checks learned that later ones use."""

    root: Path
    # (source, destination) of each COPY/ADD from the build context.
    context_copies: list[tuple[str, str]] = field(default_factory=list)
    # Whether PyYAML could be imported (the YAML checks are skipped otherwise).
    yaml: object | None = None

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return self.path(rel).read_text(encoding="utf-8")

    def instructions(self) -> list[str]:
        return dockerfile_instructions(self.read(DOCKERFILE))


# --- parsing helpers (pure; unit-tested) -------------------------------------------------


def dockerfile_instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, one per line: comment lines dropped (Docker drops them
    inside continuations too), continuation lines joined with a space."""
    out, pending = [], ""
    for raw in text.splitlines():
        if re.match(r"^\s*#", raw):
            continue
        line = pending + raw
        stripped = re.sub(r"\\\s*$", "", line)
        if stripped != line:
            pending = stripped + " "
            continue
        pending = ""
        if line.strip():
            out.append(line)
    return out


@dataclass
class Copy:
    """A COPY or ADD instruction: its sources and destination, and the stage it copies from."""

    instruction: str
    sources: list[str]
    dest: str | None
    from_stage: str | None


def parse_copy(line: str) -> Copy | None:
    """The COPY/ADD on `line`, or None for any other instruction. Flags are dropped; the exec
    form (`COPY ["a", "b"]`) gives the same sources and destination as the shell form."""
    words = line.split()
    instruction = words[0].upper()
    if instruction not in ("COPY", "ADD"):
        return None
    from_stage, args = None, []
    for word in words[1:]:
        if word.startswith("--from="):
            from_stage = word[len("--from="):]
        elif not word.startswith("--"):
            args.append(word)
    if args and args[0].startswith("["):
        joined = " ".join(args).removeprefix("[").removesuffix("]")
        args = [a.strip().removeprefix('"').removesuffix('"') for a in joined.split(",")]
    if len(args) < 2:
        return Copy(instruction, [], None, from_stage)
    return Copy(instruction, args[:-1], args[-1], from_stage)


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out += re.escape(c)
            else:
                out += pattern[i:j + 1]
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 1
        else:
            out += re.escape(c)
        i += 1
    return re.compile("^" + out + "$")


def norm(path: str) -> str:
    """A path relative to the build context, cleaned; '' for the context itself."""
    path = os.path.normpath(path)
    return "" if path == "." else path.lstrip("/")


class DockerIgnore:
    """Docker's .dockerignore rules (moby patternmatcher): patterns are cleaned paths relative
    to the context; '*' and '?' stay within one path element, '**' spans any number; a
    pattern also excludes everything below a directory it matches; the last matching pattern
    wins, and '!' re-includes."""

    def __init__(self, text: str):
        self.rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:].strip()
            line = norm(line)
            if line:
                self.rules.append((negated, _pattern_regex(line), line))

    def excluded_by(self, path: str) -> str | None:
        """The pattern that excludes `path`, or None when it is in the context."""
        parts = norm(path).split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        verdict = None
        for negated, regex, source in self.rules:
            if any(regex.match(p) for p in prefixes):
                verdict = None if negated else source
        return verdict


def toml_leaf_keys(table: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every value that is not a table (`llm.model`, `mcp.servers.x.env.K`)."""
    out = set()
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out |= toml_leaf_keys(value, path)
        else:
            out.add(path)
    return out


def written_keys(text: str) -> set[str]:
    """Dotted paths of the `key =` lines of a TOML file under their `[section]` headers: the
    keys as written, so an inline table (`model_context_tokens = { … }`) is one key, which is
    what a ROBIT_ variable can name."""
    keys, section = set(), ""
    for line in text.splitlines():
        if re.match(r"^\s*\[", line):
            section = re.sub(r"[\[\]\s]", "", line)
        elif re.match(r"^\s*[A-Za-z0-9_]+\s*=", line):
            key = re.sub(r"\s", "", re.sub(r"\s*=.*", "", line))
            keys.add(f"{section}.{key}" if section else key)
    return keys


# A variable written as a template (`ROBIT_MCP__SERVERS__<NAME>__BEARER_TOKEN`) names a key
# of an entry the operator chooses, which no example file can hold: it is not matched (the
# name must not end in `_` nor run into a `<`).
ENV_VAR = re.compile(r"\bROBIT_[A-Z0-9_]+__[A-Z0-9_]*[A-Z0-9]\b(?!<)")


def env_var_key(var: str) -> str:
    """The configuration key a ROBIT_ variable sets: `ROBIT_LLM__BASE_URL` -> `llm.base_url`."""
    return var.removeprefix("ROBIT_").replace("__", ".").lower()


def program_of(line: str) -> str:
    """The program an ENTRYPOINT, CMD or HEALTHCHECK line runs (its file name only)."""
    rest = re.sub(r"^\s*[A-Za-z]+\s+", "", line)
    rest = re.sub(r"^(--[a-z-]+=[^ ]+\s+)*", "", rest)
    rest = re.sub(r"^CMD\s+", "", rest)
    exec_form = re.match(r'^\[\s*"([^"]+)"', rest)
    program = exec_form.group(1) if exec_form else rest.split(" ", 1)[0]
    return program.rsplit("/", 1)[-1]


# --- checks ------------------------------------------------------------------------------


def check_copy_sources(repo: Repo, report: Report) -> None:
    report.section(f"COPY sources in {DOCKERFILE}")
    for line in repo.instructions():
        copy = parse_copy(line)
        if copy is None:
            continue
        if copy.from_stage is not None:
            report.skip(f"{copy.instruction} --from={copy.from_stage} (another stage or image)")
            continue
        if copy.dest is None:
            report.fail(f"{copy.instruction} without a source and a destination: {line}")
            continue
        for src in copy.sources:
            if re.match(r"^(https?|git)(://|@)", src):
                report.skip(f"{copy.instruction} {src} (remote)")
                continue
            path = src
            while path.endswith("/") and path != "/":
                path = path[:-1]
            if re.search(r"[*?\[]", path):
                found = bool(glob.glob(str(repo.path(path))))
            else:
                found = repo.path(path).exists()
            if found:
                report.ok(f"{copy.instruction} {src} -> {copy.dest}")
                repo.context_copies.append((src, copy.dest))
            else:
                report.fail(f"{copy.instruction} {src}: no such file or directory in the repository")
    if not repo.context_copies:
        report.warn("no COPY from the build context found")


def check_build_context(repo: Repo, report: Report) -> None:
    """.dockerignore exclusions, and what the build needs from the context."""
    ignore_path = repo.path(DOCKERIGNORE)
    ignore = DockerIgnore(ignore_path.read_text() if ignore_path.exists() else "")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        capture_output=True, text=True, cwd=repo.root,
    ).stdout.split()
    files = [f for f in listed if repo.path(f).exists()]

    covered = []  # directories/files copied with their relative path preserved
    for src, dest in repo.context_copies:
        s = norm(src)
        hit = ignore.excluded_by(s)
        if hit:
            report.fail(f"COPY {src}: excluded by .dockerignore pattern '{hit}'")
            continue
        inside = [f for f in files if f == s or f.startswith(s + "/")] if s else files
        bad = [(f, ignore.excluded_by(f)) for f in inside]
        bad = [(f, p) for f, p in bad if p]
        for f, p in bad[:10]:
            report.fail(f"{f} (under COPY {src}) is excluded by .dockerignore pattern '{p}'")
        if not bad:
            plural = "s" if len(inside) != 1 else ""
            report.ok(f"COPY {src}: nothing under it is excluded by .dockerignore ({len(inside)} file{plural})")
        d = norm(dest)
        if repo.path(s).is_dir() and d == s:
            covered.append(s)
        elif repo.path(s).is_file() and (
            d == s or dest.endswith("/") and norm(os.path.join(d, os.path.basename(s))) == s
        ):
            covered.append(s)

    def is_covered(path: str) -> bool:
        path = norm(path)
        return any(path == c or path.startswith(c + "/") for c in covered)

    # Workspace members must all be copied, or cargo cannot load the workspace.
    workspace = tomllib.loads(repo.read("Cargo.toml"))
    members = workspace.get("workspace", {}).get("members", [])
    missing = [m for m in members if not is_covered(os.path.join(m, "Cargo.toml"))]
    for m in missing:
        report.fail(f"workspace member {m} is not copied into the build stage at its own path")
    if members and not missing:
        report.ok(f"all {len(members)} workspace members are copied into the build stage")
    for f in ("Cargo.toml", "Cargo.lock"):
        if not is_covered(f):
            report.fail(f"{f} is not copied into the build stage")

    # Files compiled in with include_str!/include_bytes! must be in the context too.
    include = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)')
    checked = 0
    for f in files:
        if not f.endswith(".rs") or not is_covered(f):
            continue
        try:
            text = repo.read(f)
        except (OSError, UnicodeDecodeError):
            continue
        for rel in include.findall(text):
            target = norm(os.path.join(os.path.dirname(f), rel))
            checked += 1
            if not repo.path(target).exists():
                report.warn(f"{f}: include of {rel} points at {target}, which does not exist")
            elif not is_covered(target):
                report.fail(f"{f} includes {target}, which the Dockerfile does not copy")
            elif ignore.excluded_by(target):
                report.fail(f"{f} includes {target}, which .dockerignore excludes")
    report.ok(f"{checked} include_str!/include_bytes! targets checked")


def check_binary(repo: Repo, report: Report) -> None:
    report.section("binary name")
    manifest = tomllib.loads(repo.read(BIN_MANIFEST))
    bins = [b.get("name") for b in manifest.get("bin", []) if b.get("name")]
    package = manifest.get("package", {}).get("name", "")
    if bins:
        report.note(f"[[bin]] names in {BIN_MANIFEST}: {' '.join(bins)}")
    else:
        report.fail(f"{BIN_MANIFEST} declares no [[bin]]")

    lines = repo.instructions()
    text = "\n".join(lines)
    build = [
        m.group(1)
        for cargo in re.findall(r"cargo build[^&;\n]*", text)
        for m in re.finditer(r"(?:-p|--package)[ =]([A-Za-z0-9_-]+)", cargo)
    ]
    if not build:
        report.fail(f"no `cargo build -p <package>` in {DOCKERFILE}")
    elif build[0] == package:
        report.ok(f"cargo build -p {build[0]} is the package of {BIN_MANIFEST}")
    else:
        report.fail(f"cargo build -p {build[0]}, but {BIN_MANIFEST} is package '{package}'")

    built = sorted(set(re.findall(r"target/release/([A-Za-z0-9_-]+)", text)))
    if not built:
        report.fail(f"{DOCKERFILE} copies nothing out of target/release/")
    for b in built:
        if b in bins:
            report.ok(f"target/release/{b} is a [[bin]]")
        else:
            report.fail(f"target/release/{b} is not a [[bin]] of {BIN_MANIFEST}")

    for instruction in ("ENTRYPOINT", "HEALTHCHECK"):
        found = [l for l in lines if re.match(rf"^\s*{instruction}\s", l, re.IGNORECASE)]
        if not found:
            report.warn(f"{DOCKERFILE} has no {instruction}")
            continue
        program = program_of(found[-1])
        if program in bins:
            report.ok(f"{instruction} runs {program}, a [[bin]]")
        else:
            report.fail(f"{instruction} runs '{program}', not a [[bin]] of {BIN_MANIFEST}")

    copied = sorted({
        b
        for l in lines if re.match(r"^\s*COPY\s+--from=", l)
        for b in re.findall(r"/usr/local/bin/([A-Za-z0-9_-]+)", l)
    })
    for b in copied:
        if b in bins:
            report.ok(f"runtime copies /usr/local/bin/{b}, a [[bin]]")
        else:
            report.fail(f"runtime copies /usr/local/bin/{b}, not a [[bin]]")

    # The guests fetched in the build are where the image's ENV says they are.
    fetched = [
        m.group(0).split()[1]
        for l in lines if re.match(r"^\s*RUN\s", l)
        for m in re.finditer(r"fetch-guests\s+[^ ]+", l)
    ]
    guest_dir = fetched[0] if fetched else ""
    for var in ("ROBIT_SANDBOX__PYTHON_WASM", "ROBIT_SANDBOX__QUICKJS_WASM"):
        m = re.search(rf"{var}=([^ ]+)", text)
        if not m:
            report.warn(f"{DOCKERFILE} does not set {var}")
            continue
        path = m.group(1)
        copied_to_runtime = any(
            re.match(rf"^\s*COPY\s+--from=[^ ]+\s+{re.escape(guest_dir)}\s+{re.escape(guest_dir)}$", l)
            for l in lines
        )
        if guest_dir and os.path.dirname(path) == guest_dir and copied_to_runtime:
            report.ok(f"{var}={path}: fetched by fetch-guests into {guest_dir} and copied to the runtime stage")
        else:
            report.fail(f"{var}={path} does not match the fetch-guests directory '{guest_dir}' copied into the runtime stage")


def check_lockfile(repo: Repo, report: Report) -> None:
    report.section("Cargo.lock (cargo build --locked)")
    if not shutil.which("cargo"):
        report.warn("cargo not found: Cargo.lock not checked")
        return
    run = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=repo.root,
    )
    err = run.stderr.strip()
    first_error = next((l for l in err.splitlines() if "error" in l.lower()), None)
    if run.returncode == 0:
        report.ok("Cargo.lock is up to date with the workspace manifests")
    elif "--locked" in err:
        report.fail(f"Cargo.lock needs updating, so `cargo build --locked` would fail: {first_error or ''}")
    else:
        fallback = err.splitlines()[0] if err else ""
        report.warn(f"could not check Cargo.lock offline: {first_error or fallback}")


def load_yaml(report: Report):
    """PyYAML, installed with pip when missing; None when that fails too."""
    try:
        return importlib.import_module("yaml")
    except ImportError:
        pass
    report.note("PyYAML is missing; installing it with pip")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "pyyaml"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    importlib.invalidate_caches()
    try:
        return importlib.import_module("yaml")
    except ImportError:
        return None


def check_yaml(repo: Repo, report: Report) -> None:
    report.section("YAML under docker/")
    yaml = repo.yaml = load_yaml(report)
    if yaml is None:
        report.warn("PyYAML unavailable (and pip could not install it): YAML files not parsed")
        return
    example_keys = toml_leaf_keys(tomllib.loads(repo.read(EXAMPLE)))
    files = sorted(
        str(p.relative_to(repo.root))
        for pattern in ("docker/**/*.yaml", "docker/**/*.yml")
        for p in repo.root.glob(pattern)
    )
    docs = {}
    for f in files:
        try:
            loaded = [d for d in yaml.safe_load_all(repo.read(f)) if d is not None]
            docs[f] = loaded
            plural = "s" if len(loaded) != 1 else ""
            report.ok(f"{f} parses ({len(loaded)} document{plural})")
        except yaml.YAMLError as e:
            report.fail(f"{f} does not parse: {str(e).splitlines()[0]}")
    check_compose(repo, report, docs)
    check_kubernetes(report, docs, example_keys)


def check_compose(repo: Repo, report: Report, docs: dict) -> None:
    """Compose: the build context and Dockerfile each service names exist."""
    for f, ds in docs.items():
        for d in ds:
            if not isinstance(d, dict) or "services" not in d:
                continue
            for name, svc in (d.get("services") or {}).items():
                b = (svc or {}).get("build")
                if not b:
                    continue
                ctx = b if isinstance(b, str) else b.get("context", ".")
                ctx = os.path.normpath(os.path.join(os.path.dirname(f), ctx))
                dockerfile = b.get("dockerfile", "Dockerfile") if isinstance(b, dict) else "Dockerfile"
                df = os.path.join(ctx, dockerfile)
                if repo.path(ctx).is_dir() and repo.path(df).is_file():
                    report.ok(f"{f}: service {name} builds {os.path.normpath(df)} in context {ctx}")
                else:
                    report.fail(f"{f}: service {name} builds {df} in {ctx}, which does not exist")


def check_kubernetes(report: Report, docs: dict, example_keys: set[str]) -> None:
    """The manifests under docker/k8s/ refer only to what they define."""
    objs = []
    for f, ds in docs.items():
        if not f.startswith("docker/k8s/"):
            continue
        for d in ds:
            if not isinstance(d, dict):
                report.fail(f"{f}: a document is not a mapping")
                continue
            missing = [k for k in ("apiVersion", "kind") if k not in d]
            if not (d.get("metadata") or {}).get("name"):
                missing.append("metadata.name")
            if missing:
                report.fail(f"{f}: a {d.get('kind', 'document')} lacks {', '.join(missing)}")
                continue
            objs.append((f, d))

    def named(kind):
        return {d["metadata"]["name"]: (f, d) for f, d in objs if d["kind"] == kind}

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    configmaps, secrets = named("ConfigMap"), named("Secret")
    pod_templates = []  # (file, kind/name, labels, pod spec)
    for f, d in objs:
        spec = d.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        who = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            if selector and selects(selector, labels):
                report.ok(f"{f}: {who} selector matches its pod labels")
            else:
                report.fail(f"{f}: {who} selector {selector} does not match its pod labels {labels}")
            pod_templates.append((f, who, labels, template.get("spec") or {}))
            service = spec.get("serviceName")
            if d["kind"] == "StatefulSet" and service and service not in named("Service"):
                report.fail(f"{f}: {who} serviceName {service} is not defined under docker/k8s")
        elif d["kind"] == "Job":
            pod_templates.append((f, who, labels, template.get("spec") or {}))

    for f, d in objs:
        if d["kind"] != "Service":
            continue
        selector = (d.get("spec") or {}).get("selector") or {}
        hits = [who for _, who, labels, _ in pod_templates if selector and selects(selector, labels)]
        if hits:
            report.ok(f"{f}: Service/{d['metadata']['name']} selects {', '.join(hits)}")
        else:
            report.fail(f"{f}: Service/{d['metadata']['name']} selector {selector} matches no pod template")

    for f, who, _, pod in pod_templates:
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            check_container(report, f, f"{who} container {c.get('name')}", c, volumes, configmaps, secrets)

    # The ConfigMap's robit.toml: valid TOML, and only keys robit.example.toml has (robit
    # rejects unknown keys at start).
    for name, (f, d) in configmaps.items():
        for key, body in (d.get("data") or {}).items():
            if not key.endswith(".toml"):
                continue
            try:
                used = toml_leaf_keys(tomllib.loads(body))
            except tomllib.TOMLDecodeError as e:
                report.fail(f"{f}: ConfigMap {name} {key} is not valid TOML: {e}")
                continue
            unknown = sorted(used - example_keys)
            adapter = [k for k in unknown if k.split(".")[0] in ("discord", "slack", "http")]
            other = [k for k in unknown if k not in adapter]
            for k in adapter:
                report.warn(f"{f}: ConfigMap {name} {key} sets {k}, not in robit.example.toml yet")
            if other:
                report.fail(f"{f}: ConfigMap {name} {key} sets keys robit.example.toml does not have: {', '.join(other)}")
            else:
                report.ok(f"{f}: ConfigMap {name} {key} parses; its {len(used)} keys are in robit.example.toml")


def check_container(report, f, cname, c, volumes, configmaps, secrets) -> None:
    """One container of a pod template: probes, secret references, mounts, --config."""
    ports = {p.get("name") for p in c.get("ports") or []} | {p.get("containerPort") for p in c.get("ports") or []}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http_get = (c.get(probe) or {}).get("httpGet") or {}
        if http_get and http_get.get("port") not in ports:
            report.fail(f"{f}: {cname} {probe} uses port {http_get.get('port')}, which the container does not declare")
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            continue
        sname, key, optional = ref.get("name"), ref.get("key"), ref.get("optional", False)
        if sname not in secrets:
            report.fail(f"{f}: {cname} env {e.get('name')} refers to Secret {sname}, not defined under docker/k8s")
            continue
        secret = secrets[sname][1]
        if key not in (secret.get("stringData") or {}) | (secret.get("data") or {}):
            message = f"{f}: {cname} env {e.get('name')} refers to key {key}, not in Secret {sname}"
            report.warn(message) if optional else report.fail(message)
    for m in c.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            report.fail(f"{f}: {cname} mounts volume {m.get('name')}, not declared in the pod")
    # --config PATH must be a key of a mounted ConfigMap.
    argv = " ".join(str(a) for a in (c.get("command") or []) + (c.get("args") or []))
    for path in re.findall(r"--config[ =](\S+)", argv):
        ok = False
        for m in c.get("volumeMounts") or []:
            configmap = ((volumes.get(m.get("name")) or {}).get("configMap") or {}).get("name")
            mount = m.get("mountPath", "").rstrip("/")
            if configmap and path.startswith(mount + "/"):
                if configmap not in configmaps:
                    report.fail(f"{f}: {cname} mounts ConfigMap {configmap}, not defined under docker/k8s")
                elif path[len(mount) + 1:] in (configmaps[configmap][1].get("data") or {}):
                    ok = True
        if ok:
            report.ok(f"{f}: {cname} --config {path} is a key of a mounted ConfigMap")
        else:
            report.fail(f"{f}: {cname} --config {path} is not a key of a mounted ConfigMap")


def check_env_vars(repo: Repo, report: Report) -> None:
    report.section("ROBIT_* variables name configuration keys")
    example_keys = written_keys(repo.read(EXAMPLE))
    files = sorted(str(p.relative_to(repo.root)) for p in repo.path("docker").rglob("*") if p.is_file())
    if repo.path("docs/operations.md").is_file():
        files.append("docs/operations.md")
    texts = {f: repo.path(f).read_text(errors="replace") for f in files}
    variables = sorted({v for text in texts.values() for v in ENV_VAR.findall(text)})
    for var in variables:
        key = env_var_key(var)
        section, _, name = key.partition(".")
        as_word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(var)}(?![A-Za-z0-9_])")
        where = " ".join(f for f, text in texts.items() if as_word.search(text))
        if key in example_keys:
            report.ok(f"{var} = {key}")
        elif f"{key}_file" in example_keys:
            # Secrets are not in the example file, only their *_file key (see its header).
            report.ok(f"{var} = {key} (a secret: the example has {key}_file)")
        elif section in ("discord", "slack", "http"):
            src = f"adapters/{section}/src/config.rs"
            if not repo.path(src).is_file():
                report.warn(f"{var} = {key}: adapter key not in {EXAMPLE} yet (used in {where})")
            elif re.search(rf"^\s*pub\s+{re.escape(name)}\s*:", repo.read(src), re.MULTILINE):
                report.warn(f"{var} = {key}: a field in {src}, not in {EXAMPLE} yet (used in {where})")
            else:
                report.warn(f"{var} = {key}: neither in {EXAMPLE} nor a field in {src} (used in {where})")
        else:
            report.fail(f"{var} = {key}: no such key in {EXAMPLE} (used in {where})")


def check_wrapper_shell(repo: Repo, report: Report) -> None:
    report.section("shell in the StatefulSet wrapper")
    if repo.yaml is None:
        return
    for f in sorted(repo.root.glob("docker/k8s/*.yaml")):
        rel = f.relative_to(repo.root)
        for d in repo.yaml.safe_load_all(f.read_text()):
            if not isinstance(d, dict):
                continue
            pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in pod.get("containers") or []:
                if (c.get("command") or [])[:2] == ["/bin/sh", "-c"] and c.get("args"):
                    r = subprocess.run(["sh", "-n", "-c", c["args"][0]], capture_output=True, text=True)
                    who = f"{rel}: {d['kind']}/{d['metadata']['name']} wrapper script"
                    if r.returncode == 0:
                        report.ok(f"{who} passes sh -n")
                    else:
                        report.fail(f"{who}: {r.stderr.strip()}")


# In order: check_build_context reads the copies check_copy_sources found, and
# check_wrapper_shell the PyYAML check_yaml loaded.
CHECKS = [
    check_copy_sources,
    check_build_context,
    check_binary,
    check_lockfile,
    check_yaml,
    check_env_vars,
    check_wrapper_shell,
]


def main(root: Path) -> int:
    report = Report()
    repo = Repo(root)
    if not repo.path(DOCKERFILE).is_file():
        report.fail(f"{DOCKERFILE} is missing")
        return 1
    for check in CHECKS:
        check(repo, report)
    print()
    if report.failures:
        print(f"check-docker: {report.failures} failure(s), {report.warnings} warning(s)")
        return 1
    print(f"check-docker: no failures, {report.warnings} warning(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
