"""What a request tells about its subject: region and GPC; for a record, also IP and agent."""

from __future__ import annotations

from fastapi import Request

from consentry.clientip import client_address, truncate
from consentry.consent.service import RequestFacts
from consentry.policy import normalize_region

_USER_AGENT_LIMIT = 512


def request_facts(request: Request, region: str | None, *, for_record: bool) -> RequestFacts:
    """Region (query, then the configured header) and GPC; for a record, also IP and agent."""
    state = request.app.state
    if region is not None:
        found = normalize_region(region)
    elif header_name := state.settings.region_header:
        header = request.headers.get(header_name)
        found = normalize_region(header) if header else None
    else:
        found = None
    gpc = request.headers.get("sec-gpc", "").strip() == "1"
    if not for_record:
        return RequestFacts(region=found, gpc=gpc, ip=None, user_agent=None)
    # Control characters (NUL above all, which PostgreSQL refuses in text) are never kept.
    user_agent = request.headers.get("user-agent", "")
    if not user_agent.isprintable():
        user_agent = "".join(c for c in user_agent if c.isprintable())
    return RequestFacts(
        region=found,
        gpc=gpc,
        ip=truncate(client_address(request, state.trusted_proxies)),
        user_agent=user_agent[:_USER_AGENT_LIMIT] or None,
    )
