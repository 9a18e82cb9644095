"""Connections to receivers kept open between attempts, each for the one route it was opened for.

A route is the scheme, the host name, the port and the address an attempt connected to. A kept
connection serves only a later attempt whose URL gives the same name and port and whose lookup,
judged again just before it (urls.checked_address), gave the same address: reuse never sends a
request anywhere a new connection would not go, and TLS goes on with the name it verified.

A connection is kept only after an exchange that ended cleanly (the whole answer read, nothing
after it, neither side closing) and for at most IDLE_SECONDS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from consentry.systems.urls import IPAddress

# Below the 5 s after which uvicorn, and many servers, close an idle connection themselves: a
# kept connection is seldom found closed (an attempt that finds it so is sent again on a new one).
IDLE_SECONDS = 4.0

# Scheme, host name, port, and the address judged for it.
Route = tuple[str, str, int, IPAddress]


@dataclass(slots=True, eq=False)
class Link:
    """One connection to a receiver."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # Whether it served an attempt before this one: then the receiver may have closed it idle.
    reused: bool = False
    idle_since: float = 0.0

    def open(self) -> bool:
        """Whether neither side has closed it (the receiver's close arrives as end of stream)."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        """Close it, without waiting for the close to finish."""
        self.writer.close()


class KeptLinks:
    """Idle connections by route, at most `most` over every route: the most recently used one
    is taken first."""

    def __init__(self, most: int, idle: float = IDLE_SECONDS) -> None:
        self._most = most
        self._idle = idle
        self._routes: dict[Route, list[Link]] = {}
        self._count = 0
        self._swept_at = 0.0

    def __len__(self) -> int:
        return self._count

    def take(self, route: Route, now: float) -> Link | None:
        """A kept connection of `route` still open and not idle too long; None if there is none."""
        links = self._routes.get(route)
        while links:
            link = links.pop()
            self._count -= 1
            if not links:
                del self._routes[route]
            if self._fresh(link, now) and link.open():
                link.reused = True
                return link
            link.close()
        return None

    def keep(self, route: Route, link: Link, now: float) -> None:
        """Keep `link` for the next attempt on `route`, unless as many are kept already."""
        self.sweep(now)
        if self._count >= self._most:
            link.close()
            return
        link.idle_since = now
        self._routes.setdefault(route, []).append(link)
        self._count += 1

    def close(self) -> None:
        """Close every kept connection."""
        for links in self._routes.values():
            for link in links:
                link.close()
        self._routes.clear()
        self._count = 0

    def sweep(self, now: float) -> None:
        """Close the links idle too long, at most once per IDLE_SECONDS: a route no attempt goes
        to any more would otherwise hold its connections open."""
        if now - self._swept_at < self._idle:
            return
        self._swept_at = now
        for route, links in list(self._routes.items()):
            fresh = []
            for link in links:
                if self._fresh(link, now):
                    fresh.append(link)
                else:
                    link.close()
            self._count -= len(links) - len(fresh)
            if fresh:
                self._routes[route] = fresh
            else:
                del self._routes[route]

    def _fresh(self, link: Link, now: float) -> bool:
        return now - link.idle_since < self._idle
