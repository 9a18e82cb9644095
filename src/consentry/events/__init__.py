"""Consent-gated tracking events: ingestion in batches, and each subject's stored events."""
