"""Certificates and keys for a secured Flower deployment (``tinyfleet deploy certs DIR``).

* ``ca.crt`` / ``ca.key``: a private certificate authority (EC P-384, 10 years);
* ``server.pem`` / ``server.key``: the SuperLink's TLS certificate, signed by the CA, with
  the SuperLink's host names and IPs as subject alternative names (SuperNodes and ``flwr``
  verify it with ``ca.crt``: ``--root-certificates`` / ``root-certificates``);
* ``site-N`` / ``site-N.pub``: SuperNode N's authentication key pair, OpenSSH format on the
  NIST P-384 curve (what ``flower-supernode --auth-supernode-private-key`` and
  ``flwr supernode register`` read). A SuperLink started with ``--enable-supernode-auth``
  accepts only SuperNodes whose public key was registered.

Private keys are written with mode 0600. For production, use your organisation's CA and
keep ``ca.key`` off the SuperLink machine (docs/deployment.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def site_key(folder: Path, site: int) -> Path:
    """The private authentication key of SuperNode ``site`` (OpenSSH format)."""
    return Path(folder) / f"site-{int(site)}"


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)
    return path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def write_certificates(
    folder: Path, sites: int = 2, hosts: Sequence[str] = ("127.0.0.1", "localhost")
) -> list[Path]:
    """Write the CA, the SuperLink certificate and ``sites`` SuperNode key pairs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tinyfleet deployment CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    paths = [
        _write(folder / "ca.crt", ca.public_bytes(pem)),
        _write(folder / "ca.key", _pem_key(ca_key), private=True),
        _write(folder / "server.pem", server.public_bytes(pem)),
        _write(folder / "server.key", _pem_key(server_key), private=True),
    ]
    for site in range(int(sites)):
        key = ec.generate_private_key(ec.SECP384R1())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        paths.append(_write(site_key(folder, site), private, private=True))
        paths.append(_write(site_key(folder, site).with_suffix(".pub"), public + b"\n"))
    return paths
