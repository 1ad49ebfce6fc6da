"""TLS for the admission webhook: the server context, certificate rotation, and a self-signed CA.

The API server calls admission webhooks only over HTTPS and verifies the certificate against the
`caBundle` of the webhook configuration, for the name `<service>.<namespace>.svc`. In a cluster
the certificate comes from cert-manager (deploy/components/cert-manager) or from
`gpusched webhook-cert` (`issue_webhook_certificate` below) and is mounted from a Secret; both
rotate it by rewriting the files, so `CertificateReloader` reloads them when they change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)


class TlsError(ValueError):
    """Certificate or key files that cannot be used; the message names them."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, cert_file, key_file)
    return context


def _load(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    for path in (cert_file, key_file):
        if not os.path.isfile(path):
            raise TlsError(f"{path}: no such file")
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as e:
        raise TlsError(f"cannot load the certificate {cert_file} with key {key_file}: {e}") from None


class CertificateReloader:
    """Reloads the chain into a live context when the files change (new handshakes use it)."""

    def __init__(self, context: ssl.SSLContext, cert_file: str, key_file: str, *, interval_s: float = 30.0) -> None:
        self.context, self.cert_file, self.key_file, self.interval_s = context, cert_file, key_file, interval_s
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[float, float]:
        try:
            return os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime
        except OSError:
            return (0.0, 0.0)

    def check(self) -> bool:
        """Reload if the files changed since the last look; True when it reloaded."""
        stamp = self._mtimes()
        if stamp == self._stamp or stamp == (0.0, 0.0):
            return False
        try:
            _load(self.context, self.cert_file, self.key_file)
        except TlsError as e:  # mid-rotation (cert written, key not yet): keep the old pair, look again
            log.warning("webhook certificate not reloaded yet: %s", e)
            return False
        self._stamp = stamp
        log.info("webhook certificate reloaded from %s", self.cert_file)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()


@dataclass(frozen=True)
class IssuedCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def issue_webhook_certificate(*, service: str, namespace: str, days: int = 365,
                              extra_names: tuple[str, ...] = (),
                              now: dt.datetime | None = None) -> IssuedCertificate:
    """A fresh CA and a serving certificate it signs, for the webhook's Service DNS names.

    Names: `service`, `service.namespace`, `service.namespace.svc` (what the API server checks),
    `service.namespace.svc.cluster.local`, plus `extra_names` (DNS names or IP addresses).
    """
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"gpusched webhook CA ({namespace})")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    dns = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    for extra in extra_names:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(extra)))
        except ValueError:
            names.append(x509.DNSName(extra))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[2])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return IssuedCertificate(
        ca_pem=ca.public_bytes(pem), cert_pem=cert.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
