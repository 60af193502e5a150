"""Texts the status poller posts besides the status message (pure).

* In the status message's thread, mentioning the requester: ready, failed, gone, stopped
  outside the bot. These never carry a secret.
* By DM to one person only, the **ready DM** (:func:`secrets_dm`): how to get in, and the
  secrets needed to log in (the password/token the deploy service generated for the template's
  ``password_env``, or Vast.ai's ``jupyter_token`` for an image that uses Vast's own Jupyter).

The way in it gives first is SSH with the person's own key: the exact command for the
instance's mapped SSH port (``ssh -p <host port of 22/tcp> root@<public ip>``), or Vast.ai's SSH
proxy (``ssh -p <ssh_port> root@<ssh_host>``) when the host has no direct port; and for each web
port of the template an SSH local port-forward, ``ssh -p <port> root@<ip> -L 8888:localhost:8888``
then ``http://localhost:8888``, so the app's password never crosses the internet in clear text
(the form docs.vast.ai gives, guides/instances/connect/ssh, "SSH Local Port Forwarding"; dstack's
``attach`` forwards the same way). A direct ``http://`` link is kept, labelled as unencrypted
HTTP; a template that declares ``tls: vast-base-image`` gets an ``https://`` link instead
(:data:`catalog.models.TLS_VAST_BASE_IMAGE`, docs/CONNECTING.md).

An IPv6 address goes into the SSH command as it is, without brackets: OpenSSH reads
``root@2001:db8::1`` with ``-p`` as that address, while ``root@[2001:db8::1]`` is looked up as a
host name and fails ("Could not resolve hostname"). URLs bracket it (RFC 3986 §3.2.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.addresses import host_or_none, http_url, ip_or_none, port_or_none
from bot.formats import mrkdwn_escape
from bot.slack.blocks.common import MAX_SECTION_TEXT, message_payload, truncate
from bot.slack.blocks.sshkeys import ACTION_OPEN
from catalog import Template
from storage import DeploymentRecord

__all__ = [
    "ACTION_SSH_KEY_OPEN",
    "MAX_FORWARDS",
    "VAST_ROOT_CERT_URL",
    "SshEndpoint",
    "WebWay",
    "failed_text",
    "gone_text",
    "has_ready_dm",
    "has_secret",
    "local_port",
    "ready_text",
    "secrets_dm",
    "short_gpu",
    "ssh_endpoint",
    "stopped_outside_text",
    "web_ways",
]

#: ``action_id`` of **Add an SSH key** in the ready DM of a person with no SSH key on file; its
#: value is the deployment id. ``bot.slack.listeners.sshkeys`` opens the key modal for it.
ACTION_SSH_KEY_OPEN = ACTION_OPEN
#: Web ports given a port-forward each in the ready DM (one section each); the rest are named.
MAX_FORWARDS = 10
#: Vast.ai's root certificate, which its instances' TLS certificates chain to
#: (docs.vast.ai/guides/instances/connect/jupyter, "Installing the TLS certificate").
VAST_ROOT_CERT_URL = "https://console.vast.ai/static/jvastai_root.cer"
#: A forward of a container port below this listens locally on :data:`LOW_PORT_OFFSET` more
#: (ports below 1024 need root to listen on: RFC 6335 §6 "System Ports", enforced by Linux).
FIRST_UNPRIVILEGED_PORT = 1024
LOW_PORT_OFFSET = 10000


def short_gpu(dep: DeploymentRecord) -> str:
    """``1× RTX 4090``, the GPU's name (Vast.ai's text) escaped for mrkdwn."""
    return f"{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 100))}"


def _what(dep: DeploymentRecord) -> str:
    return f"your {mrkdwn_escape(dep.template_name)} on {short_gpu(dep)}"


def _port_map(dep: DeploymentRecord) -> dict[int, int]:
    """The stored port map; ``{}`` when the stored JSON is damaged (nothing to link to)."""
    try:
        return dep.port_map
    except (ValueError, TypeError):
        return {}


# -- ways in (pure, no secret) ----------------------------------------------------------------


@dataclass(frozen=True)
class SshEndpoint:
    """Where SSH reaches an instance: ``host`` (an IP address, IPv6 without brackets, or the
    proxy's host name such as ``ssh5.vast.ai``), TCP ``port``, and whether it is Vast.ai's SSH
    ``proxy`` (no direct port 22 on the host) rather than the instance's own mapped port."""

    host: str
    port: int
    proxy: bool

    def command(self) -> str:
        """``ssh -p 41022 root@203.0.113.42``."""
        return f"ssh -p {self.port} root@{self.host}"

    def forward(self, local: int, remote: int) -> str:
        """``ssh -p 41022 root@203.0.113.42 -L 8888:localhost:8888``: local port ``local``
        reaches ``remote`` on the instance's own loopback, through the SSH connection."""
        return f"{self.command()} -L {local}:localhost:{remote}"


@dataclass(frozen=True)
class WebWay:
    """The ways to one web port of a template.

    ``port``: the container port. ``forward``: the SSH command that forwards it (None without
    SSH); ``local_url``: what to open while it runs, ``http://localhost:<local>/``
    (``https://`` for a TLS template, whose port answers only TLS). ``direct_url``: the port as
    the host publishes it, ``http://IP:HOSTPORT/`` or ``https://`` when ``https`` (None when
    not mapped)."""

    port: int
    forward: str | None
    local_url: str | None
    direct_url: str | None
    https: bool


def ssh_runs(template: Template | None) -> bool:
    """False when the template starts the image's own command (no ``launch_command``): the
    bot rents it with Vast.ai's ``args`` launch mode, which injects no SSH server
    (docs.vast.ai/api-reference/creating-instances-with-api, "Runtype and Connection
    Options"). True otherwise, and for an unknown template (the row's data decides)."""
    return template is None or bool(template.launch_command.strip())


def ssh_endpoint(dep: DeploymentRecord, template: Template | None) -> SshEndpoint | None:
    """Direct SSH when the instance's port 22 is mapped (the host port Vast.ai gave ``22/tcp``,
    stored in ``ports_json``, on ``public_ip``), else Vast.ai's SSH proxy (``ssh_host`` and
    ``ssh_port``), else None: also when a stored value is not a usable address or port
    (:mod:`bot.addresses`), or when ``template`` runs no SSH (:func:`ssh_runs`)."""
    if not ssh_runs(template):
        return None
    ip, direct = ip_or_none(dep.public_ip), port_or_none(_port_map(dep).get(22))
    if ip is not None and direct is not None:
        return SshEndpoint(ip, direct, proxy=False)
    host, port = host_or_none(dep.ssh_host), port_or_none(dep.ssh_port)
    if host is not None and port is not None:
        return SshEndpoint(host, port, proxy=True)
    return None


def local_port(container_port: int) -> int:
    """The local port a forward of ``container_port`` listens on: the same number, or
    :data:`LOW_PORT_OFFSET` more for a port below 1024 (which only root may listen on):
    ``8888`` → ``8888``, ``80`` → ``10080``."""
    if container_port < FIRST_UNPRIVILEGED_PORT:
        return container_port + LOW_PORT_OFFSET
    return container_port


def web_ways(dep: DeploymentRecord, template: Template | None) -> list[WebWay]:
    """One :class:`WebWay` per port of ``template`` (in its order; none without a template or
    SSH port 22 itself). A port gets a forward whenever SSH reaches the instance, mapped
    directly or not; a direct URL only when the host maps it on a usable address."""
    if template is None:
        return []
    ssh = ssh_endpoint(dep, template)
    ports = _port_map(dep)
    address = ip_or_none(dep.public_ip)
    scheme = "https" if template.https else "http"
    ways = []
    for port in template.ports:
        if port == 22:
            continue
        local = local_port(port)
        direct = http_url(address, ports[port], scheme=scheme) if port in ports else None
        ways.append(
            WebWay(
                port=port,
                forward=ssh.forward(local, port) if ssh is not None else None,
                local_url=f"{scheme}://localhost:{local}/" if ssh is not None else None,
                direct_url=direct,
                https=template.https,
            )
        )
    return ways


def has_secret(dep: DeploymentRecord, template: Template | None, jupyter_token: str | None) -> bool:
    """True when :func:`secrets_dm` has a login to send for ``dep`` (a stored web password,
    even one that cannot be decrypted: the DM then says so)."""
    if dep.web_password:
        return True
    return bool(jupyter_token) and (template is None or template.password_env is None)


def has_ready_dm(
    dep: DeploymentRecord, template: Template | None, jupyter_token: str | None
) -> bool:
    """True when :func:`secrets_dm` has something only a DM should carry: a login
    (:func:`has_secret`) or an SSH way in (:func:`ssh_endpoint`). A deployment with neither
    (no password, no SSH) gets its public link in the thread only."""
    return has_secret(dep, template, jupyter_token) or ssh_endpoint(dep, template) is not None


def ready_text(
    dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None = None
) -> str:
    """Thread reply: ``<@U…> your JupyterLab on 1× RTX 4090 is ready: <url> (unencrypted
    HTTP)`` plus a pointer to the DM when there is one (:func:`has_ready_dm`). No secret is
    included."""
    links = []
    for way in web_ways(dep, template):
        if way.direct_url is not None:
            label = "" if way.https else " (unencrypted HTTP)"
            links.append(
                f"<{mrkdwn_escape(way.direct_url)}|{mrkdwn_escape(way.direct_url)}>{label}"
            )
    text = f"<@{dep.user_id}> {_what(dep)} is ready"
    text += f": {' · '.join(links)}" if links else "."
    parts = []
    if ssh_endpoint(dep, template) is not None:
        parts.append("the SSH commands")
    if has_secret(dep, template, jupyter_token):
        parts.append("the login details")
    if parts:
        text += f"\nI sent you {' and '.join(parts)} by DM."
    return truncate(text, MAX_SECTION_TEXT)


# -- the ready DM --------------------------------------------------------------------------


def _secret_label(env_name: str) -> str:
    upper = env_name.upper()
    if "TOKEN" in upper:
        return "Token"
    if "KEY" in upper:
        return "API key"
    return "Password"


def _code_block(command: str) -> str:
    """``command`` as a mrkdwn code block (escaped; Slack shows ``&lt;`` as ``<`` there too)."""
    return f"```{mrkdwn_escape(command)}```"


def _link(url: str, label: str | None = None) -> str:
    return f"<{mrkdwn_escape(url)}|{mrkdwn_escape(label or url)}>"


def _login_path(template: Template | None, port: int, password: str | None) -> str:
    """The path with the login to append to the localhost URL of ``port``, or ``""``: Jupyter's
    ``lab?token=<token>`` (Jupyter Server reads a ``token`` query parameter:
    jupyter-server.readthedocs.io, "Security in the Jupyter Server") on the template's first
    port when its ``password_env`` is ``JUPYTER_TOKEN``."""
    if template is None or not password or template.password_env is None:
        return ""
    if template.password_env.upper() != "JUPYTER_TOKEN" or port != template.ports[0]:
        return ""
    return f"lab?token={quote(password, safe='')}"


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT)))


