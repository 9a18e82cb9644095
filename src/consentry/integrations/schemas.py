"""Shapes of the integration endpoints: the catalogue, a learner's connections and their history."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from consentry.providers.schemas import (
    PROVIDER_ID_PATTERN,
    DataShared,
    Name,
    ProviderId,
    Purpose,
    _plain_text,
    _unique,
)

INTEGRATION_ID_PATTERN = PROVIDER_ID_PATTERN
INTEGRATION_ID_DESCRIPTION = "Lower-case letters, digits and hyphens, up to 64, e.g. `cloud-drive`."
# A path segment of its own under /v1/subjects/{subject_id}/integrations: never an integration.
RESERVED_IDS = frozenset({"history"})
SCOPE_ID_PATTERN = r"^[a-z][a-z0-9_.:-]{0,63}$"
LANGUAGE_PATTERN = r"^[a-z]{2}$"
_INTEGRATION_ID = re.compile(INTEGRATION_ID_PATTERN)

Kind = Literal["cloud_storage", "calendar", "school_roster", "learning_tool"]
Default = Literal["ask", "inform"]
Status = Literal["none", "pending", "informed", "approved", "declined", "revoked"]
Source = Literal["learner", "platform", "notice", "admin"]


def is_integration_id(value: str) -> bool:
    """Whether `value` is a well-formed integration id (`history` is not one)."""
    return _INTEGRATION_ID.fullmatch(value) is not None and value not in RESERVED_IDS


def _not_reserved(value: str) -> str:
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved and cannot name an integration")
    return value


IntegrationId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=INTEGRATION_ID_PATTERN),
    AfterValidator(_not_reserved),
]
ScopeId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=SCOPE_ID_PATTERN, examples=["files.write"]),
]
Text = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_plain_text)]
ScopeList = Annotated[
    list[ScopeId],
    Field(max_length=32, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]


class ScopeDeclaration(BaseModel):
    """One kind of access an integration asks for, and what it means for the learner."""

    model_config = ConfigDict(extra="forbid")

    id: ScopeId
    description: Text


class Translation(BaseModel):
    """An integration's texts in another language; what it leaves out stays English."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    purpose: Purpose | None = None
    scopes: dict[ScopeId, Text] = Field(default_factory=dict, max_length=32)


Translations = Annotated[
    dict[Annotated[str, Field(pattern=LANGUAGE_PATTERN)], Translation],
    Field(
        max_length=16,
        description="Texts by ISO 639-1 language code, e.g. `de`; English is the main text.",
    ),
]

_EXAMPLE_FIELDS: dict[str, Any] = {
    "name": "Cloud drive",
    "kind": "cloud_storage",
    "provider_id": "cloud-drive-inc",
    "purpose": "Saves the assignments you hand in to your own cloud drive.",
    "data_shared": ["assignments", "course_names"],
    "scopes": [
        {"id": "files.write", "description": "Save your submitted assignments in your drive."},
        {"id": "profile.read", "description": "Read your drive's account name to show it."},
    ],
    "default": "ask",
    "translations": {
        "de": {
            "name": "Cloud-Speicher",
            "purpose": "Speichert Ihre abgegebenen Aufgaben in Ihrem eigenen Cloud-Speicher.",
            "scopes": {"files.write": "Ihre abgegebenen Aufgaben im Speicher ablegen."},
        }
    },
}
EXAMPLE_INTEGRATION: dict[str, Any] = {"id": "cloud-drive", **_EXAMPLE_FIELDS}


class IntegrationFields(BaseModel):
    """Everything said about an integration but its id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Kind
    provider_id: ProviderId = Field(description="The provider that receives the data.")
    purpose: Purpose
    data_shared: DataShared
    scopes: list[ScopeDeclaration] = Field(
        min_length=1, max_length=32, description="What the integration may do; no id twice."
    )
    default: Default = Field(
        description="`ask`: nothing flows until the learner approves. `inform`: the learner is "
        "told and data may flow until they decline."
    )
    translations: Translations = Field(default_factory=dict)

    @model_validator(mode="after")
    def _scopes_agree(self) -> IntegrationFields:
        ids = [scope.id for scope in self.scopes]
        if len(set(ids)) != len(ids):
            raise ValueError("scopes must not declare an id twice")
        for language, translation in self.translations.items():
            unknown = set(translation.scopes) - set(ids)
            if unknown:
                raise ValueError(f"translations.{language} names undeclared scopes")
        return self


class IntegrationCreate(IntegrationFields):
    """A new integration (POST)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_INTEGRATION]})

    id: IntegrationId


