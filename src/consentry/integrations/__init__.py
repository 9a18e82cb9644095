"""Integrations: the catalogue of outside tools and schools, and learners' connections."""