def _secret_lines(
    dep: DeploymentRecord,
    template: Template | None,
    jupyter_token: str | None,
    unreadable: str | None,
) -> list[str]:
    lines: list[str] = []
    env_name = (template.password_env if template else None) or "WEB_PASSWORD"
    if unreadable is not None:
        lines.append(f"• {_secret_label(env_name)} (`{env_name}`): {unreadable}")
    elif dep.web_password:
        label = _secret_label(env_name)
        lines.append(f"• {label} (`{env_name}`): `{mrkdwn_escape(dep.web_password)}`")
        env = template.env if template is not None else {}
        user = env.get("WEB_USER") or env.get("WEB_USERNAME")
        if user is None and template is not None and template.https and env_name == "WEB_PASSWORD":
            user = "vastai"  # Vast.ai's base image: WEB_USERNAME defaults to vastai (its README)
        if user is not None:
            lines.append(f"• User: `{mrkdwn_escape(user)}`")
        if label == "API key":
            lines.append("• Send it as `Authorization: Bearer …` with each request.")
    elif jupyter_token:
        lines.append(f"• Vast.ai Jupyter token: `{mrkdwn_escape(jupyter_token)}`")
    return lines


def _ssh_section(ssh: SshEndpoint) -> str:
    how = (
        "through Vast.ai's SSH proxy (this host has no direct SSH port)"
        if ssh.proxy
        else "straight to the instance"
    )
    return f"*Get in with SSH* ({how}, encrypted):\n{_code_block(ssh.command())}"