class IntegrationReplace(IntegrationFields):
    """An integration's whole description (PUT); `id`, when given, must be the one in the path."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE_FIELDS]})

    id: IntegrationId | None = None


EDITABLE_FIELDS: tuple[str, ...] = tuple(IntegrationFields.model_fields)


class ScopeRead(BaseModel):
    """A declared scope as read."""

    id: str
    description: str


class TranslationRead(BaseModel):
    """A translation as read."""

    name: str | None = None
    purpose: str | None = None
    scopes: dict[str, str] = Field(default_factory=dict)


class IntegrationRead(BaseModel):
    """An integration as the catalogue lists it, in the language asked for."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE_INTEGRATION,
                    "created_at": "2026-12-01T09:00:00.000000Z",
                    "updated_at": "2026-12-01T09:00:00.000000Z",
                }
            ]
        }
    )

    id: str
    name: str
    kind: Kind
    provider_id: str
    purpose: str
    data_shared: list[str]
    scopes: list[ScopeRead]
    default: Default
    translations: dict[str, TranslationRead]
    created_at: str
    updated_at: str


class IntegrationPage(BaseModel):
    """A page of the catalogue, ordered by id."""

    items: list[IntegrationRead]
    next_cursor: str | None


class ConnectionRequest(BaseModel):
    """The platform asks the learner to connect (POST .../requests)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"scopes": ["files.write"]}]}
    )

    scopes: Annotated[ScopeList, Field(min_length=1, description="Declared scopes to ask for.")]


class ConnectionDecision(BaseModel):
    """The learner's answer (PUT): approve some declared scopes, or decline."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"decision": "approve", "scopes": ["files.write"]}]},
    )

    decision: Literal["approve", "decline"]
    scopes: ScopeList = Field(
        default_factory=list, description="The scopes approved: at least one; none to decline."
    )

    @model_validator(mode="after")
    def _approval_names_scopes(self) -> ConnectionDecision:
        if self.decision == "approve" and not self.scopes:
            raise ValueError("an approval names at least one scope")
        return self


_EXAMPLE_CONNECTION: dict[str, Any] = {
    "integration_id": "cloud-drive",
    "status": "approved",
    "scopes": ["files.write"],
    "requested_at": "2026-12-01T09:00:00.000000Z",
    "decided_at": "2026-12-01T09:05:00.000000Z",
    "source": "learner",
}


class ConnectionRead(BaseModel):
    """A learner's connection to one integration; data may flow when `approved` or `informed`."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_CONNECTION]})

    integration_id: str
    status: Status
    scopes: list[str]
    requested_at: str | None
    decided_at: str | None
    source: Source | None


class ConnectionPage(BaseModel):
    """Every integration with the learner's connection, ordered by integration id."""

    items: list[ConnectionRead]
    next_cursor: str | None


class IntegrationRecordRead(BaseModel):
    """One record of a learner's integration history, chained to the one before."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c8a1e-3b7d-4c1a-9a57-2f0e4f7a1b2c",
                    "recorded_at": "2026-12-01T09:05:00.000000Z",
                    "integration_id": "cloud-drive",
                    "status": "approved",
                    "scopes": ["files.write"],
                    "source": "learner",
                    "actor": "subject",
                    "hash": "9b0c…",
                    "prev_hash": "41d2…",
                }
            ]
        }
    )

    id: str
    recorded_at: str
    integration_id: str
    status: Status
    scopes: list[str]
    source: Source
    actor: str
    hash: str
    prev_hash: str | None


class IntegrationHistoryPage(BaseModel):
    """A page of the learner's integration history, newest first."""

    items: list[IntegrationRecordRead]
    next_cursor: str | None
