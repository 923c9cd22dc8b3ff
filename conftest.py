"""Collect the doctests of ``learners/`` and ``service/`` under their installed names.

The folders install as ``banditroute.learners`` and ``banditroute.service`` (see
``[tool.setuptools.package-dir]``), but pytest derives a module's name from its path, so
``--doctest-modules`` would import ``service/cli.py`` a second time as ``service.cli``: a
second copy of every module, next to the ``banditroute.service.cli`` the tests import, and
each package's ``__init__.py`` as ``service``, ``service.api``, ... Here the doctest and package
collectors of those folders import ``banditroute.<dotted path>`` instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _pytest.doctest import DoctestModule
from _pytest.python import Package

ROOT = Path(__file__).resolve().parent
#: Repository folders installed as ``banditroute.<folder>``.
INSTALLED_AS_BANDITROUTE = ("learners", "service", "migrations")


class _NoGenericTopLevel(importlib.abc.MetaPathFinder):
    """The repository root is on ``sys.path`` under pytest (``tests.helpers``), which would let a
    stale ``import service...`` / ``from learners import ...`` load a second, generic copy of a
    module. Under pytest those names fail as they do after installation."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname in INSTALLED_AS_BANDITROUTE:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (it is installed as 'banditroute.{fullname}')",
                name=fullname,
            )
        return None


sys.meta_path.insert(0, _NoGenericTopLevel())


def installed_module_name(path: Path) -> str | None:
    """``banditroute.service.core.router`` for ``service/core/router.py``; None elsewhere."""
    try:
        parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    except ValueError:
        return None
    if not parts or parts[0] not in INSTALLED_AS_BANDITROUTE:
        return None
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("banditroute", *parts))


class InstalledDoctestModule(DoctestModule):
    """A doctest module imported by its installed ``banditroute.*`` name."""

    def _getobj(self) -> ModuleType:
        name = installed_module_name(self.path)
        assert name is not None
        return importlib.import_module(name)


class InstalledPackage(Package):
    """A package folder whose ``__init__`` is imported by its installed ``banditroute.*`` name.

    ``Package.setup`` imports ``__init__.py`` by path to look for ``setup_module``; these
    packages define none, so importing the installed module is all there is to do.
    """

    def setup(self) -> None:
        name = installed_module_name(self.path / "__init__.py")
        assert name is not None
        module = importlib.import_module(name)
        hooks = ("setUpModule", "setup_module", "tearDownModule", "teardown_module")
        assert not any(hasattr(module, f) for f in hooks), f"{name}: package setup unsupported"


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if (path / "__init__.py").is_file() and installed_module_name(path / "__init__.py"):
        return InstalledPackage.from_parent(parent, path=path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Generator[None, Any, Any]:
    collected = yield
    return [
        InstalledDoctestModule.from_parent(parent, path=file_path)
        if type(node) is DoctestModule and installed_module_name(file_path) is not None
        else node
        for node in collected
    ]
