"""Auth fixtures: a real local JWKS server, signing keys, and apps built with custom settings."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from consentry.app import create_app
from consentry.keys.service import revoke_key
from consentry.settings import Settings
from tests.helpers import make_key


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWT crafted by hand with an empty signature."""
    parts = (json.dumps(header).encode(), json.dumps(claims).encode())
    return ".".join(b64url(part) for part in parts) + "."


async def make_revoked_key(app: FastAPI, name: str, *scopes: str) -> str:
    """An API key that existed and was revoked."""
    key = await make_key(app, name, *scopes)
    async with app.state.database.unit_of_work() as uow:
        await revoke_key(uow, name)
    return key


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from `settings`, with its lifespan running."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        yield client


@dataclass
class SigningKey:
    """A private key with the public JWK an identity provider would publish for it."""

    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWKS entry."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            entry = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            entry = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**entry, "kid": self.kid, "alg": self.alg, "use": "sig"}


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def rsa_key_2() -> SigningKey:
    return SigningKey("rsa-2", "RS256", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class JWKSServer:
    """What the local identity provider serves (JSON, or raw bytes) and how often it was asked."""

    url: str
    document: Any = field(default_factory=lambda: {"keys": []})
    status: int = 200
    requests: int = 0

    def publish(self, *keys: SigningKey) -> None:
        """Serve exactly these public keys from now on."""
        self.document = {"keys": [key.jwk() for key in keys]}


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A real HTTP server on 127.0.0.1 serving a JWKS document, in a thread."""
    published = JWKSServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            published.requests += 1
            document = published.document
            body = document if isinstance(document, bytes) else json.dumps(document).encode()
            self.send_response(published.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    published.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    # A short poll interval lets shutdown() return at once instead of after half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield published
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
