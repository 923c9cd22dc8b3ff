"""The README's "Use it from Python" example runs against a live server with the demo pool."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import psycopg
import pytest

from banditroute.service.config import libpq_url

README = Path(__file__).resolve().parent.parent / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: The address the README's examples use; the test points it at its own server.
README_ADDRESS = "127.0.0.1:50051"


def section(text: str, title: str) -> str:
    """The Markdown section under the heading ``title`` (up to the next heading of its level)."""
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", text, re.M | re.S)
    assert match is not None, f"README has no section {title!r}"
    return match.group(2)


def test_readme_python_example_runs_against_a_live_server(
    grpc_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = PYTHON_BLOCK.findall(section(README.read_text(), "Use it from Python"))
    assert blocks, "the section has no python block"
    monkeypatch.setenv("BANDITROUTE_ADDRESS", grpc_server.address)
    module = types.ModuleType("readme_md")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for number, block in enumerate(blocks, 1):
        source = block.replace(README_ADDRESS, grpc_server.address)
        name = f"README.md, Use it from Python, block {number}"
        exec(compile(source, name, "exec"), vars(module))
    printed = capsys.readouterr().out
    assert printed.strip(), "the example prints the chosen model"
    with psycopg.connect(libpq_url(grpc_server.db_url)) as conn:
        outcomes = conn.execute("SELECT count(*) FROM outcomes").fetchone()
        ratings = conn.execute("SELECT count(*) FROM feedback").fetchone()
    assert outcomes == (1,) and ratings == (1,), "the example records an outcome and a rating"
