"""The container image and the compose file: hadolint passes the ``Dockerfile``, ``compose.yaml``
validates against the Compose specification's JSON Schema, and both say what the README
promises (non-root, ``python -m bot``, a health check on ``/healthz``, PostgreSQL awaited).

No Docker daemon is needed: the image's command and health check are run here as the container
would run them (``.ci/run`` also builds and starts the image where a daemon answers).

Sources: Dockerfile reference https://docs.docker.com/reference/dockerfile/ (HEALTHCHECK: exit
status 0 healthy, 1 unhealthy); Compose specification https://github.com/compose-spec/compose-spec
(``depends_on.condition: service_healthy``), its JSON Schema as vendored by check-jsonschema
(``--builtin-schema vendor.compose-spec``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.test_cli import _env, _free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"


def _tool(name: str) -> str:
    """A console script of the [test] extra: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]' installs it"
    return found


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    result = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _healthcheck_command() -> list[str]:
    (arguments,) = [args for keyword, args in _final_stage() if keyword == "HEALTHCHECK"]
    return list(json.loads(arguments[arguments.index("CMD") + len("CMD") :]))


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_the_installed_package_as_a_non_root_user() -> None:
    stage = _final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the final stage has no USER: the bot would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert [args for keyword, args in stage if keyword == "CMD"] == ['["python", "-m", "bot"]']
    assert ("EXPOSE", "3000") in stage
    assert any(keyword == "HEALTHCHECK" and "/healthz" in args for keyword, args in stage)
    # Installed from the project's own files: every package and the readme pyproject names.
    copied = " ".join(args for keyword, args in _instructions() if keyword == "COPY")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for needed in ["pyproject.toml", project["project"]["readme"]]:
        assert needed in copied
    for package in packages:
        assert package.rstrip("*") in copied
    assert any(
        keyword == "RUN" and "pip install --no-cache-dir ." in args
        for keyword, args in _instructions()
    )


def test_no_secret_is_baked_into_the_image() -> None:
    secret_words = ("TOKEN", "SECRET", "PASSWORD", "KEY", "DATABASE_URL")
    for keyword, args in _instructions():
        if keyword in {"ENV", "ARG"}:
            assert not any(word in args.upper() for word in secret_words), args
    ignored = (ROOT / ".dockerignore").read_text().split()
    for kept_out in [".env", ".git", ".venv", ".ci-venv", "*.db", ".pytest_cache"]:
        assert kept_out in ignored


def test_compose_runs_the_bot_on_postgres_once_the_database_is_ready() -> None:
    compose = _compose()
    db, bot = compose["services"]["db"], compose["services"]["bot"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume, _, target = db["volumes"][0].partition(":")
    assert volume in compose["volumes"]  # a named volume, not a bind mount
    assert target == "/var/lib/postgresql/data"
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert bot["env_file"] == ".env"
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://gpubot:")
    assert bot["environment"]["DATABASE_URL"].endswith("@db:5432/gpubot")
    assert bot["ports"] == ["${PORT:-3000}:3000"]
    assert "ports" not in db  # the database is reachable from the bot only


def _healthcheck(port: int) -> int:
    """The Dockerfile's HEALTHCHECK command, with this interpreter for ``python``."""
    command = _healthcheck_command()
    assert command[0] == "python"
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    return result.returncode


def test_health_check_passes_on_the_running_bot_and_fails_once_it_stops(tmp_path: Path) -> None:
    """The image's CMD started as the container would (OAuth mode: no Slack call at start-up;
    no VAST_API_KEY: the built-in simulator), then its HEALTHCHECK command run against it."""
    port = _free_port()
    command = json.loads(dict(_final_stage())["CMD"])
    process = subprocess.Popen(
        [sys.executable, *command[1:]],
        cwd=tmp_path,
        env=_env(
            SLACK_CLIENT_ID="1.2",
            SLACK_CLIENT_SECRET="client-secret",
            SLACK_SIGNING_SECRET="signing-secret",
            ENCRYPTION_KEY=Fernet.generate_key().decode(),
            DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            PORT=str(port),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the bot never answered GET /healthz with 200")
        assert _healthcheck(port) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert _healthcheck(port) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_health_check_fails_when_healthz_answers_503() -> None:
    """/healthz says 503 when the bot cannot serve (e.g. Socket Mode's socket is down)."""

    class Unhealthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unhealthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert _healthcheck(server.server_address[1]) != 0
    finally:
        server.shutdown()
        server.server_close()
