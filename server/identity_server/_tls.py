"""Server TLS: loading the certificate files and refusing plaintext off loopback.

`load_server_credentials` reads the PEM files named by `IDENTITY_TLS_CERT`,
`IDENTITY_TLS_KEY` and (for mutual TLS) `IDENTITY_TLS_CLIENT_CA`, checks them
before grpc sees them, and builds the server credentials. A missing, unreadable
or malformed file stops start-up with one line naming the variable and the
path; no message ever carries a file's contents.

`check_listen_security` is the rule from the design: a listener on anything but
a loopback address must use TLS.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

CERT_VARIABLE = "IDENTITY_TLS_CERT"
KEY_VARIABLE = "IDENTITY_TLS_KEY"
CLIENT_CA_VARIABLE = "IDENTITY_TLS_CLIENT_CA"

# Far larger than any real certificate chain or key; stops a wrong path (a log
# file, a device) from being read into memory whole.
_MAX_PEM_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the server's PEM files; `client_ca` set means clients must present a cert."""

    cert: Path
    key: Path
    client_ca: Path | None


def _read_pem(path: Path, variable: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{variable}: file not found: {path}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{variable}: cannot read {path}: {reason}") from None
    if len(data) > _MAX_PEM_BYTES:
        raise ValueError(f"{variable}: {path} is too large to be a PEM file")
    if b"-----BEGIN " not in data:
        raise ValueError(f"{variable}: {path} is not a PEM file")
    return data


def _load_certificates(data: bytes, path: Path, variable: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{variable}: {path} holds no valid PEM certificate") from None
    return certificates


def load_server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Read and check the PEM files, and return grpc server credentials.

    The first certificate in `files.cert` must match the private key in
    `files.key` (unencrypted PEM; grpc takes no passphrase). With `client_ca`
    set, every client must present a certificate issued by one of its CAs.
    Raises ValueError with one line naming the variable on any problem.
    """
    cert_pem = _read_pem(files.cert, CERT_VARIABLE)
    key_pem = _read_pem(files.key, KEY_VARIABLE)
    ca_pem: bytes | None = None
    if files.client_ca is not None:
        ca_pem = _read_pem(files.client_ca, CLIENT_CA_VARIABLE)
        _load_certificates(ca_pem, files.client_ca, CLIENT_CA_VARIABLE)

    chain = _load_certificates(cert_pem, files.cert, CERT_VARIABLE)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # TypeError: the key is encrypted. The library's text is not passed on.
        raise ValueError(
            f"{KEY_VARIABLE}: {files.key} is not an unencrypted PEM private key"
        ) from None
    if chain[0].public_key() != key.public_key():
        raise ValueError(
            f"{KEY_VARIABLE}: {files.key} does not match the certificate in {CERT_VARIABLE}"
        )

    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        require_client_auth=ca_pem is not None,
    )


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the name "localhost"; false for anything else.

    Wildcards ("0.0.0.0", "::", "") listen on every interface and are not
    loopback; nor is any other host name, since it may resolve anywhere.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def check_listen_security(host: str, tls: TlsFiles | None) -> None:
    """Refuse (ValueError) a non-loopback listener without TLS."""
    if tls is None and not is_loopback(host):
        shown = host or "all interfaces"
        raise ValueError(
            f"refusing to listen on {shown} without TLS: set {CERT_VARIABLE} and {KEY_VARIABLE}"
        )
