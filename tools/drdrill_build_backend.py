"""drdrill's PEP 517 build backend: setuptools, run on a copy of the checkout.

setuptools writes ``build/`` and ``drdrill.egg-info/`` into the directory it builds, and pip
builds in place, so ``pip install <checkout>`` or ``pipx install <checkout>`` left both in a
user's checkout. Wheels and sdists are therefore built from a temporary copy of the sources.
An editable install (``make setup``) still builds in place: its import hooks must point at the
checkout itself, and its ``drdrill.egg-info/`` is git-ignored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools

# What a checkout may hold that is not source: never copied, never read by the build.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                     "reports", "bench")


@contextmanager
def _in_a_copy() -> Iterator[None]:
    source = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="drdrill-build-") as scratch:
        copy = Path(scratch) / "src"
        shutil.copytree(source, copy, ignore=_NOT_SOURCE, symlinks=True)
        os.chdir(copy)
        try:
            yield
        finally:
            os.chdir(source)


def _copied(hook: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        # The directory a hook writes into (its first argument) is relative to the checkout.
        if args and isinstance(args[0], str):
            args = (os.path.abspath(args[0]), *args[1:])
        kwargs = {k: os.path.abspath(v) if k.endswith("_directory") else v for k, v in kwargs.items()}
        with _in_a_copy():
            return hook(*args, **kwargs)

    run.__name__ = hook.__name__
    return run


get_requires_for_build_wheel = _copied(_setuptools.get_requires_for_build_wheel)
get_requires_for_build_sdist = _copied(_setuptools.get_requires_for_build_sdist)
prepare_metadata_for_build_wheel = _copied(_setuptools.prepare_metadata_for_build_wheel)
build_wheel = _copied(_setuptools.build_wheel)
build_sdist = _copied(_setuptools.build_sdist)

# Editable installs build in place (see the module's docstring).
get_requires_for_build_editable = _setuptools.get_requires_for_build_editable
prepare_metadata_for_build_editable = _setuptools.prepare_metadata_for_build_editable
build_editable = _setuptools.build_editable
