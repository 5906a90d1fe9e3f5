"""Options that mean the same in every command, spelt once: ``--config``, ``--json``, and the
``[target]`` table a live command reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drdrill.adapters.s3 import ObjectStore
    from drdrill.settings import DrillSettings
    from drdrill.settings.live import LiveTargetSettings

DEFAULT_CONFIG = Path("drdrill.toml")


def add_config(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
               what: str = "settings file with a [target] table") -> None:
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


def add_store_source(parser: argparse.ArgumentParser, *, default_stack: str | None) -> None:
    """Where a command reads the backup store: a local stack's MinIO or an environment's
    ``[target]``, with the same two flags in every command that reads one."""
    where = parser.add_mutually_exclusive_group()
    add_config(where, "settings with a [target] table: read that environment's backup store, read-only")
    default = f" (default: {default_stack})" if default_stack else ""
    where.add_argument("--stack", default=None, help=f"read a local stack's backup store{default}")
    parser.set_defaults(default_stack=default_stack)


def backup_store(args: argparse.Namespace, settings: DrillSettings | None = None) -> ObjectStore:
    """The object store `add_store_source` chose: ``--stack`` (or the command's default stack
    when neither flag is given and no drdrill.toml describes a target), else ``[target]``."""
    from drdrill.errors import UsageError
    from drdrill.settings import DrillSettings, check_stack_name, load_paths, load_settings, stack_settings_from_env

    config = Path(args.config) if args.config else DEFAULT_CONFIG
    if settings is None:
        settings = load_settings(config) if args.config or config.exists() else DrillSettings()
    stack_name = args.stack or (None if args.config or settings.target is not None else args.default_stack)
    if stack_name:
        from drdrill.targets.local.stack import LocalStack
        from drdrill.targets.stack_target import platform_of

        stack = LocalStack(load_paths(), stack_settings_from_env(), stack_name=check_stack_name(stack_name, "--stack"))
        return platform_of(stack.endpoints()).store
    if settings.target is None:
        raise UsageError(f"{config} has no [target] table", hint="describe the environment there, or give --stack")
    from drdrill.targets.live.target import LiveTarget

    # The live target's store refuses every write that is not drdrill's own: listing only.
    return LiveTarget(settings.target, drill_id="listing").platform(request_timeout_s=30).store
