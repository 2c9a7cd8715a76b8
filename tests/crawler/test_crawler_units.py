"""Crawler parts in-process: loaders, rule files, file tags, audio checks, settings, CLI argument errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import CrawlJob
from catalog.store import FileStore
from crawler import audiofile
from crawler import settings as crawl_settings
from crawler.loaders import parse_duration
from crawler.rules import RulesError, load_rules, parse_rules, site_path
from crawler.tags import read_tags
from tests.support.crawler_site import convert, tone

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "start_urls": ["http://example.org/list"],
    "links": {"listing": {"allow": ["/list"]}, "song": {"allow": ["/song/\\d+"]}},
    "fields": {"title": "h1::text", "audio_url": {"xpath": "//audio/@src"}},
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("245", 245.0), ("4:05", 245.0), ("1:04:05", 3845.0), ("PT4M5S", 245.0), (" 0:02 ", 2.0), ("soon", None), ("0", None), (12, 12.0)],
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_rules_parse_and_reject() -> None:
    rules = parse_rules(GOOD, "good.toml")
    assert rules.name == "good" and rules.allowed_domains == ("example.org",) and rules.order == "depth"
    assert rules.fields["title"].css == "h1::text" and rules.fields["audio_url"].xpath == "//audio/@src"
    bad_cases = {
        "start_urls is required": {**GOOD, "start_urls": []},
        "links.song.allow is required": {**GOOD, "links": {}},
        "fields.audio_url is required": {**GOOD, "fields": {"title": "h1::text"}},
        "bad regular expression": {**GOOD, "links": {"song": {"allow": ["(unclosed"]}}},
        "unknown field(s) colour": {**GOOD, "fields": {**GOOD["fields"], "colour": "b::text"}},
        "order must be": {**GOOD, "order": "random"},
        "bad xpath selector": {**GOOD, "fields": {**GOOD["fields"], "album": {"xpath": "//div[@class='a'"}}},
        "bad css selector": {**GOOD, "fields": {**GOOD["fields"], "album": {"css": "div..x::text"}}},
        "exactly one of css, xpath, url_re": {**GOOD, "fields": {"title": {"css": "h1", "xpath": "//h1"}, "audio_url": "a"}},
    }
    for message, data in bad_cases.items():
        with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_rules(data, "bad.toml")


def test_shipped_rule_file_loads_and_missing_site_is_named(tmp_path: Path) -> None:
    rules = load_rules(site_path("example"))
    assert rules.song.allow and "title" in rules.fields
    with pytest.raises(RulesError, match="no rule file for site 'nosuch'.*available: .*example"):
        site_path("nosuch")
    broken = tmp_path / "broken.toml"
    broken.write_text("start_urls = [")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(broken)


def test_file_tags_mp3_and_untagged(tmp_path: Path) -> None:
    from mutagen.id3 import ID3, TIT2, TPE1, USLT

    mp3 = convert(tone(tmp_path / "x.wav", 300), tmp_path / "x.mp3")
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Tagged"))
    tags.add(TPE1(encoding=3, text="Someone"))
    tags.add(USLT(encoding=3, lang="eng", desc="", text="[00:01.00]hi"))
    tags.save(str(mp3))
    found = read_tags(mp3)
    assert (found["title"], found["artist"], found["album"], found["lyrics"]) == ("Tagged", "Someone", None, "[00:01.00]hi")
    assert read_tags(tone(tmp_path / "y.wav", 400))["title"] is None
    assert read_tags(tmp_path / "missing.mp3")["title"] is None


def test_stage_and_verify_accepts_audio_and_rejects_broken(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    wav = tone(tmp_path / "a.wav", 440).read_bytes()
    checked = audiofile.stage_and_verify(store, wav, "http://x/a.wav")
    assert checked.format == "wav" and checked.duration_s == pytest.approx(1.0) and Path(checked.tmp_path).is_file()
    dest = audiofile.commit_to_store(store, checked.as_dict())
    assert dest.is_file() and not Path(checked.tmp_path).exists() and checked.sha256 in dest.name
    silent = tmp_path / "silent.wav"
    import numpy as np
    import soundfile as sf

    sf.write(str(silent), np.zeros(16000, dtype=np.float32), 16000)
    cases = {
        "empty response": b"",
        "truncated wav": wav[: len(wav) // 3],
        "not audio": b"<!DOCTYPE html><html>login</html>",
        "silent": silent.read_bytes(),
        "unsupported format": b"\x00\x01\x02\x03" * 100,
    }
    for words, data in cases.items():
        with pytest.raises(audiofile.AudioRejected, match=words):
            audiofile.stage_and_verify(store, data, "http://x/bad")
    assert list(audiofile.staging_dir(store).iterdir()) == []


def test_settings_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "musicrec.toml"
    config.write_text('[crawler]\nuser_agent = "from-file"\ndownload_timeout = 7\n')
    monkeypatch.setenv("MUSICREC_CONFIG", str(config))
    monkeypatch.setenv("MUSICREC_CRAWL_DOWNLOAD_TIMEOUT", "9")
    monkeypatch.setenv("MUSICREC_CRAWL_MAX_PAGES", "77")  # one of our own settings, not a Scrapy one
    from catalog.settings import reload_settings

    reload_settings()
    built = crawl_settings.build({"CONCURRENT_REQUESTS_PER_DOMAIN": 1, "USER_AGENT": "from-cmdline"})
    assert built["USER_AGENT"] == "from-cmdline" and built["DOWNLOAD_TIMEOUT"] == "9"
    assert crawl_settings.build()["USER_AGENT"] == "from-file" and crawl_settings.build()["CLOSESPIDER_PAGECOUNT"] == 77
    assert "MAX_PAGES" not in crawl_settings.build() and built.getpriority("DOWNLOAD_TIMEOUT") == crawl_settings.USER_PRIORITY
    assert built.getpriority("USER_AGENT") == 40 and built["DOWNLOAD_MAXSIZE"] == 10 * 1024 * 1024
    assert built["ROBOTSTXT_OBEY"] is True and built["AUTOTHROTTLE_ENABLED"] is True and built["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert crawl_settings.build(order="breadth")["SCHEDULER_MEMORY_QUEUE"].endswith("FifoMemoryQueue")
    with pytest.raises(ValueError, match="crawl order"):
        crawl_settings.build(order="sideways")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch"], "unknown spider 'nosuch'"),
        (["directory"], "needs -a url="),
        (["directory", "-a", "url=ftp://x/"], "http(s) URL"),
        (["site", "-a", "site=nosuch"], "no rule file for site 'nosuch'"),
        (["jamendo", "-a", "client_id=x", "-a", "limit=-3"], "limit must be a positive integer"),
        (["directory", "-a", "url=http://x/", "-a", "colour=red"], "does not take argument"),
    ],
)
def test_crawl_rejects_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     argv: list[str], message: str) -> None:
    """Bad arguments: exit 2, a clear message, and a failed job row saying why (checked before any reactor starts)."""
    from catalog import migrate
    from catalog.settings import reload_settings
    from crawler.run import main

    url = f"sqlite:///{tmp_path / 'c.db'}"
    monkeypatch.setenv("MUSICREC_DATABASE_URL", url)
    reload_settings()
    migrate.upgrade("head", url)
    if argv[0] == "nosuch":
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
        return
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    with session_scope(url) as s:
        job = s.scalars(select(CrawlJob)).one()
        assert job.status == "failed" and message in (job.message or "")


def test_write_batch_isolates_a_song_stored_meanwhile(db_url: str, tmp_path: Path) -> None:
    """A batch that hits a unique constraint is retried song by song: the others are stored whole, the offender not at all."""
    from sqlalchemy import func
    from sqlalchemy.exc import IntegrityError

    from catalog.fingerprint import song_fingerprint
    from catalog.models import AudioAsset, Lyrics, Song
    from crawler import jobs
    from crawler.context import CrawlContext
    from crawler.writer import write_batch

    store = FileStore()
    job_id = jobs.create_job("site", {}, db_url)
    ctx = CrawlContext(job_id, db_url, store, jobs.JobRecorder(job_id, db_url))

    def item(i: int, fp: str | None = None) -> dict[str, object]:
        checked = audiofile.stage_and_verify(store, tone(tmp_path / f"{i}.wav", 300 + 10 * i).read_bytes(), f"http://x/{i}.wav")
        return {"title": f"T{i}", "artist": "Same Artist", "album": None, "source_url": f"http://x/song/{i}", "audio_url": f"http://x/{i}.wav",
                "fingerprint": fp or song_fingerprint(f"T{i}", "Same Artist", None, None), "audio": checked.as_dict(),
                "lyrics_raw": "[00:00.50]la", "lyric_lines": [{"time_s": 0.5, "text": "la"}], "tags": ["x"]}

    first = write_batch(ctx, [item(0)])
    assert isinstance(first[0], int)
    clash = song_fingerprint("T0", "Same Artist", None, None)  # as if another crawl stored this song meanwhile
    results = write_batch(ctx, [item(1), item(2, fp=clash), item(3)])
    assert isinstance(results[0], int) and isinstance(results[2], int) and isinstance(results[1], IntegrityError)
    with session_scope(db_url) as s:
        assert s.scalar(select(func.count()).select_from(Song)) == 3
        assert s.scalar(select(func.count()).select_from(AudioAsset)) == 3
        assert s.scalar(select(func.count()).select_from(Lyrics)) == 3
        titles = sorted(s.scalars(select(Song.title)))
        assert titles == ["T0", "T1", "T3"]
        assert len({song.artist_id for song in s.scalars(select(Song))}) == 1
