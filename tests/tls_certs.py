"""Throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1/localhost, clients.

Built in a temporary directory with the ``cryptography`` package when it is installed, else
with the ``openssl`` command line; nothing is reused between runs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CertPair", "Pki", "make_pki"]


@dataclass(frozen=True)
class CertPair:
    """PEM files of one certificate and its private key."""

    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes]:
        """(certificate, key) as bytes."""
        return self.cert.read_bytes(), self.key.read_bytes()


@dataclass(frozen=True)
class Pki:
    """A CA, a server pair signed by it, a client pair signed by it, and a rogue client."""

    ca: CertPair
    server: CertPair
    client: CertPair
    #: A client certificate from a different, untrusted CA.
    rogue_client: CertPair


def _crypto() -> Any:
    """The parts of ``cryptography`` used here (imported only when needed)."""
    from types import SimpleNamespace

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return SimpleNamespace(
        x509=x509,
        hashes=hashes,
        serialization=serialization,
        ec=ec,
        ExtendedKeyUsageOID=ExtendedKeyUsageOID,
        NameOID=NameOID,
    )


def _name(common_name: str) -> Any:
    c = _crypto()
    return c.x509.Name([c.x509.NameAttribute(c.NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: Any, key: Any) -> CertPair:
    c = _crypto()
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(c.serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            c.serialization.Encoding.PEM,
            c.serialization.PrivateFormat.PKCS8,
            c.serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return CertPair(cert_path, key_path)


def _builder(common_name: str, issuer: Any, key: Any, *, ca: bool) -> Any:
    """A certificate builder for ``key`` valid from 5 minutes ago for a day, CA or not."""
    c = _crypto()
    now = dt.datetime.now(dt.UTC)
    return (
        c.x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(c.x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(c.x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def _ca(common_name: str) -> tuple[Any, Any]:
    c = _crypto()
    key = c.ec.generate_private_key(c.ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key, ca=True)
        .add_extension(
            c.x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, c.hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca_cert: Any,
    ca_key: Any,
    *,
    server: bool,
) -> tuple[Any, Any]:
    c = _crypto()
    key = c.ec.generate_private_key(c.ec.SECP256R1())
    builder = _builder(common_name, ca_cert.subject, key, ca=False).add_extension(
        c.x509.ExtendedKeyUsage(
            [c.ExtendedKeyUsageOID.SERVER_AUTH if server else c.ExtendedKeyUsageOID.CLIENT_AUTH]
        ),
        critical=False,
    )
    if server:
        builder = builder.add_extension(
            c.x509.SubjectAlternativeName(
                [c.x509.DNSName("localhost"), c.x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, c.hashes.SHA256()), key


def make_pki(directory: Path, backend: str | None = None) -> Pki:
    """Create a fresh PKI under ``directory`` and return the paths of its PEM files.

    ``backend`` is ``"cryptography"`` or ``"openssl"``; default: the first available.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if backend is None:
        try:
            _crypto()
            backend = "cryptography"
        except ImportError:
            backend = "openssl"
    if backend == "openssl":
        return _openssl_pki(directory)
    ca_cert, ca_key = _ca("banditroute test CA")
    server = _leaf("localhost", ca_cert, ca_key, server=True)
    client = _leaf("tenant-client", ca_cert, ca_key, server=False)
    rogue_ca_cert, rogue_ca_key = _ca("rogue CA")
    rogue = _leaf("rogue-client", rogue_ca_cert, rogue_ca_key, server=False)
    return Pki(
        ca=_write(directory, "ca", ca_cert, ca_key),
        server=_write(directory, "server", *server),
        client=_write(directory, "client", *client),
        rogue_client=_write(directory, "rogue", *rogue),
    )


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("TLS tests need the cryptography package or the openssl command")
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True)


def _openssl_pair(directory: Path, stem: str, subject: str, ca: str | None, ext: str) -> CertPair:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", f"{stem}.key", cwd=directory,
    )  # fmt: skip
    if ca is None:  # self-signed CA
        _openssl(
            "req", "-x509", "-new", "-key", f"{stem}.key", "-subj", subject, "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", f"{stem}.crt", cwd=directory,
        )  # fmt: skip
    else:
        (directory / f"{stem}.ext").write_text(ext)
        _openssl(
            "req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{stem}.ext", "-out", f"{stem}.crt",
            cwd=directory,
        )  # fmt: skip
    return CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")


def _openssl_pki(directory: Path) -> Pki:
    leaf = "basicConstraints=CA:FALSE\n"
    server_ext = leaf + "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    client_ext = leaf + "extendedKeyUsage=clientAuth\n"
    ca = _openssl_pair(directory, "ca", "/CN=banditroute test CA", None, "")
    server = _openssl_pair(directory, "server", "/CN=localhost", "ca", server_ext)
    client = _openssl_pair(directory, "client", "/CN=tenant-client", "ca", client_ext)
    _openssl_pair(directory, "rogue-ca", "/CN=rogue CA", None, "")
    rogue = _openssl_pair(directory, "rogue", "/CN=rogue-client", "rogue-ca", client_ext)
    return Pki(ca=ca, server=server, client=client, rogue_client=rogue)
