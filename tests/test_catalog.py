"""Catalog model and loader: built-ins, custom folders, overrides and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from catalog import (
    BUILTIN_SLUGS,
    Catalog,
    CatalogError,
    Template,
    load_catalog,
    validate_dir,
)
from catalog.cli import format_table, main, main_list, main_validate


def template_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "llama",
        "name": "Llama",
        "description": "Our Llama fine-tune behind an OpenAI-style API.",
        "category": "llm-serving",
        "docker_image": "vllm/vllm-openai:v0.6.3",
        "ports": [8000],
        "min_vram_gb": 16,
        "recommended_vram_gb": 24,
        "cuda_version": "12.1",
        "disk_gb": 60,
        "docs_url": "https://docs.vllm.ai/",
        "health_path": "/v1/models",
    }
    data.update(overrides)
    return data


def write(folder: Path, name: str, content: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(folder)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- built-ins ------------------------------------------------------------------------------

BUILTIN_FIGURES = {
    # slug: (name, min VRAM, recommended VRAM, CUDA, ports, disk, health path, category)
    "jupyter-lab": ("JupyterLab", 4, 8, "11.8", [8888], 20, "/api", "notebook"),
    "stable-diffusion": ("Stable Diffusion WebUI", 8, 12, "11.8", [7860], 40, "/", None),
    "comfy-ui": ("ComfyUI", 6, 10, "11.8", [8188], 40, "/system_stats", None),
    "vllm": ("vLLM", 16, 24, "12.1", [8000], 60, "/v1/models", "llm-serving"),
}


def test_builtins_load_in_design_order_with_their_figures() -> None:
    catalog = load_catalog()

    assert catalog.slugs == list(BUILTIN_SLUGS) == list(BUILTIN_FIGURES)
    assert len(catalog) == 4
    for template in catalog:
        name, min_gb, rec_gb, cuda, ports, disk, health, category = BUILTIN_FIGURES[template.slug]
        assert template.name == name
        assert (template.min_vram_gb, template.recommended_vram_gb) == (min_gb, rec_gb)
        assert template.cuda_version == cuda
        assert template.ports == ports
        assert template.health_port == ports[0] == template.probe_port
        assert template.disk_gb == disk
        assert template.health_path == health
        if category:
            assert template.category == category
        assert template.docs_url.startswith("https://")
        assert template.docker_image and template.launch_command
        assert catalog.source(template.slug) == "builtin"


def test_builtin_details_the_bot_relies_on() -> None:
    catalog = load_catalog()
    jupyter, sd, comfy, vllm = (catalog.get(s) for s in BUILTIN_SLUGS)
    assert jupyter and sd and comfy and vllm

    assert jupyter.password_env == "JUPYTER_TOKEN"
    assert "${JUPYTER_TOKEN}" in jupyter.launch_command
    assert "/home/jovyan/work" in jupyter.volumes
    assert sd.password_env == comfy.password_env == "WEB_PASSWORD"
    assert vllm.env["MODEL"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert "${MODEL}" in vllm.launch_command
    assert vllm.min_compute_cap == 800
    assert {t.min_compute_cap for t in (jupyter, sd, comfy)} == {750}
    assert vllm.secret_env_names == {"HF_TOKEN", "VLLM_API_KEY"}


def test_template_is_frozen_and_compares_cuda_as_versions() -> None:
    template = Template.model_validate(template_data(cuda_version="12.10"))
    with pytest.raises(ValidationError):
        template.name = "other"
    assert template.cuda_tuple == (12, 10)
    assert template.cuda_tuple > (12, 9) > Template.model_validate(template_data()).cuda_tuple
    assert template.runs_on(16) and not template.runs_on(15.9)
    assert template.meets_recommended(24) and not template.meets_recommended(23)


def test_health_port_must_be_one_of_the_ports() -> None:
    assert Template.model_validate(template_data(ports=[7860, 8000])).health_port == 7860
    with pytest.raises(ValidationError, match="9999 is not one of ports"):
        Template.model_validate(template_data(health_port=9999))


# --- custom folders -------------------------------------------------------------------------


def test_custom_templates_follow_builtins_sorted_by_name(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", template_data(slug="zeta", name="Zeta"))
    write(
        tmp_path,
        "a.yml",
        [template_data(slug="beta", name="beta tool"), template_data(slug="alpha", name="Alpha")],
    )
    write(tmp_path, "notes.txt", "not a template")

    catalog = load_catalog(tmp_path)

    assert catalog.slugs == [*BUILTIN_SLUGS, "alpha", "beta", "zeta"]
    assert catalog.source("zeta") == str(tmp_path / "b.yaml")
    assert "alpha" in catalog and catalog.get("nope") is None


def test_custom_template_overrides_builtin_in_place(tmp_path: Path) -> None:
    write(tmp_path, "vllm.yaml", template_data(slug="vllm", name="vLLM (team)", min_vram_gb=24))

    catalog = load_catalog(tmp_path)

    assert catalog.slugs == list(BUILTIN_SLUGS)
    vllm = catalog.get("vllm")
    assert vllm is not None and vllm.name == "vLLM (team)" and vllm.min_vram_gb == 24
    assert catalog.source("vllm") == str(tmp_path / "vllm.yaml")


def test_missing_catalog_dir_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere")
    assert problems == [f"{tmp_path / 'nowhere'}: CATALOG_DIR: folder not found"]


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        (template_data(name=None), "name", "must be a string"),
        ({k: v for k, v in template_data().items() if k != "name"}, "name", "missing"),
        (
            template_data(min_vram_gb=16, recommended_vram_gb=12),
            "recommended_vram_gb",
            "must be at least min_vram_gb (16)",
        ),
        (template_data(tpu=4), "tpu", "unknown key"),
        (
            template_data(cuda_version="12"),
            "cuda_version",
            '"12" is not a CUDA version like "12.1"',
        ),
        (
            template_data(cuda_version="twelve"),
            "cuda_version",
            '"twelve" is not a CUDA version like "12.1"',
        ),
        (template_data(cuda_version=12.1), "cuda_version", "must be a quoted string"),
        (template_data(ports=8000), "ports", "must be a list of port numbers"),
        (template_data(ports=[]), "ports", "must list at least one port"),
        (template_data(ports=[8000, 8000]), "ports", "port 8000 is listed more than once"),
        (template_data(ports=[70000]), "ports[0]", "must be at most 65535"),
        (template_data(slug="Llama 2"), "slug", "lowercase a-z"),
        (template_data(disk_gb=4), "disk_gb", "must be at least 8"),
        (template_data(docs_url="ftp://x.org"), "docs_url", "is not an http:// or https:// URL"),
        (template_data(env={"ENABLE": True}), "env.ENABLE", "must be a string"),
        (template_data(description="two\nlines"), "description", "must be one line"),
        (template_data(health_path="api"), "health_path", 'starting with "/"'),
    ],
)
def test_each_bad_field_is_reported_with_file_field_and_reason(
    tmp_path: Path, content: dict[str, Any], field: str, reason: str
) -> None:
    path = write(tmp_path, "llama.yaml", content)

    problems = problems_of(tmp_path)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {field}: ")
    assert reason in problems[0]


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "slug: x\nname: [unclosed\ncategory: y\n")

    (problem,) = problems_of(tmp_path)

    assert problem.startswith(f"{path}: yaml: invalid YAML at line ")


@pytest.mark.parametrize(
    ("content", "reason"),
    [("", "is empty"), ("just text\n", "got str"), ("[]\n", "empty list")],
)
def test_files_that_are_not_templates(tmp_path: Path, content: str, reason: str) -> None:
    path = write(tmp_path, "odd.yaml", content)
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}: file: ") and reason in problem


def test_duplicate_slug_across_two_custom_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", template_data(slug="vllm"))
    b = write(tmp_path, "b.yaml", template_data(slug="vllm", name="Other"))

    problems = problems_of(tmp_path)

    assert problems == [f'{b}: slug: duplicate slug "vllm" (also in {a})']


def test_all_problems_of_all_files_are_reported_at_once(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", template_data(min_vram_gb=16, recommended_vram_gb=8, gpu=1))
    items = [template_data(slug="ok"), template_data(slug="x", ports="80"), 3]
    b = write(tmp_path, "b.yaml", items)
    write(tmp_path, "c.yaml", template_data(slug="fine"))

    problems = problems_of(tmp_path)

    assert problems == [
        f"{a}: recommended_vram_gb: must be at least min_vram_gb (16)",
        f"{a}: gpu: unknown key",
        f"{b} (item 2): ports: must be a list of port numbers, e.g. [8000]",
        f"{b} (item 3): template: expected a mapping of fields, got int",
    ]
    assert validate_dir(tmp_path) == problems


def test_secret_env_values_never_appear_in_problems(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", template_data(env={"HF_TOKEN": 123456789}))
    (problem,) = problems_of(tmp_path)
    assert "env.HF_TOKEN" in problem and "123456789" not in problem


def test_validate_dir_ok_and_missing(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", template_data())
    assert validate_dir(tmp_path) == []
    assert validate_dir(tmp_path / "missing") == [
        f"{tmp_path / 'missing'}: CATALOG_DIR: folder not found"
    ]


# --- Catalog and CLI ------------------------------------------------------------------------


def test_catalog_rejects_two_templates_with_one_slug() -> None:
    template = Template.model_validate(template_data())
    with pytest.raises(ValueError):
        Catalog([template, template])


def test_format_table_has_a_row_per_template() -> None:
    table = format_table(load_catalog()).splitlines()
    assert table[0].split()[:3] == ["slug", "name", "category"]
    assert len(table) == 5
    assert table[4].split() == ["vllm", "vLLM", "llm-serving", "16", "GB", "24", "GB", "12.1"] + [
        "8000",
        "60",
        "GB",
    ]


def test_cli_list_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "good", "a.yaml", template_data())
    assert main_validate(tmp_path / "good") == 0
    assert capsys.readouterr().out.startswith("OK: 5 templates (1 from ")

    bad = write(tmp_path / "bad", "a.yaml", template_data(tpu=1))
    assert main_validate(tmp_path / "bad") == 1
    assert capsys.readouterr().err == f"{bad}: tpu: unknown key\n"

    assert main_list(tmp_path / "good") == 0
    assert "llama" in capsys.readouterr().out
    assert main_list(tmp_path / "bad") == 1
    assert main(["bogus"]) == 2
