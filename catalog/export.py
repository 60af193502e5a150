"""A template as public JSON: what ``GET /api/templates`` serves (the fields Details shows).

The HTTP paths are public (no Slack signature, no login), so a template is exported with less
than the Details modal shows to a workspace member:

* ``env`` lists names only, ``[{"name": "WEB_USER", "secret": false}, …]``; no value ever
  appears, not even of a variable outside ``secret_env``, since a team may put a token in a
  plain value without listing it there. ``secret`` is true for ``secret_env`` and
  ``password_env`` (the per-deployment password the bot generates), as Details marks them.
* ``launch_command`` has every literal occurrence of any env value (of at least
  :data:`MIN_REDACTED_LENGTH` characters) replaced by ``${NAME}``: a token kept under a plain
  name (``WANDB_KEY``) must not leak through the command either.
* ``docs_url`` is cut to ``scheme://host[:port]/path``: no ``user:password@``, no query, no
  fragment (:func:`public_url`). A token can sit under any query name (``?tok=…``) and in a
  fragment (``#access_token=…``, as OAuth's implicit flow returns it), so none is kept.
* ``source`` says ``"builtin"`` or ``"custom"`` (a ``CATALOG_DIR`` file), never the file's path
  on the server.
* What only the bot uses (``health_path``, ``health_port``) is left out.

Field names carry their units (``min_vram_gb``, ``disk_gb``, ``default_lifetime_hours``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from catalog.loader import BUILTIN_SOURCE, Catalog
from catalog.models import Template

#: Literal values shorter than this are not searched for in ``launch_command`` (replacing a
#: one- or two-character value would rewrite unrelated text and hide nothing).
MIN_REDACTED_LENGTH = 3


def _redacted_command(template: Template) -> str | None:
    command = template.launch_command.strip()
    if not command:
        return None
    secrets = [
        (name, value) for name, value in template.env.items() if len(value) >= MIN_REDACTED_LENGTH
    ]
    # Longest first, so a value that contains another is replaced whole.
    for name, value in sorted(secrets, key=lambda item: -len(item[1])):
        command = command.replace(value, "${" + name + "}")
    return command


def public_url(url: str) -> str:
    """``url`` as the public catalog shows it: ``scheme://host[:port]/path``, without the
    user information (``user:password@``), the query and the fragment, any of which may hold a
    credential (RFC 3986 §3: ``scheme://userinfo@host:port/path?query#fragment``). E.g.
    ``https://u:p@wiki.example.com/llm?tok=x#access_token=y`` → ``https://wiki.example.com/llm``.
    Raises nothing for a URL the catalog validated (``Template.docs_url`` is http(s) with a host).
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def export_template(catalog: Catalog, slug: str) -> dict[str, object] | None:
    """The public JSON object of the template ``slug`` in ``catalog``, or None when there is none.

    Shape (units in the names; built from :class:`catalog.models.Template`)::

        {"slug": "jupyter-lab", "name": "JupyterLab", "description": "…",
         "category": "notebook", "source": "builtin" | "custom",
         "docker_image": "quay.io/…", "ports": [8888], "volumes": ["/home/jovyan/work"],
         "launch_command": "start-notebook.py …" | null (null: the image's own entrypoint),
         "env": [{"name": "JUPYTER_TOKEN", "secret": true}],   # names only, sorted
         "min_vram_gb": 4, "recommended_vram_gb": 8, "cuda_version": "11.8",
         "min_compute_cap": 750, "disk_gb": 20, "max_disk_gb": 500,
         "default_lifetime_hours": null | 1..720, "docs_url": "https://…"}

    ``cuda_version`` is the lowest CUDA version the image needs; ``min_compute_cap`` is the
    GPU's compute capability floor ×100 (750 = Turing); VRAM is per GPU. No env value, no
    secret and no server path appears (see the module's notes). Raises nothing.
    """
    template = catalog.get(slug)
    if template is None:
        return None
    shown_secret = template.secret_env_names
    return {
        "slug": template.slug,
        "name": template.name,
        "description": template.description,
        "category": template.category,
        "source": "builtin" if catalog.source(slug) == BUILTIN_SOURCE else "custom",
        "docker_image": template.docker_image,
        "ports": list(template.ports),
        "volumes": list(template.volumes),
        "launch_command": _redacted_command(template),
        "env": [
            {"name": name, "secret": name in shown_secret}
            for name in sorted(set(template.env) | shown_secret)
        ],
        "min_vram_gb": template.min_vram_gb,
        "recommended_vram_gb": template.recommended_vram_gb,
        "cuda_version": template.cuda_version,
        "min_compute_cap": template.min_compute_cap,
        "disk_gb": template.disk_gb,
        "max_disk_gb": template.max_disk_gb,
        "default_lifetime_hours": template.default_lifetime_hours,
        "docs_url": public_url(template.docs_url),
    }
