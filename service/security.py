"""Transport security of the gRPC port and a guard that keeps secrets and prompts out of logs.

TLS
    :func:`server_credentials` builds grpc server credentials from ``tls_cert_file`` and
    ``tls_key_file``; with ``tls_client_ca_file`` clients must present a certificate signed by
    that CA (mutual TLS). :func:`add_port` binds the port securely when TLS is configured.

Logs
    :func:`install_log_redaction` hooks the log-record factory, so every record of every
    logger, whichever handler writes it (including tracebacks), is scrubbed once when it is
    made: ``authorization`` / ``x-api-key`` values, bearer tokens, API keys, passwords in
    database URLs, secrets registered with :func:`register_secret` (the admin token), and the
    prompt and API key of the request being served (published by :func:`guard_request`, which
    the limits interceptor calls for every RPC) are replaced by ``[redacted]``.

Examples
--------
>>> redact("connecting to postgresql://app:s3cret@db:5432/x")
'connecting to postgresql://app:[redacted]@db:5432/x'
>>> redact("metadata (('x-api-key', 'brk_abc123'),)")
"metadata (('x-api-key', '[redacted]'),)"
>>> redact("authorization: Bearer tok-42")
'authorization: [redacted]'
>>> redact('RouteRequest prompt: "my secret plan" route: "default"')
'RouteRequest prompt: "[redacted]" route: "default"'
>>> redact("key br_Jx4cZb0Vx1wYy9qK3mN8pQ2rS5tU7vW0aB4cD6eF8gH rejected")
'key [redacted] rejected'
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc

from banditroute.service.errors import FailedPrecondition

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "TlsSettings",
    "add_port",
    "guard_request",
    "install_log_redaction",
    "redact",
    "register_secret",
    "server_credentials",
    "warn_if_exposed",
]

REDACTED = "[redacted]"

#: Request values shorter than this are not scrubbed as substrings (they would mangle logs
#: without protecting anything: a two-letter prompt is no secret).
MIN_SCRUB_LENGTH = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ('authorization', 'Bearer x'), authorization: Bearer x, x-api-key=..., "x-api-key": "..."
    (
        re.compile(
            r"(?i)((?:authorization|x-api-key|api[_-]?key|admin[_-]?token|password|secret)"
            r"['\"]?\s*[:=,]\s*['\"]?)(?:bearer\s+)?[^\s'\",)}\]]+"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\bbearer\s+[^\s'\",)}\]]+"), f"Bearer {REDACTED}"),
    # banditroute API keys ("br_" + 43 url-safe characters) wherever they appear
    (re.compile(r"\bbr_[A-Za-z0-9_-]{20,}"), REDACTED),
    # scheme://user:password@host
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), rf"\1{REDACTED}@"),
    # protobuf text format or repr of free-text fields: prompt: "...", comment='...'
    (
        re.compile(r"(?i)\b((?:prompt|comment)\s*[:=]\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"),
        rf'\1"{REDACTED}"',
    ),
)

_static_secrets: set[str] = set()
_static_lock = threading.Lock()
_request_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "banditroute_request_secrets", default=()
)


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every later log record (admin token, database password).

    >>> register_secret("hunter2-admin")
    >>> redact("token was hunter2-admin")
    'token was [redacted]'
    """
    if value and len(value) >= MIN_SCRUB_LENGTH:
        with _static_lock:
            _static_secrets.add(value)


def guard_request(request: Any, metadata: Sequence[tuple[str, Any]] | None) -> None:
    """Publish the current request's prompt, comment and credentials for redaction.

    Called once per RPC by the limits interceptor; the values live in a context variable, so
    they are scrubbed from whatever this request's task logs, and only there.
    """
    values: list[str] = []
    for field in ("prompt", "comment"):
        text = getattr(request, field, None)
        if isinstance(text, str) and len(text) >= MIN_SCRUB_LENGTH:
            values.append(text)
    for key, value in metadata or ():
        if key in ("authorization", "x-api-key") and isinstance(value, str):
            token = value.split(None, 1)[-1] if value.lower().startswith("bearer ") else value
            if len(token) >= MIN_SCRUB_LENGTH:
                values.append(token)
    if values:
        _request_secrets.set(tuple(values))


def redact(text: str) -> str:
    """Return ``text`` with secrets, credentials and the current request's prompt removed."""
    secrets: Iterable[str] = (*_request_secrets.get(), *_static_secrets)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it for the handler to report
        return
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A logging filter applying :func:`redact`; for handlers made before the hook is set.

    >>> record = logging.LogRecord("x", logging.INFO, __file__, 1, "api_key=%s", ("ab12",), None)
    >>> RedactingFilter().filter(record), record.getMessage()
    (True, 'api_key=[redacted]')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


_installed = False


def install_log_redaction(secrets: Iterable[str | None] = ()) -> None:
    """Scrub every log record made from now on in this process; idempotent.

    Parameters
    ----------
    secrets
        Values known at start-up (admin token, database password) to scrub everywhere.
    """
    global _installed
    for secret in secrets:
        register_secret(secret)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(make_record)
    _installed = True


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def warn_if_exposed(
    *, host: str, tls: bool, admin_token: bool, require_api_keys: bool
) -> list[str]:
    """Log (and return) one warning per unsafe setting of a server reachable from outside.

    >>> warn_if_exposed(host="127.0.0.1", tls=False, admin_token=True, require_api_keys=False)
    []
    >>> len(warn_if_exposed(host="0.0.0.0", tls=False, admin_token=False, require_api_keys=False))
    3
    """
    problems = []
    if not admin_token:
        problems.append(
            "admin_token is not set: Admin RPCs are open to every client that reaches the port"
        )
    if host not in _LOOPBACK:
        if not tls:
            problems.append(f"serving plaintext gRPC on {host}: set tls_cert_file/tls_key_file")
        if not require_api_keys:
            problems.append(
                f"serving on {host} without require_api_keys: any client may route as any tenant"
            )
    for problem in problems:
        logging.getLogger(__name__).warning("insecure configuration: %s", problem)
    return problems


class TlsSettings(Protocol):
    """The part of :class:`banditroute.service.config.Settings` this module reads."""

    @property
    def tls_cert_file(self) -> Path | None: ...

    @property
    def tls_key_file(self) -> Path | None: ...

    @property
    def tls_client_ca_file(self) -> Path | None: ...


def _read_pem(path: Path, what: str, marker: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    if b"-----BEGIN" not in data or marker.encode() not in data:
        raise FailedPrecondition(f"{what} {str(path)!r} is not a PEM file containing {marker}")
    return data


def server_credentials(settings: TlsSettings) -> grpc.ServerCredentials | None:
    """grpc credentials for the gRPC port; ``None`` when TLS is not configured.

    Raises
    ------
    FailedPrecondition
        When a configured file is missing, unreadable or not PEM (the message names the file,
        never its content).
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    cert = _read_pem(settings.tls_cert_file, "tls_cert_file", "CERTIFICATE")
    key = _read_pem(settings.tls_key_file, "tls_key_file", "PRIVATE KEY")
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = _read_pem(settings.tls_client_ca_file, "tls_client_ca_file", "CERTIFICATE")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def add_port(server: grpc.aio.Server, address: str, settings: TlsSettings) -> int:
    """Bind ``address`` on ``server``, with TLS when configured; returns the bound port."""
    credentials = server_credentials(settings)
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)
