"""Every table of the service: importing this module registers them all on `Base.metadata`."""

from consentry.audit.models import AuditEntry
from consentry.consent.models import ConsentLink, ConsentRecord, ConsentState, Tombstone
from consentry.db import Base
from consentry.events.models import Event, EventAggregate
from consentry.integrations.models import (
    Connection,
    Integration,
    IntegrationChain,
    IntegrationRecord,
)
from consentry.keys.models import ApiKey
from consentry.privacy.models import ErasureConfirmToken, ErasureRequest, ErasureSystem
from consentry.providers.models import Provider
from consentry.pseudonyms import ServiceSecret
from consentry.systems.models import OutboxMessage, System, SystemEvent, WebhookDelivery

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Connection",
    "ConsentLink",
    "ConsentRecord",
    "ConsentState",
    "ErasureConfirmToken",
    "ErasureRequest",
    "ErasureSystem",
    "Event",
    "EventAggregate",
    "Integration",
    "IntegrationChain",
    "IntegrationRecord",
    "OutboxMessage",
    "Provider",
    "ServiceSecret",
    "System",
    "SystemEvent",
    "Tombstone",
    "WebhookDelivery",
]
