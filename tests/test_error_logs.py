"""A 500 is logged with where it happened, never with the statement's values or the request body."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import insert, text

from consentry.observability.logs import JSONFormatter, TextFormatter
from consentry.pseudonyms import ServiceSecret
from tests.test_errors import lenient

pytestmark = pytest.mark.anyio

# What a failing statement would carry: a subject id, a truncated address, a user agent.
SUBJECT = "learner-secret-7c1f"
ADDRESS = "203.0.113.0"
AGENT = "SecretAgent/9.9 (confidential)"
BODY = "body-secret-41d2"


def _routes(app: FastAPI) -> None:
    """Routes whose statements fail, on either database, with personal data bound to them."""

    async def duplicate(request: Request) -> None:
        await request.body()
        async with app.state.database.unit_of_work() as uow:
            for _ in range(2):  # the second breaks the primary key, naming the value
                await uow.execute(insert(ServiceSecret).values(name=SUBJECT, value=AGENT))

    async def cast(request: Request) -> None:
        await request.body()
        # Each database refuses one of these, PostgreSQL quoting the value in its message.
        if app.state.database.dialect == "postgresql":
            statement = text("SELECT CAST(:address AS INTEGER), CAST(:agent AS TEXT)")
        else:
            statement = text("INSERT INTO service_secrets (name, value) VALUES (:agent, NULL)")
        async with app.state.database.reader() as reader:
            await reader.execute(statement, {"address": ADDRESS, "agent": AGENT})

    async def driver(request: Request) -> None:
        await request.body()
        # PostgreSQL quotes the value it cannot read: 'invalid input syntax for type integer'.
        async with app.state.database.reader() as reader:
            await reader.pg_rows("SELECT $1::int, $2::text", SUBJECT, AGENT)

    async def quoting(request: Request) -> None:
        raise RuntimeError(f"cannot serve {SUBJECT} from {ADDRESS}: {await request.body()!r}")

    app.add_api_route("/fail/duplicate", duplicate, methods=["POST"])
    app.add_api_route("/fail/quoting", quoting, methods=["POST"])
    app.add_api_route("/fail/cast", cast, methods=["POST"])
    app.add_api_route("/fail/driver", driver, methods=["POST"])


def _rendered(records: list[logging.LogRecord]) -> list[str]:
    return [formatter().format(r) for r in records for formatter in (JSONFormatter, TextFormatter)]


@pytest.mark.parametrize("failure", ["duplicate", "cast", "driver", "quoting"])
async def test_a_failing_statement_logs_none_of_its_values(
    app: FastAPI, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    if failure == "driver" and app.state.database.dialect != "postgresql":
        pytest.skip("the driver pool is PostgreSQL's")
    _routes(app)
    with caplog.at_level(logging.DEBUG):
        async with lenient(app) as http:
            response = await http.post(
                f"/fail/{failure}", content=f'{{"note": "{BODY}"}}', headers={"User-Agent": AGENT}
            )
    assert response.status_code == 500, response.text
    logged = [caplog.text, *_rendered(caplog.records)]
    for secret in (SUBJECT, ADDRESS, AGENT, BODY):
        assert not [text for text in logged if secret in text], secret
    [line] = [r for r in caplog.records if r.getMessage().startswith("unhandled error")]
    assert line.getMessage() == f"unhandled error on POST /fail/{failure}"
    # What kind of error, and where it happened, remain.
    stack = getattr(line, "exception", "")
    assert "Error" in stack and __file__ in stack and "message withheld" in stack


async def test_an_exception_logged_by_anyone_appears_without_its_message(app: FastAPI) -> None:
    """The server logs what Starlette re-raises after answering 500, with its traceback, and so
    may a library: the service's formatters print the chain and the stack, not the text."""
    _routes(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(RuntimeError) as raised:
            await http.post("/fail/quoting", content=BODY)
    record = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error",
        logging.ERROR,
        __file__,
        0,
        "Exception in ASGI application",
        (),
        (type(raised.value), raised.value, raised.tb),
    )
    for rendered in _rendered([record]):
        assert "RuntimeError" in rendered and "message withheld" in rendered
        assert SUBJECT not in rendered and ADDRESS not in rendered and BODY not in rendered
