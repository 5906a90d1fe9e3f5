"""Which feature files a run drills, parsed and checked against the step library before
anything starts: a typo must cost a one-line error, not a stack start-up and a failed drill."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import UsageError

STEPS_MODULES = ("steps.drill_steps", "steps.fault_steps", "steps.restore_test_steps")
# A feature tagged so is the non-destructive restore test of the platform's own backups: what
# `--target live` runs by default. Every other feature destroys something.
RESTORE_TEST_TAG = "restore-test"


@dataclass(frozen=True)
class LoadedFeature:
    path: Path
    tags: frozenset[str]

    @property
    def destructive(self) -> bool:
        return RESTORE_TEST_TAG not in self.tags


def feature_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.feature"))
            if not found:
                raise UsageError(f"{path}: no .feature files in this directory")
            files += found
        elif path.is_file():
            if path.suffix != ".feature":
                raise UsageError(f"{path}: not a .feature file", hint="give Gherkin feature files or directories")
            files.append(path)
        else:
            raise UsageError(f"{path}: no such feature file or directory")
    return files


def default_features(project_dir: Path, target: str) -> list[LoadedFeature]:
    """``live``: the restore test. Elsewhere the runbook drills: every feature under features/
    except the fault catalogue (scenarios that fail by design) and the restore test."""
    root = project_dir / "features"
    loaded = load_features([f for f in feature_files([root]) if "faults" not in f.relative_to(root).parts],
                           project_dir)
    chosen = [f for f in loaded if f.destructive != (target == "live")]
    if not chosen:
        raise UsageError(f"{root}: no feature files for --target {target}",
                         hint="name feature files on the command line")
    return chosen


def load_features(files: list[Path], project_dir: Path) -> list[LoadedFeature]:
    """Parse every feature and match every step against the step library (pytest-bdd's parser
    and step registry, so that what passes here is what runs)."""
    from pytest_bdd.exceptions import FeatureError
    from pytest_bdd.feature import get_feature
    from pytest_bdd.steps import step_function_context_registry

    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        for module in STEPS_MODULES:
            importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UsageError(f"step library {exc.name} not found under {project_dir}",
                         hint="run drdrill from the project directory (it holds steps/)") from exc
    contexts = list(step_function_context_registry.values())
    loaded = []
    for file in files:
        try:
            feature = get_feature(str(file.parent), file.name)
        except (FeatureError, Exception) as exc:  # the Gherkin parser raises several types
            first = " ".join(str(exc).split())[:200]
            raise UsageError(f"{file}: not a valid feature file: {first}",
                             hint="check the Gherkin syntax (Feature:, Scenario:, Given/When/Then)") from exc
        if not feature.scenarios:
            raise UsageError(f"{file}: the feature has no scenario")
        for scenario in feature.scenarios.values():
            for step in scenario.steps:
                if not any(c.type == step.type and c.parser.is_matching(step.name) for c in contexts):
                    raise UsageError(f"{file}:{step.line_number}: no step definition matches "
                                     f"'{step.keyword} {step.name}'",
                                     hint="see the step library in steps/drill_steps.py for the known steps")
        loaded.append(LoadedFeature(file, frozenset(feature.tags)))
    return loaded