def _forward_section(name: str, way: WebWay, login: str) -> str:
    assert way.forward is not None and way.local_url is not None
    shown = way.local_url + (login.split("?", 1)[0] if login else "")
    url = way.local_url + login
    text = (
        f"*{name}, port {way.port}, through SSH* (keeps the login off the open internet): "
        f"run\n{_code_block(way.forward)}\nkeep it open, then open {_link(url, shown)}"
    )
    if way.https:
        text += " (the app answers HTTPS only; your browser may warn about the certificate)"
    return text


def _direct_section(ways: Sequence[WebWay], secret: str | None) -> str | None:
    """The direct links: plain ones labelled as unencrypted HTTP (``secret``, e.g. "token",
    named as what crosses the internet in clear text), HTTPS ones with the certificate note."""
    plain = [w.direct_url for w in ways if w.direct_url is not None and not w.https]
    tls = [w.direct_url for w in ways if w.direct_url is not None and w.https]
    lines = []
    if plain:
        lines.append(
            ":warning: *Direct link, unencrypted HTTP*: "
            + " · ".join(_link(u) for u in plain)
            + f". Whatever you type there{f', the {secret} included,' if secret else ''} "
            "crosses the internet in clear text: prefer the SSH command above."
        )
    if tls:
        lines.append(
            ":lock: *Direct link over HTTPS*: "
            + " · ".join(_link(u) for u in tls)
            + ". The certificate is Vast.ai's own, not a public one: your browser warns unless "
            f"you installed {_link(VAST_ROOT_CERT_URL, 'Vast.ai’s root certificate')}, and "
            "if it warns on a network you do not trust, use the SSH command instead."
        )
    return "\n".join(lines) if lines else None


