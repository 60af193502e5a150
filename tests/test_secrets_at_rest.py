"""Secrets at rest: several ENCRYPTION_KEY keys (the first encrypts, each decrypts), web
passwords and Slack tokens encrypted in the database (the raw rows hold none), what an older
version stored in plain text encrypted at start-up, and ``python -m bot rotate-key``
(re-encrypts everything with the first key, in batches, idempotent, safe to interrupt).

Database tests run on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import Engine, text

import storage
from bot.__main__ import main
from bot.crypto import (
    CANARY_STATE,
    UNREADABLE_PASSWORD,
    EncryptionKeyError,
    SecretBox,
    derived_key,
    looks_sealed,
    password_box,
)
from bot.playground.slack_api import CLIENT_ID, FakeSlack
from bot.rekey import rotate_all, seal_plaintext
from bot.services.deploy import UNREADABLE_PASSWORD_REASON
from bot.slack.token_store import SealedInstallationStore
from storage import SessionFactory
from tests.fixtures.oauth import ADMIN_A, TEAM_A, TOKEN_A, OAuthBotFactory
from tests.fixtures.slack import ALICE, BOT_TOKEN, SIGNING_SECRET, BotFactory, BotHarness
from tests.test_deploy import creates, pick_offer, settled, submitted_view, wait_until
from tests.test_poller import PASSWORD, _offer, deploy, dms, insert_row, poller_of, to_ready

KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()
VAST_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789a1b2"
#: Shaped as Slack's rotating tokens, long enough that a Fernet token of one exceeds 200
#: characters (slack_sdk's VARCHAR(200): PostgreSQL refuses longer values).
ROTATING_TOKEN = "xoxe.xoxb-1-" + "MS0yLTIyMzQ1Njc4OTAxMi0" * 6
REFRESH_TOKEN = "xoxe-1-" + "My0xLTIyMzQ1Njc4OTAxMi0" * 6
USER_TOKEN = "xoxp-2-user-token-secret-0001"
WEBHOOK = "https://hooks.slack.com/services/T0AAAAAAA/B0HOOK001/webhook-secret-path-0001"


def raw_rows(engine: Engine, *tables: str) -> str:
    """Every row of ``tables`` as the database holds it, as one string."""
    with engine.connect() as conn:
        return json.dumps(
            [[list(row) for row in conn.execute(text(f"SELECT * FROM {t}"))] for t in tables],
            default=str,
        )


# -- several keys ----------------------------------------------------------------------------


def test_the_first_key_encrypts_and_each_decrypts() -> None:
    both = SecretBox(f" {KEY_NEW} , {KEY_OLD},")
    assert both.key_count == 2 and KEY_NEW not in repr(both) and KEY_OLD not in repr(both)
    old_token = SecretBox(KEY_OLD).encrypt(VAST_KEY)
    assert both.decrypt(old_token) == VAST_KEY
    new_token = both.encrypt(VAST_KEY)
    assert SecretBox(KEY_NEW).decrypt(new_token) == VAST_KEY
    with pytest.raises(EncryptionKeyError):
        SecretBox(KEY_OLD).decrypt(new_token)
    assert both.is_current(new_token) and not both.is_current(old_token)
    rotated = both.reseal(old_token)
    assert rotated is not None and SecretBox(KEY_NEW).decrypt(rotated) == VAST_KEY
    assert both.reseal(new_token) is None  # already under the first key
    sealed = both.reseal("plain-text-from-before")
    assert sealed is not None and SecretBox(KEY_NEW).decrypt(sealed) == "plain-text-from-before"
    with pytest.raises(EncryptionKeyError):
        both.reseal(SecretBox(Fernet.generate_key().decode()).encrypt("x"))


def test_a_bad_key_in_the_list_is_named_by_position_never_echoed() -> None:
    bad = "not-a-fernet-key-but-a-secret-anyway"
    with pytest.raises(EncryptionKeyError) as refused:
        SecretBox(f"{KEY_NEW},{bad}")
    text_ = str(refused.value)
    assert "position 2 of its 2" in text_ and bad not in text_ and KEY_NEW not in text_
    assert "\n" not in text_


def test_the_canary_passes_with_any_listed_key_and_says_whether_to_rotate(
    session_factory: SessionFactory,
) -> None:
    sf = session_factory
    assert SecretBox(KEY_OLD).verify(sf) is True  # writes the canary under the old key
    assert SecretBox(f"{KEY_NEW},{KEY_OLD}").verify(sf) is False  # readable, not current
    assert SecretBox(f"{KEY_OLD},{KEY_NEW}").verify(sf) is True
    with pytest.raises(EncryptionKeyError):
        SecretBox(KEY_NEW).verify(sf)


def test_another_key_is_refused_as_losing_slack_tokens_too(
    engine: Engine, session_factory: SessionFactory
) -> None:
    """OAuth installs without a Vast.ai key: a new key would lose their Slack tokens, so the
    refusal does not say "nothing is lost"."""
    SecretBox(KEY_OLD).verify(session_factory)
    inner = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
    SealedInstallationStore(inner, SecretBox(KEY_OLD)).save(_installation())
    with pytest.raises(EncryptionKeyError) as refused:
        SecretBox(KEY_NEW).verify(session_factory)
    assert "0 workspace Vast.ai keys, 1 Slack bot token;" in str(refused.value)
    assert "nothing is lost" not in str(refused.value)


def test_stored_tokens_never_look_like_plain_secrets_and_back() -> None:
    box = SecretBox(KEY_NEW)
    for secret in ("a" * 32, BOT_TOKEN, ROTATING_TOKEN, REFRESH_TOKEN, WEBHOOK, VAST_KEY, ""):
        assert not looks_sealed(secret)
        assert looks_sealed(box.encrypt(secret))
        assert box.open(secret) == secret  # plain text from before encryption: as it is
        assert box.open(box.encrypt(secret)) == secret


def test_the_password_key_without_encryption_key_comes_from_the_signing_secret() -> None:
    assert derived_key(SIGNING_SECRET) == derived_key(SIGNING_SECRET)
    assert derived_key(SIGNING_SECRET) != derived_key(SIGNING_SECRET + "x")
    assert SIGNING_SECRET not in derived_key(SIGNING_SECRET)
    signing = password_box(None, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN)
    token = signing.encrypt(PASSWORD)
    assert SecretBox(derived_key(SIGNING_SECRET)).decrypt(token) == PASSWORD
    # Socket Mode without a signing secret: the bot token's key; it still decrypts once the
    # signing secret is set, and once ENCRYPTION_KEY is (which then encrypts).
    socket = password_box(None, signing_secret=None, bot_token=BOT_TOKEN)
    older = socket.encrypt(PASSWORD)
    with_key = password_box(KEY_NEW, signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN)
    assert signing.decrypt(older) == with_key.decrypt(older) == with_key.decrypt(token)
    assert SecretBox(KEY_NEW).decrypt(with_key.encrypt(PASSWORD)) == PASSWORD
    with pytest.raises(EncryptionKeyError):
        password_box(None, signing_secret=None, bot_token=None)


# -- Slack tokens: the wrapping installation store ------------------------------------------


def _installation(**changes: Any) -> Installation:
    values: dict[str, Any] = {
        "app_id": "A0APP0001",
        "team_id": "T0AAAAAAA",
        "team_name": "Acme",
        "bot_token": ROTATING_TOKEN,
        "bot_id": "B0ACME001",
        "bot_user_id": "U0BOTACME",
        "bot_scopes": "commands,chat:write",
        "bot_refresh_token": REFRESH_TOKEN,
        "bot_token_expires_in": 43200,
        "user_id": "U0ADMIN01",
        "user_token": USER_TOKEN,
        "user_refresh_token": REFRESH_TOKEN + "-user",
        "incoming_webhook_url": WEBHOOK,
        "token_type": "bot",
    }
    values.update(changes)
    return Installation(**values)


SLACK_SECRETS = (ROTATING_TOKEN, REFRESH_TOKEN, USER_TOKEN, WEBHOOK)


def test_the_sealed_store_keeps_slack_sdks_contract_and_the_rows_hold_no_token(
    engine: Engine,
) -> None:
    inner = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
    store = SealedInstallationStore(inner, SecretBox(KEY_NEW))
    given = _installation()
    store.save(given)
    assert given.bot_token == ROTATING_TOKEN and given.incoming_webhook_url == WEBHOOK  # as given

    raw = raw_rows(engine, "slack_installations", "slack_bots")
    for secret in SLACK_SECRETS:
        assert secret not in raw
    found = store.find_installation(enterprise_id=None, team_id="T0AAAAAAA")
    assert found is not None
    assert (found.bot_token, found.bot_refresh_token, found.user_token) == (
        ROTATING_TOKEN,
        REFRESH_TOKEN,
        USER_TOKEN,
    )
    assert (found.user_refresh_token, found.incoming_webhook_url) == (
        REFRESH_TOKEN + "-user",
        WEBHOOK,
    )
    assert found.bot_scopes == ["commands", "chat:write"] and found.team_name == "Acme"
    # With a user id, slack_sdk merges the latest bot's fields: still the plain token.
    by_user = store.find_installation(enterprise_id=None, team_id="T0AAAAAAA", user_id="U0ADMIN01")
    assert by_user is not None and by_user.bot_token == ROTATING_TOKEN

    # Token rotation saves the bot (Bolt's authorize, WorkspaceClients): encrypted too.
    bot = store.find_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert bot is not None and bot.bot_token == ROTATING_TOKEN
    rotated = Bot(**bot.to_dict_for_copying())
    rotated.bot_token, rotated.bot_refresh_token = ROTATING_TOKEN + "2", REFRESH_TOKEN + "2"
    store.save_bot(rotated)
    assert rotated.bot_token == ROTATING_TOKEN + "2"
    again = store.find_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert again is not None
    assert (again.bot_token, again.bot_refresh_token) == (ROTATING_TOKEN + "2", REFRESH_TOKEN + "2")
    assert ROTATING_TOKEN not in raw_rows(engine, "slack_installations", "slack_bots")

    store.delete_all(enterprise_id=None, team_id="T0AAAAAAA")
    assert store.find_installation(enterprise_id=None, team_id="T0AAAAAAA") is None
    assert store.find_bot(enterprise_id=None, team_id="T0AAAAAAA") is None


def test_plain_tokens_of_an_earlier_version_are_read_then_encrypted_at_start_up(
    engine: Engine, session_factory: SessionFactory
) -> None:
    inner = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
    inner.save(_installation())  # as slack_sdk's own store wrote it before
    assert ROTATING_TOKEN in raw_rows(engine, "slack_installations", "slack_bots")
    box = SecretBox(KEY_NEW)
    store = SealedInstallationStore(inner, box)
    found = store.find_installation(enterprise_id=None, team_id="T0AAAAAAA")
    assert found is not None and found.bot_token == ROTATING_TOKEN

    passwords = password_box(KEY_NEW, signing_secret=SIGNING_SECRET, bot_token=None)
    assert seal_plaintext(session_factory, box, passwords) == 7  # 5 installation + 2 bot values
    raw = raw_rows(engine, "slack_installations", "slack_bots")
    for secret in SLACK_SECRETS:
        assert secret not in raw
    found = store.find_installation(enterprise_id=None, team_id="T0AAAAAAA")
    assert found is not None and found.bot_token == ROTATING_TOKEN
    assert found.incoming_webhook_url == WEBHOOK
    assert seal_plaintext(session_factory, box, passwords) == 0  # nothing left


def test_a_token_no_key_decrypts_is_absent_and_logged_without_secrets(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    inner = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
    SealedInstallationStore(inner, SecretBox(KEY_OLD)).save(_installation())
    store = SealedInstallationStore(inner, SecretBox(KEY_NEW))
    with caplog.at_level(logging.ERROR, logger="bot.slack.token_store"):
        bot = store.find_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert bot is not None and bot.bot_token is None and bot.bot_refresh_token is None
    logged = caplog.text
    assert "does not decrypt" in logged and "T0AAAAAAA" in logged
    assert "gAAAAA" not in logged and ROTATING_TOKEN not in logged


def test_an_oauth_install_leaves_no_token_in_the_database(
    oauth_bot_factory: OAuthBotFactory,
) -> None:
    ob = oauth_bot_factory()
    ob.slack.token_expires_in = 60  # rotating tokens: every use rotates first
    assert ob.install(TEAM_A, refresh=True).callback.status_code == 200
    assert ob.team(TEAM_A).command("setup", user=ADMIN_A).status_code == 200
    ob.slack.wait_for("views.open")  # Bolt's authorize found (and rotated) the token
    issued = [TOKEN_A]
    for call in ob.slack.calls_to("oauth.v2.access"):
        answer = call.answer or {}
        issued += [str(answer[k]) for k in ("access_token", "refresh_token") if answer.get(k)]
    assert len(issued) >= 5  # the install's token and refresh token, and rotated ones
    engine = ob.harness.runtime.engine
    raw = raw_rows(engine, "slack_installations", "slack_bots")
    leaked = [t for t in issued if t in raw]
    assert leaked == []
    store = ob.harness.runtime.app.installation_store
    assert store is not None
    found = store.find_installation(enterprise_id=None, team_id=TEAM_A)
    assert found is not None and found.bot_token == ob.slack.current_token(TEAM_A)


# -- web passwords ---------------------------------------------------------------------------


def _password_column(bot: BotHarness) -> list[str | None]:
    with bot.runtime.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT web_password FROM deployments"))]


def test_a_deployments_password_is_stored_encrypted_and_reaches_only_the_dm(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    password = creates(bot)[0].json["env"]["JUPYTER_TOKEN"]
    (stored,) = _password_column(bot)
    assert stored is not None and password not in stored and looks_sealed(stored)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    (dm,) = wait_until(lambda: [c for c in dms(fake_slack) if password in json.dumps(c.args)])
    assert "gAAAAA" not in json.dumps([c.args for c in fake_slack.calls])


def test_plain_passwords_of_an_earlier_version_are_encrypted_at_start_up_and_still_sent(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    first = bot_factory()
    dep = deploy(first)  # a row written as the earlier version did: the password in plain text
    assert _password_column(first) == [PASSWORD]

    upgraded = bot_factory(simulator=first.vast)  # same database, same Vast.ai
    (stored,) = _password_column(upgraded)
    assert stored is not None and PASSWORD not in stored and looks_sealed(stored)
    to_ready(upgraded, dep)
    sent = wait_until(lambda: [c for c in dms(fake_slack) if PASSWORD in json.dumps(c.args)])
    assert len(sent) == 1


def test_a_password_no_key_decrypts_is_named_never_shown(
    bot: BotHarness, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = SecretBox(Fernet.generate_key().decode()).encrypt(PASSWORD)
    dep = deploy(bot, web_password=foreign)  # e.g. the signing secret was regenerated
    to_ready(bot, dep)
    bot.block_action("deployment_credentials", str(dep.id), user=ALICE, is_ephemeral=False)
    fake_slack.wait_for("response_url")
    shown = wait_until(lambda: [c for c in dms(fake_slack) if "cannot read" in json.dumps(c.args)])
    assert len(shown) == 2  # the ready DM and the one asked for
    everything = json.dumps([c.args for c in fake_slack.calls])
    assert foreign not in everything and "gAAAAA" not in everything and PASSWORD not in everything
    assert UNREADABLE_PASSWORD.split(":")[0] in everything
    assert not [r for r in caplog.records if r.exc_info]  # a clear line, no traceback
    assert any("does not decrypt" in r.getMessage() for r in caplog.records)


def test_a_password_no_key_decrypts_at_rental_time_rents_nothing_and_says_why(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    template = bot.services.catalog.get("jupyter-lab")
    foreign = SecretBox(Fernet.generate_key().decode()).encrypt(PASSWORD)
    dep = insert_row(bot.services.session_factory, template, _offer(bot.vast), web_password=foreign)
    bot.vast.clear_requests()
    result = bot.services.deploy.deploy_approved(dep)  # e.g. approved after the key changed
    assert result.deployment.status == "failed"
    assert result.deployment.reason == UNREADABLE_PASSWORD_REASON
    assert creates(bot) == []  # nothing rented
    told = json.dumps([c.args for c in fake_slack.calls])
    assert "cannot be read" in told and foreign not in told and "gAAAAA" not in told


def test_without_encryption_key_a_changed_signing_secret_makes_passwords_unreadable_only(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    first = bot_factory()
    chosen = pick_offer(first).offer
    first.view_submission(submitted_view(chosen.id))
    (dep,) = settled(first)
    # The password was encrypted with the key of SIGNING_SECRET: ENCRYPTION_KEY added later
    # still reads it (and encrypts what comes next).
    key = Fernet.generate_key().decode()
    with_key = bot_factory(encryption_key=key)
    stored = storage.get_deployment(with_key.services.session_factory, dep.id)
    assert stored is not None and stored.web_password
    assert with_key.services.deploy.passwords.open(stored.web_password)
    # Another signing secret and no ENCRYPTION_KEY: the password cannot be read.
    other = bot_factory(slack_signing_secret="another-signing-secret-0123")
    with pytest.raises(EncryptionKeyError):
        other.services.deploy.passwords.open(stored.web_password)


# -- rotate-key ------------------------------------------------------------------------------


def _fill(sf: SessionFactory, engine: Engine, box: SecretBox, rows: int = 5) -> None:
    """Secrets of every kind under ``box``'s first key, plus plain text from before."""
    box.verify(sf)
    for n in range(rows):
        storage.save_vast_key(
            sf,
            f"T0WS{n:05d}",
            ciphertext=box.encrypt(f"{VAST_KEY[:-2]}{n:02d}"),
            last4=f"{n:04d}",
            vast_user_id=str(1000 + n),
            actor="U0ADMIN01",
            now=storage.utcnow(),
        )
        storage.create_deployment(
            sf,
            request_key=f"V0ROT{n:05d}",
            team_id="T0WS00000",
            user_id=ALICE,
            channel_id="C0DEPLOYS1",
            template_slug="jupyter-lab",
            template_name="JupyterLab",
            offer_id=100 + n,
            gpu_name="RTX 4090",
            num_gpus=1,
            gpu_ram_gb=24.0,
            dph_total=0.4,
            disk_gb=20.0,
            web_password=box.encrypt(f"{PASSWORD}-{n}") if n % 2 else f"{PASSWORD}-{n}",
        )
        SealedInstallationStore(
            SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine), box
        ).save(_installation(team_id=f"T0WS{n:05d}", bot_token=f"{ROTATING_TOKEN}{n}"))


