"""Checks of the LDAP TLS files at load time, so ``abook check-config`` finds what ``abook serve`` would
trip over: each file exists and is readable, and the pair holds a certificate and an unencrypted private
key that belong together.

PEM blocks are found by type in either file, the way the server loads them (``server/service.py``:
``tls_context``), so a combined file named twice, or the two names swapped, is accepted as it serves.
``cryptography`` is imported only when a certificate is configured (a process serving no TLS never
loads it; see ``process.leave_out_tls_stack``).
"""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)


def resolve(path: str, config_dir: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(config_dir) / p


def read_problem(path: str, config_dir: str) -> str | None:
    """Why the file cannot be read (one line naming it as configured), or None."""
    try:
        with resolve(path, config_dir).open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        return f"no such file {path}"
    except IsADirectoryError:
        return f"{path} is a directory, not a PEM file"
    except OSError as e:
        return f"cannot read {path}: {e.strerror}"
    return None


def _blocks(data: bytes, kind: str) -> list[bytes]:
    return [m.group(0) for m in _BLOCK.finditer(data) if m.group(1).decode().endswith(kind)]


def pair_problem(certificate: str, key: str, config_dir: str) -> str | None:
    """Why the certificate and key cannot serve TLS together (one line), or None. Both are readable."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_data = resolve(certificate, config_dir).read_bytes()
    key_data = resolve(key, config_dir).read_bytes()
    certs = _blocks(cert_data, "CERTIFICATE") or _blocks(key_data, "CERTIFICATE")
    keys = _blocks(key_data, "PRIVATE KEY") or _blocks(cert_data, "PRIVATE KEY")
    if not certs:
        return f"no PEM certificate in {certificate}" + ("" if key == certificate else f" or {key}")
    if not keys:
        return f"no PEM private key in {key}" + ("" if key == certificate else f" or {certificate}")
    try:
        cert = x509.load_pem_x509_certificate(certs[0])
    except ValueError:
        return f"the certificate in {certificate} cannot be read"
    try:
        private = serialization.load_pem_private_key(keys[0], password=None)
    except TypeError:
        return f"the private key in {key} is encrypted; give it without a passphrase"
    except Exception:  # noqa: BLE001 - cryptography raises ValueError and others on a garbled key
        return f"the private key in {key} cannot be read"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return f"the private key in {key} does not match the certificate in {certificate}"
    return None
