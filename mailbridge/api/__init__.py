"""The HTTP API: the health endpoints, and the two dialects as thin adapters over the draft
and send services."""

from mailbridge.api.app import create_app

__all__ = ["create_app"]