def _all_secrets(engine: Engine) -> list[str]:
    queries = [f"SELECT {c.column} FROM {c.table}" for c in storage.SLACK_SECRETS] + [
        "SELECT vast_key_ciphertext FROM workspaces",
        "SELECT web_password FROM deployments",
        f"SELECT value FROM bot_state WHERE name = '{CANARY_STATE}'",
    ]
    with engine.connect() as conn:
        return [str(v) for q in queries for (v,) in conn.execute(text(q)) if v is not None]


def test_rotate_key_re_encrypts_everything_with_the_first_key_once(
    engine: Engine, session_factory: SessionFactory
) -> None:
    sf = session_factory
    _fill(sf, engine, SecretBox(KEY_OLD))
    values = _all_secrets(engine)
    both = SecretBox(f"{KEY_NEW},{KEY_OLD}")
    plain = [both.open(v) for v in values]

    report = rotate_all(sf, both, both, batch_size=2)
    assert report.canary == "rotated" and report.vault_unreadable == 0
    assert report.tallies["web passwords"].rotated == 5  # 3 plain, 2 under the old key
    assert report.tallies["Vast.ai keys"].rotated == 5
    after = _all_secrets(engine)
    assert len(after) == len(values)
    only_new = SecretBox(KEY_NEW)
    assert all(looks_sealed(v) and only_new.is_current(v) for v in after)
    assert sorted(only_new.decrypt(v) for v in after) == sorted(plain)
    assert only_new.verify(sf) is True  # the old key can go

    again = rotate_all(sf, both, both, batch_size=2)  # idempotent: nothing left to do
    assert sum(t.rotated for t in again.tallies.values()) == 0 and again.canary == "current"
    assert _all_secrets(engine) == after


