"""Shapes of the provider endpoints: what the privacy team writes and what everyone reads."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from consentry.pagination import NEXT_CURSOR_DESCRIPTION
from consentry.providers.countries import COUNTRY_CODES

PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
PROVIDER_ID_DESCRIPTION = (
    "The provider's id: lower-case letters, digits and hyphens, up to 64, e.g. `video-cdn`."
)
DATA_ITEM_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
OPT_OUT_URL_PATTERN = r"^https://[!-~]+$"
_PROVIDER_ID = re.compile(PROVIDER_ID_PATTERN)

Kind = Literal["technology", "analytics", "payment", "support"]
# The policy's categories (consentry.policy.CATEGORIES), spelled out so the schema lists them.
Category = Literal["necessary", "performance", "functional", "customization"]
# The grounds on which personal data may leave the EEA, UK or Switzerland for the provider's
# countries (GDPR chapter V): an adequacy decision, standard contractual clauses, binding
# corporate rules, the EU-US Data Privacy Framework, or the learner's explicit consent.
# Null means no such transfer takes place.
TransferMechanism = Literal["adequacy", "SCC", "BCR", "DPF", "consent"]


def is_provider_id(value: str) -> bool:
    """Whether `value` is a well-formed provider id."""
    return _PROVIDER_ID.fullmatch(value) is not None


def _plain_text(value: str) -> str:
    # Control characters (NUL above all, which PostgreSQL refuses in text) never reach a page.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not hold control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not name an item twice")
    return values


def _assigned_country(code: str) -> str:
    if code not in COUNTRY_CODES:
        raise ValueError("is not an assigned ISO 3166-1 alpha-2 country code")
    return code


def _https_url(value: str) -> str:
    # urlsplit and .port raise ValueError on a malformed host or port; pydantic reports it.
    parts = urlsplit(value)
    if parts.port == 0 or not parts.hostname:
        raise ValueError("must name a host and a valid port")
    # A link published to every learner must not carry credentials.
    if "@" in parts.netloc:
        raise ValueError("must not carry user information")
    return value


Name = Annotated[
    str,
    Field(min_length=1, max_length=128, description="The name the learner sees."),
    AfterValidator(_plain_text),
]
Purpose = Annotated[
    str,
    Field(min_length=1, max_length=1000, description="Why the provider receives the data."),
    AfterValidator(_plain_text),
]
DataItem = Annotated[str, Field(pattern=DATA_ITEM_PATTERN)]
DataShared = Annotated[
    list[DataItem],
    Field(
        min_length=1,
        max_length=32,
        description="What the provider receives, e.g. `ip_address`; no item twice.",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_unique),
]
Country = Annotated[str, Field(pattern=COUNTRY_PATTERN), AfterValidator(_assigned_country)]
Countries = Annotated[
    list[Country],
    Field(
        min_length=1,
        max_length=len(COUNTRY_CODES),
        description="ISO 3166-1 alpha-2 codes of the countries where the data is processed.",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_unique),
]
OptOutUrl = Annotated[
    str,
    Field(
        max_length=512,
        pattern=OPT_OUT_URL_PATTERN,
        description="An https page where a learner can object to this provider directly.",
    ),
    AfterValidator(_https_url),
]
# A BCP 47 tag such as `de` or `de-CH`, kept in lower case so that a read matches it either way.
LANGUAGE_KEY_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}$"
LanguageKey = Annotated[
    str, Field(max_length=35, pattern=LANGUAGE_KEY_PATTERN), AfterValidator(str.lower)
]
Label = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_plain_text)]
ProviderId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=PROVIDER_ID_PATTERN,
        description=PROVIDER_ID_DESCRIPTION,
    ),
]


class ProviderTranslation(BaseModel):
    """A provider's texts in one more language; `data_shared` names some items in it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    purpose: Purpose
    data_shared: dict[DataItem, Label] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels of the provider's `data_shared` items in this language.",
    )


class ProviderFields(BaseModel):
    """Everything said about a provider but its id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Kind = Field(description="`technology`, `analytics`, `payment` or `support`.")
    purpose: Purpose
    data_shared: DataShared
    category: Category = Field(description="The consent category whose grant lets data flow.")
    countries: Countries
    transfer_mechanism: TransferMechanism | None = Field(
        default=None,
        description="`adequacy`, `SCC`, `BCR`, `DPF` or `consent`; null when the data stays "
        "where no transfer safeguard is needed.",
    )
    opt_out_url: OptOutUrl | None = Field(
        default=None,
        description="An https page where a learner can object to this provider directly, if any.",
    )
    translations: dict[LanguageKey, ProviderTranslation] = Field(
        default_factory=dict,
        max_length=32,
        description="Name and purpose in other languages, by language tag (`de`); "
        "`?language=` on the reads picks one.",
    )

    @model_validator(mode="after")
    def _labels_name_shared_items(self) -> ProviderFields:
        for language, translation in self.translations.items():
            unknown = set(translation.data_shared) - set(self.data_shared)
            if unknown:
                raise ValueError(
                    f"translations.{language}.data_shared names items the provider does not "
                    f"receive: {', '.join(sorted(unknown))}"
                )
        return self


class ProviderCreate(ProviderFields):
    """A new provider (POST)."""

    id: ProviderId


class ProviderReplace(ProviderFields):
    """A provider's whole description (PUT); `id`, when given, must be the one in the path."""

    id: ProviderId | None = Field(
        default=None, description="Optional; when given, the id in the path."
    )


# The stored fields a change may touch, in the order the API lists them.
EDITABLE_FIELDS: tuple[str, ...] = tuple(ProviderFields.model_fields)


class ProviderTranslationRead(BaseModel):
    """A provider's texts in one more language."""

    name: str = Field(description="The name in this language.")
    purpose: str = Field(description="The purpose in this language.")
    data_shared: dict[str, str] = Field(description="Labels in this language, by data item.")


class ProviderRead(BaseModel):
    """A provider as the registry lists it."""

    id: str = Field(description="The provider's id.")
    name: str = Field(description="Its name, in the language asked for.")
    kind: Kind = Field(description="`technology`, `analytics`, `payment` or `support`.")
    purpose: str = Field(description="Why it receives the data, in the language asked for.")
    data_shared: list[str] = Field(description="What it receives, e.g. `ip_address`.")
    category: Category = Field(description="The consent category whose grant lets data flow to it.")
    countries: list[str] = Field(
        description="ISO 3166-1 alpha-2 codes of the countries where the data is processed."
    )
    transfer_mechanism: TransferMechanism | None = Field(
        description="The safeguard for a transfer out of the EEA, UK or Switzerland (`adequacy`, "
        "`SCC`, `BCR`, `DPF`, `consent`); null when there is none."
    )
    opt_out_url: str | None = Field(
        description="An https page where a learner can object to this provider directly, if any."
    )
    translations: dict[str, ProviderTranslationRead] = Field(
        description="Every translation, by language tag."
    )
    created_at: str = Field(description="When it was added.")
    updated_at: str = Field(description="When its description last changed.")


class ProviderPage(BaseModel):
    """A page of providers, ordered by id."""

    items: list[ProviderRead] = Field(description="Providers, ordered by id.")
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)
