"""Command line: ``python -m bot`` runs the bot; ``python -m bot catalog list|validate PATH|schema``
(``schema`` prints the JSON Schema of a template file);
``python -m bot simulator [--port 8090] [--api-key KEY] [--rate-limits]`` serves the Vast.ai
simulator on its own; ``python -m bot rotate-key [--batch-size N]`` re-encrypts every stored
secret with the first key of ``ENCRYPTION_KEY`` (:mod:`bot.rekey`);
``python -m bot demo [--data DIR] [--port N] [--screenshots DIR]`` runs the bot in a local Slack
playground in the browser, with no configuration (:mod:`bot.playground.demo`)."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from pathlib import Path
from urllib.error import URLError

from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.exc import SQLAlchemyError

from bot import logs, logsafe
from bot.config import ConfigError, catalog_dir_from_env, configured_secrets, load_settings
from bot.crypto import EncryptionKeyError
from bot.simulator.cli import parse_account
from catalog import CatalogError
from catalog.cli import main_list, main_schema, main_validate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Slack bot: a one-click GPU template marketplace."
    )
    commands = parser.add_subparsers(dest="command")
    catalog = commands.add_parser("catalog", help="inspect the template catalog")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    catalog_commands.add_parser("list", help="print the catalog (built-ins + CATALOG_DIR)")
    validate = catalog_commands.add_parser("validate", help="check a folder of template YAML files")
    validate.add_argument("path", type=Path)
    catalog_commands.add_parser(
        "schema", help="print the JSON Schema of a template file (for editors)"
    )
    simulator = commands.add_parser(
        "simulator", help="serve the Vast.ai simulator on 127.0.0.1 (foreground, Ctrl-C stops)"
    )
    simulator.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    simulator.add_argument(
        "--api-key", help="the API key it requires (default: a new random one, printed)"
    )
    simulator.add_argument(
        "--rate-limits", action="store_true", help="enforce Vast.ai's per-endpoint intervals"
    )
    simulator.add_argument(
        "--account",
        action="append",
        default=[],
        type=parse_account,
        metavar="KEY=USERID",
        help="another Vast.ai account (repeatable): its key and user id",
    )
    demo = commands.add_parser(
        "demo",
        help="try the bot in the browser: a local Slack playground, the Vast.ai simulator and "
        "the bot, no configuration (Ctrl-C stops)",
    )
    demo.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="folder for the bot's SQLite database, kept (default: a temporary one)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=8000,
        metavar="N",
        help="port of the playground page on 127.0.0.1 (default 8000)",
    )
    demo.add_argument(
        "--screenshots",
        type=Path,
        metavar="DIR",
        help="write PNG screenshots of the main moments to DIR, then stop",
    )
    rotate = commands.add_parser(
        "rotate-key",
        help="re-encrypt every stored secret with the first key of ENCRYPTION_KEY "
        "(safe to stop and run again; docs/SECURITY.md)",
    )
    rotate.add_argument(
        "--batch-size", type=int, default=200, help="rows per transaction (default 200)"
    )
    return parser


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "catalog":
        if args.catalog_command == "list":
            return main_list(catalog_dir_from_env())
        if args.catalog_command == "schema":
            return main_schema()
        return main_validate(args.path)
    if args.command == "rotate-key":
        from bot.rekey import main_rotate_key

        return main_rotate_key(batch_size=max(1, args.batch_size))
    if args.command == "demo":
        from bot.playground.demo import main as main_demo

        return main_demo(data_dir=args.data, port=args.port, screenshots=args.screenshots)
    if args.command == "simulator":
        from bot.simulator.cli import serve

        return serve(
            port=args.port,
            api_key=args.api_key,
            rate_limits=args.rate_limits,
            accounts=dict(args.account),
        )

    database_url: str | None = None
    try:
        settings = load_settings()
        database_url = settings.database_url
        # LOG_LEVEL and LOG_FORMAT; whatever reaches the console: no configured secret, no
        # Slack token, in either format.
        logs.configure(
            settings.log_level, settings.log_format, secrets=configured_secrets(settings)
        )
        logsafe.install()
        from bot.runtime import run

        # Platforms stop a process with SIGTERM: shut down as on Ctrl-C, so the scheduler
        # stops and the poller's lease is given up for another process at once.
        signal.signal(signal.SIGTERM, _interrupt)
        run(settings)
    except (ConfigError, CatalogError, EncryptionKeyError) as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else "unknown"
        print(
            f"Cannot start: Slack refused the bot token ({error}). Check SLACK_BOT_TOKEN.",
            file=sys.stderr,
        )
        return 2
    except BoltError as exc:
        if "auth.test" in str(exc):  # Bolt wraps auth.test's refusal (e.g. invalid_auth)
            print(
                "Cannot start: Slack refused the bot token (auth.test failed). "
                "Check SLACK_BOT_TOKEN.",
                file=sys.stderr,
            )
        else:
            print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    except (SlackClientError, URLError) as exc:  # slack_sdk raises urllib's URLError
        reason = getattr(exc, "reason", None) or type(exc).__name__
        print(
            f"Cannot start: could not reach the Slack Web API at SLACK_API_URL ({reason}). "
            "Check the network and SLACK_API_URL.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                "Cannot start: the HTTP port is already in use. Stop the other process or set "
                "PORT to a free port.",
                file=sys.stderr,
            )
        else:
            print(f"Cannot start: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        import storage

        print(
            f"Cannot start: {storage.describe_unusable(database_url or '', exc)}", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
