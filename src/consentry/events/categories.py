"""The operator's event name → consent category mapping (`CONSENTRY_EVENT_CATEGORIES`)."""

from __future__ import annotations

from pathlib import Path

import orjson

from consentry.policy import CATEGORIES

_WILDCARD = ".*"
_MAX_NAME = 128


class CategoryMapError(ValueError):
    """The mapping file cannot be used; the message says where and why."""


class CategoryMap:
    """Categories of event names: exact names first, then the longest matching `prefix.*`."""

    def __init__(self, exact: dict[str, str], prefixes: dict[str, str]) -> None:
        self._exact = exact
        # Keyed by the prefix without `.*`: `quiz.*` is found under `quiz`.
        self._prefixes = prefixes

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefixes)

    def category_of(self, name: str) -> str | None:
        """The category the operator gave `name`, or None."""
        found = self._exact.get(name)
        if found is not None or not self._prefixes:
            return found
        # `a.b.*` covers every name that starts with `a.b.`: exactly the names whose dotted
        # prefixes include `a.b`. Tried longest first, one dictionary look-up each.
        end = name.rfind(".")
        while end > 0:
            found = self._prefixes.get(name[:end])
            if found is not None:
                return found
            end = name.rfind(".", 0, end)
        return None


NO_MAPPING = CategoryMap({}, {})


def load_category_map(path: Path | None) -> CategoryMap:
    """The mapping in the JSON file at `path` (none without one); CategoryMapError if unusable."""
    if path is None:
        return NO_MAPPING
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as error:
        raise CategoryMapError(f"{path}: cannot be read ({error.strerror})") from None
    except orjson.JSONDecodeError as error:
        raise CategoryMapError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise CategoryMapError(
            f'{path}: must be one JSON object of event names to categories, such as {{"lesson.'
            'viewed": "performance", "quiz.*": "necessary"}'
        )
    exact: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    problems: list[str] = []
    for name, category in document.items():
        if category not in CATEGORIES:
            problems.append(f"{name!r}: {category!r} is not one of {', '.join(CATEGORIES)}")
        elif not 0 < len(name) <= _MAX_NAME:
            problems.append(f"{name!r}: a name has 1-{_MAX_NAME} characters")
        elif name.endswith(_WILDCARD) and "*" not in name[: -len(_WILDCARD)]:
            prefix = name[: -len(_WILDCARD)]
            if not prefix or prefix.startswith(".") or prefix.endswith("."):
                problems.append(f"{name!r}: a prefix pattern is a name followed by '.*'")
            else:
                prefixes[prefix] = category
        elif "*" in name:
            problems.append(f"{name!r}: '*' may only end a pattern, as in 'quiz.*'")
        else:
            exact[name] = category
    if problems:
        raise CategoryMapError(f"{path}: " + "; ".join(problems[:10]))
    return CategoryMap(exact, prefixes)
