"""No secret, key or prompt text reaches a log record once redaction is installed."""

from __future__ import annotations

import contextvars
import logging

import pytest

from banditroute.service.security import REDACTED, guard_request, install_log_redaction, redact
from banditroute.v1 import router_pb2

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


def test_server_logs_carry_no_prompt_key_or_token(fresh_db_url: str) -> None:
    """A real server at DEBUG, with keys and an admin token, serving good and bad calls."""
    import grpc

    from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2_grpc
    from tests.helpers import spawn_server

    token = "admin-token-that-must-not-be-logged"
    server = spawn_server(
        fresh_db_url,
        env={
            "BANDITROUTE_LOG_LEVEL": "DEBUG",
            "BANDITROUTE_REQUIRE_API_KEYS": "true",
            "BANDITROUTE_ADMIN_TOKEN": token,
        },
        args=("--demo",),
    )
    try:
        admin_md = (("authorization", f"Bearer {token}"),)
        with grpc.insecure_channel(server.address) as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            router = router_pb2_grpc.RouterStub(channel)
            key = admin.CreateApiKey(
                admin_pb2.CreateApiKeyRequest(tenant="acme"), metadata=admin_md
            ).key
            md = (("x-api-key", key),)
            decision = router.Route(router_pb2.RouteRequest(prompt=PROMPT), metadata=md)
            router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=decision.decision_id, quality=1.0),
                metadata=md,
            )
            router.SubmitFeedback(
                router_pb2.SubmitFeedbackRequest(
                    decision_id=decision.decision_id, rating=1.0, comment=PROMPT
                ),
                metadata=md,
            )
            bad_calls = [
                lambda: router.Route(
                    router_pb2.RouteRequest(prompt=PROMPT, route="nope"), metadata=md
                ),
                lambda: router.Route(
                    router_pb2.RouteRequest(prompt=PROMPT), metadata=(("x-api-key", API_KEY),)
                ),
                lambda: admin.ListModels(
                    admin_pb2.ListModelsRequest(),
                    metadata=(("authorization", f"Bearer {API_KEY}"),),
                ),
                lambda: router.Route(
                    router_pb2.RouteRequest(prompt=PROMPT, numeric_context={"x": float("nan")}),
                    metadata=md,
                ),
            ]
            for call in bad_calls:
                with pytest.raises(grpc.RpcError):
                    call()
    finally:
        server.stop()
    logs = server.log()
    assert "DEBUG" in logs or "INFO" in logs, "the server logged nothing: the check is void"
    for secret in (PROMPT, "merger plan", key, token, API_KEY):
        assert secret not in logs
