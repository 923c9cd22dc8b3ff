"""Where the server is and how to authenticate: TLS, mutual TLS, API key and admin token.

Shared by :class:`~banditroute.client.Router` and :class:`~banditroute.client.AsyncRouter`,
which open a grpc channel (sync or asyncio) from the same :class:`Connection` in the
constructor they share (:class:`ClientBase`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import grpc

from banditroute.client.retry import RetryPolicy
from banditroute.v1 import admin_pb2_grpc, router_pb2_grpc

__all__ = ["ClientBase", "Connection", "Metadata", "PemSource", "connection", "read_pem"]

#: PEM as bytes, PEM text, or the path of a PEM file.
PemSource = bytes | str | os.PathLike[str]
Metadata = tuple[tuple[str, str], ...]


def read_pem(source: PemSource) -> bytes:
    """PEM bytes from bytes, PEM text or a file path.

    >>> read_pem(b"-----BEGIN CERTIFICATE-----...")[:11]
    b'-----BEGIN '
    >>> read_pem("/nonexistent/ca.pem")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/ca.pem'
    """
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode()
    return Path(source).read_bytes()


@dataclass(frozen=True)
class Connection:
    """A server address with its channel credentials (None: plaintext) and per-call metadata."""

    address: str
    credentials: grpc.ChannelCredentials | None
    router_metadata: Metadata
    admin_metadata: Metadata
    options: tuple[tuple[str, Any], ...]


def connection(
    address: str,
    *,
    tls: bool = False,
    root_certificates: PemSource | None = None,
    client_cert: PemSource | None = None,
    client_key: PemSource | None = None,
    api_key: str | None = None,
    admin_token: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> Connection:
    """Build a :class:`Connection` (see :class:`~banditroute.client.Router` for the arguments).

    TLS is on when ``tls`` is true or any certificate is given; without ``root_certificates``
    the system's roots verify the server. ``client_cert`` and ``client_key`` (mutual TLS) go
    together.

    >>> plain = connection("127.0.0.1:50051", api_key="k-123", admin_token="t0k")
    >>> plain.credentials is None, plain.router_metadata, plain.admin_metadata
    (True, (('x-api-key', 'k-123'),), (('authorization', 'Bearer t0k'),))
    >>> connection("h:443", tls=True).credentials is not None
    True
    >>> connection("h:443", client_cert=b"-----BEGIN CERTIFICATE-----")
    Traceback (most recent call last):
    ...
    ValueError: client_cert and client_key (mutual TLS) must be given together
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key (mutual TLS) must be given together")
    credentials = None
    if tls or root_certificates is not None or client_cert is not None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=None if root_certificates is None else read_pem(root_certificates),
            private_key=None if client_key is None else read_pem(client_key),
            certificate_chain=None if client_cert is None else read_pem(client_cert),
        )
    return Connection(
        address=address,
        credentials=credentials,
        router_metadata=(("x-api-key", api_key),) if api_key else (),
        admin_metadata=(("authorization", f"Bearer {admin_token}"),) if admin_token else (),
        options=tuple(options),
    )


class ClientBase:
    """The constructor of :class:`~banditroute.client.Router` and its asyncio twin.

    Builds the :class:`Connection`, opens ``channel`` with ``_channels`` (``grpc`` or
    ``grpc.aio``) and wraps the Router and Admin stubs in ``_retrying_stub``.
    """

    #: The module whose ``insecure_channel``/``secure_channel`` open the channel.
    _channels: ClassVar[Any]
    #: The stub wrapper adding metadata, the default deadline and retries.
    _retrying_stub: ClassVar[type]

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        tls: bool = False,
        root_certificates: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.connection = connection(
            address,
            tls=tls,
            root_certificates=root_certificates,
            client_cert=client_cert,
            client_key=client_key,
            api_key=api_key,
            admin_token=admin_token,
            options=options,
        )
        conn = self.connection
        if conn.credentials is None:
            self.channel = self._channels.insecure_channel(address, options=conn.options)
        else:
            self.channel = self._channels.secure_channel(
                address, conn.credentials, options=conn.options
            )
        retry = RetryPolicy() if retry is None else retry
        #: The Router RPCs (``Route``, ``RecordOutcome(s)``, ``SubmitFeedback``) with the API
        #: key, default deadline and retries.
        self.stub = self._retrying_stub(
            router_pb2_grpc.RouterStub(self.channel), conn.router_metadata, timeout, retry
        )
        #: The Admin RPCs, with the admin token, e.g. ``router.admin.ListModels(request)``
        #: (awaited with :class:`~banditroute.client.AsyncRouter`).
        self.admin = self._retrying_stub(
            admin_pb2_grpc.AdminStub(self.channel), conn.admin_metadata, timeout, retry
        )
