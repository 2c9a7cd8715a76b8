"""Shared fixtures: isolated settings per test, migrated catalogs on SQLite and PostgreSQL, real shared data."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import temporary_pg_database

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MUSICREC_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


if os.environ.get("PYTEST_XDIST_WORKER"):
    # each pytest-xdist worker, and every process it starts, computes on one thread: one worker per core, instead of
    # every torch/BLAS pool sizing itself to all the cores and the workers' threads fighting over them
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    # and keeps its own numba cache (librosa compiles with cache=True into site-packages): two workers compiling the
    # same function into one cache on a fresh venv crashed a worker with a segmentation fault in numba (seen in CI)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "musicrec-tests-numba" / os.environ["PYTEST_XDIST_WORKER"]))

OWN_SLOT_MODULES = ("tests/cli/test_demo.py",)  # each of its tests is a whole demo run (minutes)
REDIS_LOCK = Path(tempfile.gettempdir()) / "musicrec-tests-redis.lock"


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook; without the plugin it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`make test` runs pytest-xdist with `--dist loadscope --no-loadscope-reorder`: a module's tests stay on one worker
    (its module fixtures are built once), but each test of OWN_SLOT_MODULES is a unit of its own, so the two demos
    start early and side by side instead of one after the other on one worker."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in OWN_SLOT_MODULES else module

    return ModuleScheduling(config, log)


@pytest.fixture(autouse=True)
def redis_one_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked `redis` run one at a time, across pytest-xdist workers too: the fault test stops and restarts Redis."""
    if request.node.get_closest_marker("redis") is None:
        yield
        return
    with REDIS_LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own var/store folders and no musicrec.toml from the working directory."""
    from catalog.db import get_engine
    from catalog.settings import get_settings, reload_settings

    var = tmp_path / "var"
    monkeypatch.setenv("MUSICREC_VAR_DIR", str(var))
    monkeypatch.setenv("MUSICREC_STORE_DIR", str(var / "store"))
    monkeypatch.setenv("MUSICREC_CONFIG", str(tmp_path / "musicrec.toml"))
    for key in ("MUSICREC_DATABASE_URL", "MUSICREC_BROKER_URL", "MUSICREC_RESULT_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    reload_settings()
    yield var
    get_engine.cache_clear()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real development data sets (../shared/data); a missing folder fails in CI."""
    if not SHARED_DATA.is_dir():
        from tests.support.services import in_ci

        if in_ci():
            pytest.fail(f"shared data not found at {SHARED_DATA}", pytrace=False)
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (fails in CI when PostgreSQL is down)."""
    with temporary_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated catalog on each backend, set as the configured database for the test."""
    from catalog import migrate
    from catalog.db import get_engine
    from catalog.settings import reload_settings

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
        monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
        reload_settings()
        migrate.upgrade("head", url)
        yield url
        get_engine.cache_clear()
        return
    with temporary_pg_database() as url:
        monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
        reload_settings()
        migrate.upgrade("head", url)
        yield url
        get_engine(url).dispose()
