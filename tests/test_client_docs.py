"""The client's examples run: docs/integration.md and the docstrings of banditroute.client,
against a real server with the demo pool."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import banditroute.client

DOC = Path(__file__).resolve().parent.parent / "docs" / "integration.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
CLIENT_MODULES = ["banditroute.client"] + [
    f"banditroute.client.{m.name}" for m in pkgutil.iter_modules(banditroute.client.__path__)
]


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order."""
    return PYTHON_BLOCK.findall(text)


def test_integration_guide_examples_run(
    grpc_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BANDITROUTE_ADDRESS", grpc_server.address)
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    # One module for all blocks, registered so that their dataclasses can find it.
    module = types.ModuleType("integration_md")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name}, python block {number}", "exec")
        exec(code, module.__dict__)
    out = capsys.readouterr().out
    assert "ConnectionError: anthropic is unavailable" in out  # a fallback was shown
    assert "every model failed for decision" in out


@pytest.mark.parametrize("name", CLIENT_MODULES)
def test_client_docstring_examples_run(grpc_server: Any, name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, extraglobs={"address": grpc_server.address}, optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0
