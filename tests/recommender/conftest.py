"""Fixtures of the API tests: a migrated catalog per backend (SQLite and PostgreSQL) and one live server on it, shared
by the API test modules of this package (as when they were one module: one server per backend keeps them fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.recommender_support import ADMIN_KEY, BUSY_S, Catalog, Server, emodb_clips, make_catalog, tiny_speech_model  # noqa: F401 - tiny_speech_model is a fixture


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A migrated catalog per backend, shared by the API test modules."""
    from catalog import migrate
    from catalog.db import get_engine
    from tests.support.services import temporary_pg_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'catalog.db'}"
        migrate.upgrade("head", url)
        yield url
        get_engine(url).dispose()
        return
    with temporary_pg_database() as url:
        migrate.upgrade("head", url)
        yield url
        get_engine(url).dispose()


@pytest.fixture(scope="package")
def server_env(backend_url: str, tiny_speech_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811 - the fixture imported above
    var = tmp_path_factory.mktemp("api-var")
    return {
        "MUSICREC_DATABASE_URL": backend_url,
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_SPEECH_MODEL": str(tiny_speech_model),
        "MUSICREC_API_KEYS": json.dumps([ADMIN_KEY]),
        "MUSICREC_MAX_CLIP_S": "12",
        "MUSICREC_MAX_UPLOAD_MB": "1",
        "MUSICREC_CRAWL_DISPATCH": "false",
        "MUSICREC_DB_BUSY_TIMEOUT_S": str(BUSY_S),
        "MUSICREC_CRAWL_ALLOW_HOSTS": json.dumps(["127.0.0.1"]),
    }


@pytest.fixture(scope="package")
def live(server_env: dict[str, str], backend_url: str):
    cat = make_catalog(backend_url)
    server = Server(server_env).start()
    try:
        yield server, cat, backend_url
    finally:
        server.stop()


@pytest.fixture(scope="package")
def clip(shared_data: Path) -> Path:
    return emodb_clips(shared_data, per_label=1)[0][0]
