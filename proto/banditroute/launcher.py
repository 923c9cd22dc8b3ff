"""The ``banditroute`` console script.

A plain ``pip install banditroute`` is the client only; the command line belongs to the server
and needs its extra. Without it the command says what to install instead of a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["SERVER_EXTRA_HINT", "main"]

SERVER_EXTRA_HINT = "pip install 'banditroute[server]'"


def main() -> None:
    """Run the server's command line (:mod:`banditroute.service.cli`)."""
    try:
        from banditroute.service.cli import app
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "banditroute":
            raise
        sys.stderr.write(
            f"error: the banditroute command needs the server, which is not installed "
            f"(no module named {exc.name!r}).\nInstall it with: {SERVER_EXTRA_HINT}\n"
        )
        raise SystemExit(1) from None
    app()
