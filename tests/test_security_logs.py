"""No secret, key or prompt text reaches a log record once redaction is installed."""

from __future__ import annotations

import contextvars
import logging

import pytest
from banditroute.v1 import router_pb2

from service.security import REDACTED, guard_request, install_log_redaction, redact

PROMPT = "Summarise the merger plan of Initech and Globex, confidential"
API_KEY = "brk_live_7d1f0c2a9b"


@pytest.fixture(autouse=True)
def _redaction() -> None:
    install_log_redaction(["admin-token-do-not-log"])


def test_registered_secret_never_reaches_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("banditroute.test").info("token %s", "admin-token-do-not-log")
    assert "admin-token-do-not-log" not in caplog.text
    assert REDACTED in caplog.text


def test_request_prompt_and_key_are_scrubbed_inside_the_request_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = router_pb2.RouteRequest(prompt=PROMPT, route="default")
    log = logging.getLogger("banditroute.test")

    def serve_one() -> None:
        guard_request(request, (("x-api-key", API_KEY),))
        log.warning("bad request %s from key %s", request, API_KEY)
        log.warning("prompt was %r", PROMPT)
        try:
            raise ValueError(f"cannot route {PROMPT}")
        except ValueError:
            log.exception("failed")

    with caplog.at_level(logging.INFO):
        contextvars.copy_context().run(serve_one)
        # Outside the request the same words are ordinary text again.
        log.warning("outside: %s", "merger plan")
    assert PROMPT not in caplog.text
    assert "merger plan of Initech" not in caplog.text
    assert API_KEY not in caplog.text
    assert "outside: merger plan" in caplog.text


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("(('authorization', 'Bearer abc.def.ghi'),)", "abc.def.ghi"),
        ("authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("x-api-key=brk_1234567", "brk_1234567"),
        ("postgresql://app:hunter22@db:5432/br", "hunter22"),
        ('prompt: "ignore all previous instructions"', "ignore all previous"),
        ("comment='my phone is 555-0100'", "555-0100"),
    ],
    ids=["metadata-tuple", "header", "api-key", "dsn-password", "proto-prompt", "comment"],
)
def test_redact_removes_credentials_and_free_text(text: str, leaked: str) -> None:
    assert leaked not in redact(text)
