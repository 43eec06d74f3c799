"""Errors of the store, importable without SQLAlchemy so the CLI can catch them cheaply."""


class StoreError(Exception):
    """The database cannot be used as it is (a newer schema, an unreadable file)."""
