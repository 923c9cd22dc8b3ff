"""The wheel ships every Python package of the repository, and clients can import the stubs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_packaging_lists_every_package_directory() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("learners", "service", "migrations")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - _declared_packages() == set()


def test_packaging_stubs_import_as_banditroute_v1() -> None:
    from banditroute.v1 import admin_pb2_grpc, router_pb2, router_pb2_grpc

    assert router_pb2.DESCRIPTOR.package == "banditroute.v1"
    assert hasattr(router_pb2_grpc, "RouterStub")
    assert hasattr(admin_pb2_grpc, "AdminStub")
