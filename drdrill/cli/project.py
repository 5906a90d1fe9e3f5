"""Commands for a team's own project: `drdrill init` (a starter project in any directory) and
`drdrill steps` (the step library a feature file may use)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def starter_settings() -> str:
    """The drdrill.toml `init` writes: one template, shipped as drdrill/settings/starter.toml."""
    from importlib.resources import files

    return files("drdrill.settings").joinpath("starter.toml").read_text(encoding="utf-8")


OWN_STEPS_README = """\
Your own step definitions go here, next to drdrill's (see `drdrill steps`).

drdrill loads every `steps/*.py` of the project (not `_*.py` or `test_*.py`) as a pytest plugin,
after its own step library: use pytest-bdd's decorators and drdrill's fixtures (`drill` for a
runbook drill, `restore_test` for the live restore test, `drill_run` for the whole run). A step
whose phrase is drdrill's own replaces it. Example, steps/our_steps.py:

    from pytest_bdd import given

    @given("our billing tenant is part of the drill")
    def billing(drill):
        from drdrill.core.layout import Tenant
        drill.settings.tenants.append(Tenant("billing", "prod"))
"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init", help="write a starter drdrill.toml and features/ (the runbook drills) here")
    init.add_argument("directory", nargs="?", default=".", help="the project directory (default: .)")
    init.set_defaults(handler=cmd_init)
    steps = sub.add_parser("steps", help="list the step library a feature file may use")
    steps.add_argument("--project-dir", default=".", help="also list the project's own steps/ (default: .)")
    steps.set_defaults(handler=cmd_steps)


def cmd_init(args: argparse.Namespace) -> int:
    """Everything is written to a temporary directory first and moved into place at the end:
    an existing file is never overwritten, and a failure leaves nothing half-written."""
    from drdrill.drill.features import bundled_features
    from drdrill.errors import UsageError

    root = Path(args.directory)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    clashes = [name for name in ("drdrill.toml", "features", "steps") if (root / name).exists()]
    if clashes:
        raise UsageError(f"{root} already has {', '.join(clashes)}", hint="drdrill init never overwrites; use an "
                         "empty directory, or remove them")
    root.mkdir(parents=True, exist_ok=True)
    bundled = bundled_features()
    with tempfile.TemporaryDirectory(prefix=".drdrill-init-", dir=root) as tmp:
        staging = Path(tmp)
        shutil.copytree(bundled, staging / "features", ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
        (staging / "steps").mkdir()
        (staging / "steps" / "README.md").write_text(OWN_STEPS_README)
        (staging / "drdrill.toml").write_text(starter_settings())
        for name in ("features", "steps", "drdrill.toml"):
            os.replace(staging / name, root / name)
    features = sorted(p.relative_to(root).as_posix() for p in (root / "features").rglob("*.feature"))
    print(f"wrote {root / 'drdrill.toml'}, {root / 'steps'}/ and {len(features)} feature files:")
    for feature in features:
        print(f"  {feature}")
    print("next: `drdrill run --dry-run` shows the plan, `drdrill run` drills on a local stack")
    print("sign the evidence from the first drill: `drdrill evidence keygen --out drdrill-evidence.key` (keep it "
          "out of version control), then uncomment [evidence] in drdrill.toml")
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    from pytest_bdd.steps import step_function_context_registry

    from drdrill.drill.features import step_modules

    step_modules(Path(args.project_dir).resolve())
    seen: dict[str, list[str]] = {}
    for context in step_function_context_registry.values():
        module = getattr(context.step_func, "__module__", "?")
        seen.setdefault(module, []).append(f"{(context.type or '*').capitalize():<6} {context.parser.name}")
    for module in sorted(seen):
        print(f"{module}:")
        for line in sorted(set(seen[module])):
            print(f"  {line}")
    return 0
