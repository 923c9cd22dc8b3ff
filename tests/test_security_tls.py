"""TLS and mutual TLS on the gRPC port, with certificates generated for each test."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from banditroute.service.errors import FailedPrecondition
from banditroute.service.security import add_port, server_credentials
from tests.tls_certs import Pki, make_pki


def _backends() -> list[str]:
    import importlib.util
    import shutil

    found = []
    if importlib.util.find_spec("cryptography") is not None:
        found.append("cryptography")
    if shutil.which("openssl"):
        found.append("openssl")
    return found


@pytest.fixture(params=_backends())
def pki(tmp_path: Path, request: pytest.FixtureRequest) -> Pki:
    """A fresh PKI, made with each available tool (CI may have only one of them)."""
    return make_pki(tmp_path / "pki", backend=request.param)


def _settings(pki: Pki, *, mtls: bool) -> SimpleNamespace:
    return SimpleNamespace(
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        tls_client_ca_file=pki.ca.cert if mtls else None,
    )


async def _serve(settings: SimpleNamespace) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = add_port(server, "127.0.0.1:0", settings)
    await server.start()
    return server, port


async def _check(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return int(reply.status)


def _client_credentials(pki: Pki, client: tuple[bytes, bytes] | None) -> grpc.ChannelCredentials:
    cert, key = client if client is not None else (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert.read_bytes(), private_key=key, certificate_chain=cert
    )


def _health(pki: Pki, *, mtls: bool, creds: grpc.ChannelCredentials | None) -> object:
    """A health check against a health-only TLS server (``creds`` None: a plaintext channel).

    Returns the serving status, or the status code the check failed with.
    """

    async def run() -> object:
        server, port = await _serve(_settings(pki, mtls=mtls))
        try:
            target = f"127.0.0.1:{port}"
            if creds is None:
                channel = grpc.aio.insecure_channel(target)
            else:
                channel = grpc.aio.secure_channel(target, creds)
            async with channel:
                try:
                    return await _check(channel)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
        finally:
            await server.stop(None)

    return asyncio.run(run())


def test_tls_handshake_succeeds_with_trusted_ca(pki: Pki) -> None:
    creds = _client_credentials(pki, None)
    assert _health(pki, mtls=False, creds=creds) == health_pb2.HealthCheckResponse.SERVING


def test_tls_port_refuses_plaintext_clients(pki: Pki) -> None:
    assert _health(pki, mtls=False, creds=None) == grpc.StatusCode.UNAVAILABLE


def test_tls_client_rejects_server_from_untrusted_ca(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    creds = grpc.ssl_channel_credentials(root_certificates=other.ca.cert.read_bytes())
    assert _health(pki, mtls=False, creds=creds) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("client", "expected_ok"),
    [("client", True), ("none", False), ("rogue_client", False)],
    ids=["trusted-client-cert", "no-client-cert", "cert-from-other-ca"],
)
def test_mtls_requires_a_client_certificate_from_the_configured_ca(
    pki: Pki, client: str, expected_ok: bool
) -> None:
    pair = None if client == "none" else getattr(pki, client).read()
    result = _health(pki, mtls=True, creds=_client_credentials(pki, pair))
    if expected_ok:
        assert not isinstance(result, grpc.StatusCode), result
    else:
        assert result == grpc.StatusCode.UNAVAILABLE


def test_server_credentials_none_without_tls_settings() -> None:
    settings = SimpleNamespace(tls_cert_file=None, tls_key_file=None, tls_client_ca_file=None)
    assert server_credentials(settings) is None


def test_server_credentials_name_a_missing_or_non_pem_file(pki: Pki, tmp_path: Path) -> None:
    missing = SimpleNamespace(
        tls_cert_file=tmp_path / "absent.crt", tls_key_file=pki.server.key, tls_client_ca_file=None
    )
    with pytest.raises(FailedPrecondition, match="tls_cert_file"):
        server_credentials(missing)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    wrong = SimpleNamespace(
        tls_cert_file=pki.server.cert, tls_key_file=garbage, tls_client_ca_file=None
    )
    with pytest.raises(FailedPrecondition, match="tls_key_file") as info:
        server_credentials(wrong)
    assert "not a key" not in str(info.value)


def test_service_answers_route_only_over_mtls(fresh_db_url: str, pki: Pki) -> None:
    """The real service (create_server) with TLS settings: Route works over mutual TLS only."""
    from banditroute.v1 import router_pb2, router_pb2_grpc
    from tests.helpers import mtls_server, register_demo

    register_demo(fresh_db_url)
    server = mtls_server(fresh_db_url, pki)
    try:
        request = router_pb2.RouteRequest(prompt="over mutual TLS")
        creds = _client_credentials(pki, pki.client.read())
        with grpc.secure_channel(server.address, creds) as channel:
            reply = router_pb2_grpc.RouterStub(channel).Route(request, timeout=30)
            assert reply.decision_id and reply.model
        for channel in (
            grpc.secure_channel(server.address, _client_credentials(pki, None)),
            grpc.insecure_channel(server.address),
        ):
            with channel, pytest.raises(grpc.RpcError) as info:
                router_pb2_grpc.RouterStub(channel).Route(request, timeout=30)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
