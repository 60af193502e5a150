"""The catalog over HTTP: ``GET /api/templates`` and ``GET /api/templates/{slug}`` on the real
bot's HTTP server (and on Socket Mode's health port), read with httpx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from bot.slack.server import BackgroundServer, make_health_app, make_wsgi_app
from catalog import BUILTIN_SLUGS, Template, load_catalog
from tests.fixtures.slack import SIGNING_SECRET, BotFactory, BotHarness

#: What one template looks like over HTTP. ``additionalProperties: false`` everywhere, so a
#: field added by mistake (an env value, health_port, a file path) fails every test below.
TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "slug",
        "name",
        "description",
        "category",
        "source",
        "docker_image",
        "ports",
        "volumes",
        "launch_command",
        "env",
        "min_vram_gb",
        "recommended_vram_gb",
        "cuda_version",
        "min_compute_cap",
        "disk_gb",
        "max_disk_gb",
        "default_lifetime_hours",
        "docs_url",
    ],
    "properties": {
        "slug": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"},
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string", "minLength": 1},
        "category": {"type": "string", "minLength": 1},
        "source": {"enum": ["builtin", "custom"]},
        "docker_image": {"type": "string", "minLength": 1},
        "ports": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "integer", "minimum": 1, "maximum": 65535},
        },
        "volumes": {"type": "array", "items": {"type": "string", "pattern": "^/"}},
        "launch_command": {"type": ["string", "null"], "minLength": 1},
        "env": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "secret"],
                "properties": {"name": {"type": "string"}, "secret": {"type": "boolean"}},
            },
        },
        "min_vram_gb": {"type": "integer", "minimum": 1},
        "recommended_vram_gb": {"type": "integer", "minimum": 1},
        "cuda_version": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "min_compute_cap": {"type": "integer", "minimum": 0},
        "disk_gb": {"type": "integer", "minimum": 8},
        "max_disk_gb": {"type": "integer", "minimum": 8},
        "default_lifetime_hours": {"type": ["integer", "null"], "minimum": 1, "maximum": 720},
        "docs_url": {"type": "string", "pattern": "^https?://[^@/]+(/|$)"},
    },
}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["templates", "count"],
    "properties": {
        "templates": {"type": "array", "items": TEMPLATE_SCHEMA},
        "count": {"type": "integer", "minimum": 0},
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}

JSON_TYPE = "application/json; charset=utf-8"

# A team's template whose env carries secrets, in every place one could leak from.
HF_TOKEN = "hf_TeamSecretValue0123456789"
API_KEY = "sk-live-unlisted-key-4242"  # not in secret_env: its name gives it away
PLAIN_VALUE = "plain-value-not-for-the-web"
DOCS_PASSWORD = "hunter2-docs-password"
QUERY_TOKEN = "q-token-under-an-innocent-name"  # ?tok=…: no name list catches every token
FRAGMENT_TOKEN = "frag-access-token-1234"  # #access_token=…, as OAuth's implicit flow puts it
SECRET_TEMPLATE: dict[str, Any] = {
    "slug": "team-llm",
    "name": "Team LLM",
    "description": "Our fine-tuned model behind vLLM",
    "category": "llm-serving",
    "docker_image": "vllm/vllm-openai:v0.6.3",
    "ports": [8000, 8080],
    "volumes": ["/root/.cache/huggingface"],
    "launch_command": f"serve --hf-token {HF_TOKEN} --api-key {API_KEY} --port 8000",
    "env": {"HF_TOKEN": HF_TOKEN, "OPENAI_API_KEY": API_KEY, "MODE": PLAIN_VALUE},
    "secret_env": ["HF_TOKEN"],
    "password_env": "WEB_PASSWORD",
    "min_vram_gb": 20,
    "recommended_vram_gb": 40,
    "cuda_version": "12.4",
    "disk_gb": 80,
    "max_disk_gb": 200,
    "default_lifetime_hours": 72,
    "min_compute_cap": 800,
    "docs_url": (
        f"https://team:{DOCS_PASSWORD}@wiki.example.com/llm?page=1&tok={QUERY_TOKEN}"
        f"#access_token={FRAGMENT_TOKEN}"
    ),
    "health_path": "/v1/models",
}


def _get_json(http: httpx.Client, path: str, schema: dict[str, Any]) -> Any:
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON_TYPE
    assert response.headers["cache-control"] == "public, max-age=60"
    document = response.json()
    jsonschema.validate(document, schema)
    return document


def _expected(template: Template, source: str) -> dict[str, Any]:
    """What the API must say about a template without secrets, read from the catalog."""
    hidden = template.secret_env_names
    return {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "category": template.category,
        "source": source,
        "docker_image": template.docker_image,
        "ports": template.ports,
        "volumes": template.volumes,
        "launch_command": template.launch_command or None,
        "env": [{"name": n, "secret": n in hidden} for n in sorted(set(template.env) | hidden)],
        "min_vram_gb": template.min_vram_gb,
        "recommended_vram_gb": template.recommended_vram_gb,
        "cuda_version": template.cuda_version,
        "min_compute_cap": template.min_compute_cap,
        "disk_gb": template.disk_gb,
        "max_disk_gb": template.max_disk_gb,
        "default_lifetime_hours": template.default_lifetime_hours,
        "docs_url": template.docs_url,
    }


def test_lists_every_builtin_template_in_catalog_order(bot: BotHarness) -> None:
    listing = _get_json(bot.http, "/api/templates", LIST_SCHEMA)

    catalog = bot.services.catalog
    assert [t["slug"] for t in listing["templates"]] == list(BUILTIN_SLUGS) == catalog.slugs
    assert listing["count"] == len(catalog) == 4
    for record in listing["templates"]:
        assert record == _expected(catalog.get(record["slug"]), "builtin")


def test_one_template_has_the_figures_details_shows(bot: BotHarness) -> None:
    jupyter = _get_json(bot.http, "/api/templates/jupyter-lab", TEMPLATE_SCHEMA)

    assert jupyter == _expected(bot.services.catalog.get("jupyter-lab"), "builtin")
    # The figures, written out once (catalog/builtin/jupyter-lab.yaml), in the units named.
    assert jupyter["name"] == "JupyterLab"
    assert jupyter["min_vram_gb"] == 4 and jupyter["recommended_vram_gb"] == 8
    assert jupyter["cuda_version"] == "11.8" and jupyter["disk_gb"] == 20
    assert jupyter["ports"] == [8888]
    assert jupyter["docker_image"] == "quay.io/jupyter/pytorch-notebook:cuda11-latest"
    assert jupyter["docs_url"].startswith("https://jupyter-docker-stacks.readthedocs.io/")
    # The token the bot generates per deployment is named, as Details does, never valued.
    assert jupyter["env"] == [{"name": "JUPYTER_TOKEN", "secret": True}]
    assert "${JUPYTER_TOKEN}" in jupyter["launch_command"]
    # The same document whether listed or asked for alone.
    listing = bot.http.get("/api/templates").json()
    assert listing["templates"][0] == jupyter


def test_a_custom_template_is_served_without_its_secrets(
    bot_factory: BotFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "team-catalog"
    folder.mkdir()
    (folder / "team-llm.yaml").write_text(yaml.safe_dump(SECRET_TEMPLATE))
    bot = bot_factory(catalog_dir=folder)

    listing = _get_json(bot.http, "/api/templates", LIST_SCHEMA)
    assert listing["count"] == 5
    assert [t["slug"] for t in listing["templates"]] == [*BUILTIN_SLUGS, "team-llm"]
    team = _get_json(bot.http, "/api/templates/team-llm", TEMPLATE_SCHEMA)
    assert listing["templates"][-1] == team
    assert team["source"] == "custom"
    assert (team["min_vram_gb"], team["recommended_vram_gb"], team["disk_gb"]) == (20, 40, 80)
    assert (team["max_disk_gb"], team["default_lifetime_hours"]) == (200, 72)
    assert (team["cuda_version"], team["min_compute_cap"], team["ports"]) == (
        "12.4",
        800,
        [8000, 8080],
    )
    # Names only; secret as Details marks it (secret_env and password_env).
    assert team["env"] == [
        {"name": "HF_TOKEN", "secret": True},
        {"name": "MODE", "secret": False},
        {"name": "OPENAI_API_KEY", "secret": False},
        {"name": "WEB_PASSWORD", "secret": True},
    ]
    # A secret pasted into the command is replaced by its variable, the rest kept.
    assert team["launch_command"] == (
        "serve --hf-token ${HF_TOKEN} --api-key ${OPENAI_API_KEY} --port 8000"
    )
    # scheme://host/path only: no credentials, no query, no fragment.
    assert team["docs_url"] == "https://wiki.example.com/llm"

    for path in ("/api/templates", "/api/templates/team-llm"):
        raw = bot.http.get(path).text
        for leak in (
            HF_TOKEN,
            API_KEY,
            PLAIN_VALUE,
            DOCS_PASSWORD,
            QUERY_TOKEN,
            FRAGMENT_TOKEN,
            str(tmp_path),
            "/v1/models",
        ):
            assert leak not in raw, f"{path} shows {leak!r}"


def test_an_unknown_slug_is_a_json_404(bot: BotHarness) -> None:
    for path in ("/api/templates/no-such-thing", "/api/templates/vllm/extra", "/api/templates/%00"):
        response = bot.http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == JSON_TYPE
        document = response.json()
        jsonschema.validate(document, ERROR_SCHEMA)
        assert document["error"] == "not_found"
    assert "no-such-thing" in bot.http.get("/api/templates/no-such-thing").json()["message"]
    # A trailing slash is the same resource.
    assert bot.http.get("/api/templates/vllm/").json()["slug"] == "vllm"
    assert bot.http.get("/api/templates/").json()["count"] == 4


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow(bot: BotHarness, method: str) -> None:
    for path in ("/api/templates", "/api/templates/vllm", "/api/templates/no-such-thing"):
        response = bot.http.request(method, path, content=b"{}")
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET, HEAD"
        assert response.headers["content-type"] == JSON_TYPE
        document = response.json()
        jsonschema.validate(document, ERROR_SCHEMA)
        assert document["error"] == "method_not_allowed"
    assert bot.http.get("/api/templates").json()["count"] == 4  # nothing changed


def test_head_and_etag(bot: BotHarness) -> None:
    full = bot.http.get("/api/templates/vllm")
    head = bot.http.head("/api/templates/vllm")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == full.headers["etag"]
    assert head.headers["content-type"] == JSON_TYPE

    etag = full.headers["etag"]
    again = bot.http.get("/api/templates/vllm", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = bot.http.get("/api/templates/comfy-ui", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.json()["slug"] == "comfy-ui"
    assert bot.http.get("/api/templates").headers["etag"] != etag


def test_slack_and_health_paths_are_unchanged(bot: BotHarness) -> None:
    """The catalog paths sit beside Slack's: a signed command still reaches Bolt, an unsigned
    one is still refused, and ``/healthz`` still answers."""
    assert bot.command("").status_code == 200
    unsigned = bot.post("command=%2Ftemplates&text=", "application/x-www-form-urlencoded", {})
    assert unsigned.status_code == 401
    assert bot.http.get("/healthz").json()["ok"] is True
    assert bot.http.get("/api/templatesx").status_code == 404  # not a catalog path: Bolt's


def test_without_a_catalog_the_paths_are_not_served(bot: BotHarness) -> None:
    """``make_wsgi_app``'s ``catalog`` is optional: without it, as before, Bolt answers."""
    wsgi = make_wsgi_app(bot.runtime.app, lambda: {"database": True}, signing_secret=SIGNING_SECRET)
    server = BackgroundServer(wsgi).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            answer = http.get("/api/templates")
            assert answer.status_code == 404
            assert "templates" not in answer.text
            assert http.get("/healthz").json() == {"ok": True, "database": True}
    finally:
        server.stop()


def test_socket_mode_health_port_serves_the_catalog_too() -> None:
    catalog = load_catalog(None)
    app = make_health_app(lambda: {"socket": True}, catalog=catalog)
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert _get_json(http, "/api/templates", LIST_SCHEMA)["count"] == len(catalog)
            assert _get_json(http, "/api/templates/vllm", TEMPLATE_SCHEMA)["slug"] == "vllm"
            assert http.post("/api/templates").status_code == 405
            assert http.get("/healthz").json() == {"ok": True, "socket": True}
            assert http.post("/slack/events").status_code == 404
    finally:
        server.stop()
