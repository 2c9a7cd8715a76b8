"""A new-songs hook for the crawler tests: appends each call to the file named by MUSICREC_TEST_HOOK_LOG."""

from __future__ import annotations

import json
import os


def record(job_id: int, song_ids: list[int]) -> None:
    with open(os.environ["MUSICREC_TEST_HOOK_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"job_id": job_id, "song_ids": song_ids}) + "\n")


def explode(job_id: int, song_ids: list[int]) -> None:
    raise RuntimeError(f"labelling queue unavailable (job {job_id})")
