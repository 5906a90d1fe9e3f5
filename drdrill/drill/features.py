"""Which feature files a run drills, parsed and checked against the step library before
anything starts: a typo must cost a one-line error, not a stack start-up and a failed drill."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from drdrill.drill.step_args import check_step, is_destructive, needed_target
from drdrill.errors import UsageError

# The step library that ships with drdrill (the repository's steps/, installed as drdrill.steps).
BUNDLED_STEPS = ("drdrill.steps.drill_steps", "drdrill.steps.fault_steps", "drdrill.steps.restore_test_steps")
PROJECT_STEPS_PACKAGE = "drdrill_project_steps"

log = logging.getLogger(__name__)
# A feature tagged so is the non-destructive restore test of the platform's own backups: what
# `--target live` runs by default. Every other feature destroys something.
RESTORE_TEST_TAG = "restore-test"
# A feature tagged so makes faults only a Docker engine can (features/faults/containers.feature).
CONTAINERS_TAG = "containers"
KUBERNETES_TAG = "kubernetes"
# A feature tagged so drills Elasticsearch as a cluster (its node faults): it needs CLUSTER_NODES.
CLUSTER_TAG = "cluster"
CLUSTER_NODES = 3


@dataclass(frozen=True)
class StepRef:
    """A step of a feature file, where it is written."""

    path: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: '{self.text}'"


@dataclass(frozen=True)
class LoadedFeature:
    path: Path
    tags: frozenset[str]
    # The steps whose definitions need a destructive target, in file order.
    destructive_steps: tuple[StepRef, ...] = ()
    # Steps only one target can carry out: the target ("containers", "kubernetes") -> the first.
    needs: tuple[tuple[str, StepRef], ...] = ()

    @property
    def destructive(self) -> bool:
        return bool(self.destructive_steps)

    def needed_targets(self) -> dict[str, StepRef]:
        found: dict[str, StepRef] = {}
        for tag in (KUBERNETES_TAG, CONTAINERS_TAG):
            if tag in self.tags:
                found[tag] = StepRef(self.path, 1, f"@{tag}")
        for target, step in self.needs:
            found.setdefault(target, step)
        return found

    def runs_on(self, target: str) -> bool:
        needed = self.needed_targets()
        if KUBERNETES_TAG in needed:
            return target == "live"  # with Kubernetes in [target]; the faults say so otherwise
        return CONTAINERS_TAG not in needed or target == "containers"


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


def bundled_features() -> Path:
    """The runbook drills drdrill ships (the repository's features/, as drdrill.runbook)."""
    import drdrill.runbook

    return Path(drdrill.runbook.__file__).parent


def binding_module() -> Path:
    """The one test module pytest collects: it binds the chosen features to pytest-bdd."""
    import drdrill.steps

    return Path(drdrill.steps.__file__).parent / "test_drill.py"


def step_modules(project_dir: Path) -> list[ModuleType]:
    """The bundled step library, then the project's own ``steps/*.py`` (a team's own steps,
    loaded as pytest plugins like drdrill's: they may use drdrill's fixtures and override a
    step by defining the same phrase)."""
    modules = [importlib.import_module(name) for name in BUNDLED_STEPS]
    own = project_dir / "steps"
    if not own.is_dir() or own.resolve() == binding_module().parent.resolve():
        return modules
    for file in sorted(own.glob("*.py")):
        if file.name.startswith(("_", "test_")):
            continue
        name = f"{PROJECT_STEPS_PACKAGE}.{file.stem}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise UsageError(f"{file}: cannot be loaded as a step module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[name]
                raise UsageError(f"{file}: the step module does not import: {type(exc).__name__}: {exc}",
                                 hint="fix the project's own step definitions") from exc
        modules.append(sys.modules[name])
    return modules


def default_features(project_dir: Path, target: str) -> list[LoadedFeature]:
    """``live``: the restore test. Elsewhere the runbook drills: every feature under features/
    (the project's, else the bundled ones) except the fault catalogue (scenarios that fail by
    design) and the restore test."""
    root = project_dir / "features"
    if not root.is_dir():
        root = bundled_features()
    loaded = load_features([f for f in feature_files([root]) if "faults" not in f.relative_to(root).parts],
                           project_dir)
    chosen = [f for f in loaded if (RESTORE_TEST_TAG in f.tags) == (target == "live")]
    if not chosen:
        raise UsageError(f"{root}: no feature files for --target {target}",
                         hint="name feature files on the command line")
    return chosen


def for_target(loaded: list[LoadedFeature], target: str) -> list[LoadedFeature]:
    """The features a target can run: ``@containers`` ones only on containers. Named alone on
    another target, they are a usage error; in a directory with others, they are left out."""
    chosen = [f for f in loaded if f.runs_on(target)]
    if loaded and not chosen:
        needed = loaded[0].needed_targets()
        if KUBERNETES_TAG in needed:
            raise UsageError(f"{loaded[0].path.name} needs --target live with Kubernetes in [target] (its faults "
                             f"are a cluster's: {needed[KUBERNETES_TAG]})", hint="drdrill cluster up, then drdrill "
                             "run FEATURE --target live --config <its drdrill-live.toml>")
        raise UsageError(f"{loaded[0].path.name} needs --target containers (its faults need a Docker engine: "
                         f"{needed[CONTAINERS_TAG]})", hint="drdrill run FEATURE --target containers")
    left_out = [f.path.name for f in loaded if not f.runs_on(target)]
    if left_out:
        log.info("left out on --target %s (they need another target: @containers or @kubernetes): %s", target,
                 ", ".join(left_out))
    return chosen


def for_cluster(loaded: list[LoadedFeature], es_nodes: int | None) -> list[LoadedFeature]:
    """``@cluster`` features need Elasticsearch as a cluster of CLUSTER_NODES nodes (a node lost
    must leave a majority to elect a master): on a smaller one they are left out of a directory
    and refused when named alone. ``es_nodes`` None: the target's own cluster decides (live)."""
    if es_nodes is None or es_nodes >= CLUSTER_NODES:
        return loaded
    chosen = [f for f in loaded if CLUSTER_TAG not in f.tags]
    if loaded and not chosen:
        raise UsageError(f"{loaded[0].path.name} drills Elasticsearch nodes (@{CLUSTER_TAG}): it needs a cluster of "
                         f"{CLUSTER_NODES} nodes, the stack has {es_nodes}",
                         hint=f"[stack] elasticsearch_nodes = {CLUSTER_NODES} in drdrill.toml (or "
                              f"DRDRILL_ES_NODES={CLUSTER_NODES}) for a new stack")
    left_out = [f.path.name for f in loaded if CLUSTER_TAG in f.tags]
    if left_out:
        log.info("left out on a %d-node Elasticsearch (they need %d nodes: @%s): %s", es_nodes, CLUSTER_NODES,
                 CLUSTER_TAG, ", ".join(left_out))
    return chosen


def load_features(files: list[Path], project_dir: Path) -> list[LoadedFeature]:
    """Parse every feature and match every step against the step library (pytest-bdd's parser
    and step registry, so that what passes here is what runs)."""
    from pytest_bdd.exceptions import FeatureError
    from pytest_bdd.feature import get_feature
    from pytest_bdd.steps import step_function_context_registry

    step_modules(project_dir)
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
        harmful: dict[int, StepRef] = {}
        needs: list[tuple[str, StepRef]] = []
        for scenario in feature.scenarios.values():
            for step in scenario.steps:
                matching = [c for c in contexts if c.type == step.type and c.parser.is_matching(step.name)]
                if not matching:
                    raise UsageError(f"{file}:{step.line_number}: no step definition matches "
                                     f"'{step.keyword} {step.name}'",
                                     hint="see `drdrill steps` for the step library")
                ref = StepRef(file, step.line_number, f"{step.keyword} {step.name}")
                # The definition pytest-bdd will call: the last registered (a project's own wins).
                chosen = matching[-1]
                check_step(chosen.step_func, chosen.parser.parse_arguments(step.name) or {},
                           step.datatable.raw() if step.datatable is not None else None, str(ref))
                if any(is_destructive(c.step_func) for c in matching):
                    harmful[step.line_number] = ref
                target = needed_target(chosen.step_func)
                if target is not None:
                    needs.append((target, ref))
        loaded.append(LoadedFeature(file, frozenset(feature.tags), tuple(harmful[n] for n in sorted(harmful)),
                                    tuple(needs)))
    return loaded
