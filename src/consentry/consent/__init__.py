"""Consent: each subject's current choice and its append-only, hash-chained history."""
