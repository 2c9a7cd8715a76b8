"""The Celery app of the tests' worker processes: `workers.app` with the untrained reference labeller installed.

`Pipeline.start_worker` runs `celery -A tests.support.worker_app worker ...`: this module installs the labeller
before the worker forks its pool, so every pool process labels with it. The product's `musicrec worker` (and
`Pipeline.start_worker(via_cli=True)`) labels with the active emotion model.
"""

from __future__ import annotations

from tests.support.reference_labeller import reference_labeller
from workers import stages
from workers.app import app

stages.use_labeller(reference_labeller)

__all__ = ["app"]
