"""The checked-in gRPC stubs are exactly what scripts/gen_proto.py generates now."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
STUB_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _load_generator() -> Any:  # scripts/ is not a package: load the script by path
    spec = importlib.util.spec_from_file_location("gen_proto", REPO / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stubs(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name.endswith(STUB_SUFFIXES)
    }


def test_checked_in_stubs_are_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    _load_generator().generate(tmp_path)
    generated = _stubs(tmp_path)
    checked_in = _stubs(PROTO_ROOT)
    assert generated, "protoc generated nothing"
    assert sorted(generated) == sorted(checked_in), "stub files differ: run scripts/gen_proto.py"
    stale = [name for name in generated if generated[name] != checked_in[name]]
    assert stale == [], f"stale stubs {stale}: run python scripts/gen_proto.py"