def secrets_dm(
    dep: DeploymentRecord,
    template: Template | None,
    *,
    has_ssh_key: bool,
    jupyter_token: str | None = None,
    unreadable: str | None = None,
    keys_on_instance: bool = True,
) -> dict[str, Any] | None:
    """The ready DM (``{"text", "blocks"}``) for one person: how to get in and the login, or
    None when there is nothing to send (:func:`has_ready_dm` is false and nothing is
    unreadable). The same builder serves the owner, a teammate it is shared with and **Send me
    the login**.

    Args:
        dep: the deployment; ``dep.web_password`` must be the password in plain text (the
            caller decrypts it).
        template: its template (None when it left the catalog: SSH is then given from the row).
        has_ssh_key: whether the recipient has an SSH key on file in this workspace. When not,
            the DM says the SSH commands need one and carries **Add an SSH key**
            (:data:`ACTION_SSH_KEY_OPEN`, value ``str(dep.id)``); the key is attached to this
            instance when they add it.
        jupyter_token: the instance's (from Vast.ai's instance data), shown only when the
            template brings no password of its own.
        unreadable: the sentence shown instead of the password when it could not be decrypted
            (``dep.web_password`` is then ignored, never shown).
        keys_on_instance: False for a recipient whose keys the bot does not put on this
            instance (a bot admin who is neither its owner nor a teammate it is shared with):
            the DM says so and names the owner who can **Share** it, instead of offering a key.

    Everything from the template or Vast.ai is escaped for mrkdwn; commands are in code
    blocks; each section is cut to Slack's 3000 characters; at most :data:`MAX_FORWARDS` web
    ports get a forward each (the others are named). Raises nothing."""
    if not has_ready_dm(dep, template, jupyter_token) and unreadable is None:
        return None
    name = mrkdwn_escape(dep.template_name)
    lines = [f"*{name}* on {short_gpu(dep)} (deployment #{dep.id}) is ready."]
    lines += _secret_lines(dep, template, jupyter_token, unreadable)
    blocks: list[Block] = [_section("\n".join(lines))]
    ssh = ssh_endpoint(dep, template)
    ways = web_ways(dep, template)
    password = dep.web_password if unreadable is None else None
    if ssh is not None:
        blocks.append(_section(_ssh_section(ssh)))
        forwarded = [w for w in ways if w.forward is not None]
        for way in forwarded[:MAX_FORWARDS]:
            login = _login_path(template, way.port, password)
            blocks.append(_section(_forward_section(name, way, login)))
        rest = [str(w.port) for w in forwarded[MAX_FORWARDS:]]
        if rest:
            blocks.append(
                _section(f"Ports {', '.join(rest)}: forward them the same way (`-L` again).")
            )
        if not keys_on_instance:
            blocks.append(
                _section(
                    ":key: *Your SSH keys are not on this instance*: the bot puts there only "
                    f"the keys of its owner, <@{dep.user_id}>, and of the teammates it is "
                    "shared with. Ask the owner to **Share** it with you, or use the login "
                    "below."
                )
            )
        elif not has_ssh_key:
            blocks.append(
                SectionBlock(
                    text=MarkdownTextObject(
                        text=":key: *You have no SSH key on file*, and the SSH commands above "
                        "need one. Add your public key: it is attached to this instance when "
                        "you add it."
                    ),
                    accessory=ButtonElement(
                        text="Add an SSH key", action_id=ACTION_SSH_KEY_OPEN, value=str(dep.id)
                    ),
                )
            )
    elif template is not None and not ssh_runs(template):
        blocks.append(
            _section(
                "This template starts the image's own command (Vast.ai's `args` launch mode), "
                "which runs no SSH server: the link below is the only way in."
            )
        )
    secret = None
    if dep.web_password or unreadable is not None:
        env_name = (template.password_env if template else None) or "WEB_PASSWORD"
        secret = _secret_label(env_name).lower().replace("api", "API")
    elif has_secret(dep, template, jupyter_token):
        secret = "token"
    direct = _direct_section(ways, secret)
    if direct is not None:
        blocks.append(_section(direct))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Only you got this message. Share the secret only with people you trust."
                )
            ]
        )
    )
    text = f"How to get into your {name} (deployment #{dep.id})"
    return message_payload(blocks, text)


