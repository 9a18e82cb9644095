"""Over TLS, an attempt connects to the checked address and verifies the certificate against the
host's name, which it sends as SNI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from consentry.systems import urls
from tests.helpers import admin, choice
from tests.systems.receiver import Receiver, receiving
from tests.systems.support import deliver, deliveries, register, verified

pytestmark = pytest.mark.anyio

NAME = "hooks.platform.test"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _server_context(
    directory: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
) -> ssl.SSLContext:
    key = _key()
    certificate = _certificate(name, key, ca[0].subject, ca[1], ca=False)
    chain = directory / f"{name}.pem"
    chain.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return context


@pytest.fixture
def authority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A test CA that the sender trusts (through SSL_CERT_FILE, as an operator's own CA)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Consentry test CA")])
    certificate = _certificate("Consentry test CA", key, name, key, ca=True)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return certificate, key


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name resolves to 127.0.0.1 for this test only (the system resolver never knew it)."""

    async def resolve(host: str, port: int) -> list[urls.IPAddress]:
        assert host == NAME
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(urls, "resolve", resolve)


@pytest.fixture
def tls_receiver(
    tmp_path: Path,
    authority: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    request: pytest.FixtureRequest,
) -> Iterator[Receiver]:
    with receiving(_server_context(tmp_path, request.param, authority)) as live:
        yield live


@pytest.mark.parametrize("tls_receiver", [NAME], indirect=True)
async def test_tls_is_verified_against_the_name_while_connecting_to_the_checked_address(
    app: FastAPI, client: httpx.AsyncClient, tls_receiver: Receiver, resolver: None
) -> None:
    system = await register(client, "recs", f"https://{NAME}:{tls_receiver.port}/hooks")
    put = await client.put("/v1/subjects/learner-1/consent", json=choice(True), headers=admin())
    assert put.status_code == 200
    assert await deliver(app) == 1
    [request] = tls_receiver.received
    assert request.headers["host"] == f"{NAME}:{tls_receiver.port}"
    assert verified(system["secret"], request)["type"] == "consent.changed"
    assert (await deliveries(client, "recs"))[0]["status"] == "delivered"


@pytest.mark.parametrize("tls_receiver", ["someone-else.test"], indirect=True)
async def test_a_certificate_for_another_name_is_refused(
    app: FastAPI, client: httpx.AsyncClient, tls_receiver: Receiver, resolver: None
) -> None:
    await register(client, "recs", f"https://{NAME}:{tls_receiver.port}/hooks")
    put = await client.put("/v1/subjects/learner-1/consent", json=choice(True), headers=admin())
    assert put.status_code == 200
    assert await deliver(app) == 1
    assert tls_receiver.received == []
    [item] = await deliveries(client, "recs")
    assert (item["status"], item["last_status"], item["last_error"]) == (
        "failed",
        "refused",
        "tls_failed",
    )
