"""Consentry: consent and tracking for education platforms."""

__version__ = "0.1.0"
