"""The wheel ships every Python package of the repository, and clients can import the stubs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["setuptools"])


def _declared_packages() -> set[str]:
    return set(_setuptools_config()["packages"])


def test_packaging_lists_every_package_directory() -> None:
    # The folders stay at the top of the repository but install as banditroute.<folder>.
    found = {
        ".".join(("banditroute", *init.parent.relative_to(ROOT).parts)): init.parent
        for top in ("learners", "service", "migrations")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(found) - _declared_packages() == set()
    package_dir = _setuptools_config()["package-dir"]
    assert {name: ROOT / package_dir[name] for name in found} == found


def test_packaging_installs_no_generic_top_level_package() -> None:
    assert {name.split(".")[0] for name in _declared_packages()} == {"banditroute"}


def test_packaging_stubs_import_as_banditroute_v1() -> None:
    from banditroute.v1 import admin_pb2_grpc, router_pb2, router_pb2_grpc

    assert router_pb2.DESCRIPTOR.package == "banditroute.v1"
    assert hasattr(router_pb2_grpc, "RouterStub")
    assert hasattr(admin_pb2_grpc, "AdminStub")
