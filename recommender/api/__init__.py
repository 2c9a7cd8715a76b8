"""The HTTP API (FastAPI): recommendations from voice clips, sessions, catalog reads, admin crawl jobs, health."""

from recommender.api.app import create_app

__all__ = ["create_app"]
