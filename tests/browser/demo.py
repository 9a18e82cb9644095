"""`make demo`: the test platform page and a real service, to try consent.js in a browser."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

import jwt

from tests.browser.platform_server import platform_origin, start_platform
from tests.processes import environment, serving

LEARNER = "demo-learner"


def main() -> None:
    """Serve until Ctrl-C, after printing the addresses to open."""
    folder = Path(tempfile.mkdtemp(prefix="consentry-demo-"))
    platform = start_platform(int(os.environ.get("DEMO_PLATFORM_PORT", "8001")))
    secret = secrets.token_urlsafe(32)
    env = environment(
        CONSENTRY_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'demo.db'}",
        CONSENTRY_CORS_ORIGINS=platform_origin(platform),
        CONSENTRY_JWT_SECRET=secret,
        CONSENTRY_POLICY_URL=f"{platform_origin(platform)}/policy.html",
        CONSENTRY_PLATFORM_URL=f"{platform_origin(platform)}/",
    )
    with serving(env, folder / "serve.log") as base:
        platform.service = base + "/"
        now = int(time.time())
        claims = {"sub": LEARNER, "name": "Demo Learner", "iat": now, "exp": now + 8 * 3600}
        token = jwt.encode(claims, secret)
        page = f"{platform_origin(platform)}/"
        print(f"The platform's page, as an anonymous visitor: {page}")
        print(f"The same page for a visitor in California:   {page}?region=US-CA")
        print(f"The privacy page as the learner {LEARNER}:   {base}/privacy#token={token}")
        print(f"The service's log: {folder / 'serve.log'}. Ctrl-C stops both.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            platform.shutdown()


if __name__ == "__main__":
    main()
