"""The cluster's TLS material: a private CA and the certificates of the scheduler, agents and clients.

``buildyard cluster certs --out DIR`` writes, atomically and with private keys readable by the
owner only::

    ca.pem  ca.key                  the cluster's own CA (keep ca.key offline: it signs new members)
    scheduler.pem  scheduler.key    the scheduler (``cluster start --certs DIR``)
    agent.pem  agent.key            the agents (``agent --certs DIR``; copy ca.pem and these two)
    client.pem  client.key          the orchestrator (``run --executor tls://…`` with the
                                    ``cluster_certs`` setting); it also serves the job files with it

Every connection is mutual TLS against this CA only (Dask's ``Security`` with
``require_encryption``): an orchestrator without a certificate the CA signed is refused by the
scheduler, so agents run jobs only from holders of one. Like Dask, peers are identified by the CA,
not by host names (a dedicated CA; addresses are often bare IPs).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildyard.errors import UsageError
from buildyard.fsutil import atomic_write_bytes

#: The members a certificate is made for (``<role>.pem`` and ``<role>.key``).
ROLES = ("scheduler", "agent", "client")
#: How long generated certificates are valid.
VALID_DAYS = 825


@dataclass(frozen=True, slots=True)
class ClusterTLS:
    """One member's TLS files: the CA that signs every peer, its certificate and private key."""

    ca: Path
    cert: Path
    key: Path

    def security(self, role: str) -> Any:
        """The ``distributed.security.Security`` of this member in ``role`` (scheduler, worker, client)."""
        from buildyard.dask.wire import distributed  # noqa: PLC0415

        files = {
            "tls_ca_file": str(self.ca),
            f"tls_{role}_cert": str(self.cert),
            f"tls_{role}_key": str(self.key),
        }
        return distributed().security.Security(require_encryption=True, **files)

    def argv(self) -> list[str]:
        """The ``dask scheduler``/``dask worker`` options using these files."""
        return ["--tls-ca-file", str(self.ca), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]


def load_tls(directory: Path, role: str) -> ClusterTLS:
    """The files of ``role`` in ``directory`` (as ``cluster certs`` wrote them); one-line error if missing."""
    tls = ClusterTLS(directory / "ca.pem", directory / f"{role}.pem", directory / f"{role}.key")
    for path in (tls.ca, tls.cert, tls.key):
        if not path.is_file():
            raise UsageError(
                f"{path}: no such file; make the cluster's certificates with "
                f"'buildyard cluster certs --out {directory}'"
            )
    return tls


def generate(out: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> list[Path]:
    """Write a new CA and a certificate per role into ``out``; the paths written.

    Refuses to overwrite an existing CA (the running cluster would stop trusting its members).
    """
    from cryptography import x509  # noqa: PLC0415 - only this command needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    if (out / "ca.pem").exists():
        raise UsageError(
            f"{out / 'ca.pem'} exists: choose another --out (a new CA would lock the cluster's members out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=VALID_DAYS)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "buildyard cluster"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("buildyard cluster CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    written = [out / "ca.key", out / "ca.pem"]
    atomic_write_bytes(out / "ca.key", key_pem(ca_key), mode=0o600)
    atomic_write_bytes(out / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"buildyard {role}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # each member both listens and connects (agents talk to each other and to the scheduler)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        atomic_write_bytes(out / f"{role}.key", key_pem(key), mode=0o600)
        atomic_write_bytes(out / f"{role}.pem", cert.public_bytes(serialization.Encoding.PEM))
        written += [out / f"{role}.key", out / f"{role}.pem"]
    return written
