"""The CI recipes in docs/ci are valid YAML and every drdrill command they run is one drdrill
accepts (parsed with drdrill's own command line, not executed)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from drdrill.cli import build_parser

RECIPES = sorted((Path(__file__).resolve().parents[2] / "docs" / "ci").glob("*.yml"))


def _commands(node: object) -> list[str]:
    """Every shell line of a workflow (GitHub `run:`, GitLab `script:`/`before_script:`)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script", "before_script") and isinstance(value, str | list):
                found += [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
            else:
                found += _commands(value)
    elif isinstance(node, list):
        for item in node:
            found += _commands(item)
    return found


def test_there_are_recipes_for_github_and_gitlab():
    assert {p.name for p in RECIPES} == {"github-actions.yml", "gitlab-ci.yml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_is_yaml_whose_drdrill_commands_exist(recipe):
    document = yaml.safe_load(recipe.read_text())
    assert isinstance(document, dict)
    drdrill_lines = [line for command in _commands(document) for line in command.splitlines()
                     if line.strip().startswith("drdrill ")]
    assert drdrill_lines, f"{recipe.name} runs no drill"
    parser = build_parser()
    for line in drdrill_lines:
        args = parser.parse_args(shlex.split(line)[1:])  # raises (a usage error) for what drdrill lacks
        assert args.command in ("run", "target", "validate", "evidence", "report")
    # A gate keeps its evidence even when the drill fails.
    assert "junit.xml" in recipe.read_text() and "always" in recipe.read_text()
