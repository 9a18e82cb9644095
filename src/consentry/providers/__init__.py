"""The registry of third parties that receive data, and which consent category lets it flow."""