def test_rotate_key_interrupted_anywhere_leaves_each_value_readable_and_finishes_later(
    engine: Engine, session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf = session_factory
    _fill(sf, engine, SecretBox(KEY_OLD), rows=7)
    both = SecretBox(f"{KEY_NEW},{KEY_OLD}")
    plain = sorted(both.open(v) for v in _all_secrets(engine))
    calls = 0
    real = SecretBox.reseal

    def dying(self: SecretBox, stored: str) -> str | None:  # as kill -9 on the 11th value
        nonlocal calls
        calls += 1
        if calls == 11:
            raise KeyboardInterrupt
        return real(self, stored)

    monkeypatch.setattr(SecretBox, "reseal", dying)
    with pytest.raises(KeyboardInterrupt):
        rotate_all(sf, both, both, batch_size=3)
    monkeypatch.setattr(SecretBox, "reseal", real)
    middle = _all_secrets(engine)
    assert sorted(both.open(v) for v in middle) == plain  # each value old or new, readable
    assert 0 < sum(SecretBox(KEY_NEW).is_current(v) for v in middle) < len(middle)
    with pytest.raises(EncryptionKeyError):
        SecretBox(KEY_NEW).verify(sf)  # the canary is still the old key's: it stays required

    report = rotate_all(sf, both, both, batch_size=3)
    assert report.canary == "rotated"
    assert all(SecretBox(KEY_NEW).is_current(v) for v in _all_secrets(engine))


def test_rotate_key_keeps_the_canary_while_a_vault_secret_is_unreadable(
    engine: Engine, session_factory: SessionFactory
) -> None:
    sf = session_factory
    _fill(sf, engine, SecretBox(KEY_OLD), rows=2)
    storage.save_vast_key(
        sf,
        "T0LOST001",
        ciphertext=SecretBox(Fernet.generate_key().decode()).encrypt(VAST_KEY),
        last4="a1b2",
        vast_user_id="1009",
        actor="U0ADMIN01",
        now=storage.utcnow(),
    )
    both = SecretBox(f"{KEY_NEW},{KEY_OLD}")
    report = rotate_all(sf, both, both)
    assert report.tallies["Vast.ai keys"].unreadable == 1 and report.canary == "kept"
    assert any("no configured key decrypts" in line for line in report.lines())
    with pytest.raises(EncryptionKeyError):
        SecretBox(KEY_NEW).verify(sf)


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """The environment ``python -m bot`` reads, on the test database (no ``.env``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    return database_url


def test_python_m_bot_rotate_key_follows_the_documented_procedure(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = storage.make_engine(cli_env)
    try:
        storage.migrate(engine)
        sf = storage.make_session_factory(engine)
        _fill(sf, engine, SecretBox(KEY_OLD), rows=3)
        # Only the new key: the bot (and rotate-key) refuse to start, nothing is changed.
        monkeypatch.setenv("ENCRYPTION_KEY", KEY_NEW)
        before = _all_secrets(engine)
        assert main(["rotate-key"]) == 2
        assert "Cannot rotate: ENCRYPTION_KEY does not decrypt" in capsys.readouterr().out
        assert _all_secrets(engine) == before
        # New key first, old key second: rotate, then the old key can go.
        monkeypatch.setenv("ENCRYPTION_KEY", f"{KEY_NEW},{KEY_OLD}")
        assert main(["rotate-key", "--batch-size", "2"]) == 0
        out = capsys.readouterr().out
        assert "Vast.ai keys: 3 re-encrypted" in out and "canary: re-encrypted" in out
        assert "the other keys can be removed" in out
        for secret in (KEY_NEW, KEY_OLD, VAST_KEY, PASSWORD, ROTATING_TOKEN):
            assert secret not in out
        monkeypatch.setenv("ENCRYPTION_KEY", KEY_NEW)
        assert main(["rotate-key"]) == 0
        assert "Vast.ai keys: 0 re-encrypted, 3 already" in capsys.readouterr().out
        assert all(SecretBox(KEY_NEW).is_current(v) for v in _all_secrets(engine))
    finally:
        engine.dispose()


def test_a_bot_started_with_new_and_old_keys_reads_both_and_with_the_new_key_after_rotation(
    oauth_bot_factory: OAuthBotFactory,
) -> None:
    first = oauth_bot_factory(encryption_key=KEY_OLD)
    assert first.install(TEAM_A).callback.status_code == 200

    both = oauth_bot_factory(encryption_key=f"{KEY_NEW},{KEY_OLD}")  # step 1: restart
    assert both.team(TEAM_A).command("setup", user=ADMIN_A).status_code == 200
    assert both.slack.wait_for("views.open")[-1].token == TOKEN_A  # old-key token read
    box = SecretBox(f"{KEY_NEW},{KEY_OLD}")
    report = rotate_all(both.services.session_factory, box, box)  # step 2: rotate-key
    assert report.canary == "rotated" and report.tallies["Slack tokens"].rotated >= 2

    new = oauth_bot_factory(encryption_key=KEY_NEW)  # step 3: the old key removed
    before = len(new.slack.calls_to("views.open"))
    assert new.team(TEAM_A).command("setup", user=ADMIN_A).status_code == 200
    assert new.slack.wait_for("views.open", count=before + 1)[-1].token == TOKEN_A