def failed_text(dep: DeploymentRecord) -> str:
    """Thread reply when a deployment failed: the reason (what happened, what to do)."""
    reason = dep.reason or "Something went wrong on Vast.ai."
    return truncate(f"<@{dep.user_id}> {_what(dep)} failed. {reason}", 3000)


def gone_text(dep: DeploymentRecord) -> str:
    """Thread reply when the instance disappeared from Vast.ai."""
    reason = dep.reason or "The instance is gone from Vast.ai."
    return truncate(f"<@{dep.user_id}> {_what(dep)} is gone. {reason}", 3000)


def stopped_outside_text(dep: DeploymentRecord) -> str:
    """Thread reply when Vast.ai reports a ready instance stopped without the bot asking
    (out of credit, outbid, or stopped in the Vast.ai console)."""
    return (
        f"<@{dep.user_id}> {_what(dep)} was stopped on Vast.ai (out of credit, outbid, or "
        "stopped in the Vast.ai console). Disk storage still bills: start it again or destroy "
        "it with the buttons above."
    )


#: At most this many instance ids are named in :func:`labelled_on_empty_database_text`.
LISTED_INSTANCES = 20


def labelled_on_empty_database_text(instance_ids: Sequence[int]) -> str:
    """DM to each bot admin when the bot started on a database without deployments and found
    instances its label names on the Vast.ai account (``instance_ids``, ascending; at most
    :data:`LISTED_INSTANCES` are named): what it means and what to do. No secret."""
    shown = ", ".join(str(i) for i in instance_ids[:LISTED_INSTANCES])
    more = len(instance_ids) - LISTED_INSTANCES
    if more > 0:
        shown += f" and {more} more"
    return (
        f":warning: The bot started with an empty database, but the Vast.ai account holds "
        f"{len(instance_ids)} instance(s) labelled by this bot: {shown}. They belong to another "
        "installation of the bot sharing this account, or to this one before its database was "
        "lost. The bot leaves them alone (it never destroys them) and lists them as unmanaged; "
        "they may still be billing. Check them in the Vast.ai console and destroy the ones "
        "nobody uses."
    )


def labelled_without_row_text(instance_ids: Sequence[int]) -> str:
    """DM to each bot admin when the bot found instances labelled by this installation for
    deployments its database does not hold (``instance_ids``, ascending; at most
    :data:`LISTED_INSTANCES` are named), e.g. after the database was restored from a backup
    older than them: what it means and what to do. No secret."""
    shown = ", ".join(str(i) for i in instance_ids[:LISTED_INSTANCES])
    more = len(instance_ids) - LISTED_INSTANCES
    if more > 0:
        shown += f" and {more} more"
    return (
        f":warning: The Vast.ai account holds {len(instance_ids)} instance(s) labelled by this "
        f"bot for deployments its database does not know: {shown}. This happens when the "
        "database was restored from a backup taken before they were rented. The bot leaves "
        "them alone (it never destroys them: they may hold someone's work) and lists them as "
        "unmanaged; they may still be billing. Check them in the Vast.ai console, tell their "
        "owners, and destroy the ones nobody uses."
    )
