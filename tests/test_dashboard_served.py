"""``banditroute serve`` mounts the dashboard at ``/`` of its metrics port, token-protected."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.helpers import TEST_ADMIN_TOKEN, InProcessServer, free_port, register_demo


def _status(url: str, token: str | None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def test_serve_mounts_the_dashboard_next_to_the_metrics(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    port = free_port()
    server = InProcessServer(fresh_db_url, metrics_port=port)
    try:
        base = f"http://127.0.0.1:{port}"
        status, page = _status(base + "/", TEST_ADMIN_TOKEN)
        assert status == 200 and "default" in page  # the demo route is listed
        assert _status(base + "/", None)[0] in (401, 403)  # a token is configured
        status, metrics = _status(base + "/metrics", None)
        assert status == 200 and "banditroute_" in metrics
    finally:
        server.stop()
