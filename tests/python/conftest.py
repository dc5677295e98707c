"""Fixtures that start `robit emulate discord|slack` for each test and talk to its control API.

The binary comes from $ROBIT_BIN when set (what scripts/python-tests does after building it);
otherwise the tests fall back to `cargo run -q -p robit -- emulate ...`. Each test gets a fresh
emulator on a free loopback port, so tests never see each other's state.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"emulator listening on (http://127\.0\.0\.1:\d+)")


def _command(platform):
    binary = os.environ.get("ROBIT_BIN")
    if binary:
        return [binary, "emulate", platform, "--port", "0"]
    return ["cargo", "run", "-q", "-p", "robit", "--", "emulate", platform, "--port", "0"]


class Emulator:
    """One running emulator process: its base URL, what it printed, and JSON helpers."""

    def __init__(self, platform):
        self.proc = subprocess.Popen(
            _command(platform),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        self.banner = []
        deadline = time.monotonic() + 600  # `cargo run` may have to build first
        self.base = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"robit emulate {platform} exited: {self.proc.wait()}")
            self.banner.append(line.rstrip("\n"))
            m = LISTENING.search(line)
            if m:
                self.base = m.group(1)
                break
        if self.base is None:
            raise RuntimeError("the emulator did not say where it listens")
        # Keep reading the banner (the environment lines) until the blank line after it.
        for line in self.proc.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.startswith("control API"):
                break
        self.env = {}
        for line in self.banner:
            m = re.match(r"export (\w+)=(\S+)", line)
            if m:
                self.env[m.group(1)] = m.group(2)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get(self, path):
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def post(self, path, body=None):
        status, out = self.request("POST", path, body if body is not None else {})
        assert status in (200, 204), (path, status, out)
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def discord_emu():
    emu = Emulator("discord")
    emu.info = emu.get("/_emulator/info")
    yield emu
    emu.stop()


@pytest.fixture
def slack_emu():
    emu = Emulator("slack")
    yield emu
    emu.stop()


def wait_until(cond, timeout=10.0, what="condition"):
    """Polls `cond` (no fixed sleeps standing in for it) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
