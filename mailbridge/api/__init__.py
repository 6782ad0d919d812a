"""The HTTP API: health endpoints now, the two draft dialects on top of DraftService."""

from mailbridge.api.app import create_app

__all__ = ["create_app"]
