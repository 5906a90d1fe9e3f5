"""Options that mean the same in every command, spelt once: ``--config``, ``--json``, and the
``[target]`` table a live command reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drdrill.settings.live import LiveTargetSettings

DEFAULT_CONFIG = Path("drdrill.toml")


def add_config(parser: argparse.ArgumentParser, what: str = "settings file with a [target] table") -> None:
    parser.add_argument("--config", help=f"{what} (default: {DEFAULT_CONFIG})")


def add_json(parser: argparse.ArgumentParser, what: str = "print the result as JSON") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def target_settings(args: argparse.Namespace) -> tuple[Path, LiveTargetSettings]:
    """The settings file ``--config`` names and its ``[target]`` table (a usage error without one)."""
    from drdrill.errors import UsageError
    from drdrill.settings import load_settings

    path = Path(args.config) if args.config else DEFAULT_CONFIG
    settings = load_settings(path)
    if settings.target is None:
        raise UsageError(f"{path} has no [target] table", hint="see README, \"Drill your staging environment\"")
    return path, settings.target
