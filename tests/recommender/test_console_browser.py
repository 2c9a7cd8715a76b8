"""The web console in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
against a real uvicorn server on 127.0.0.1 with a small real catalog (4-quadrant audio clips, real topic models).

Listen records a real EmoDB clip through Chromium's fake microphone with MediaRecorder (the upload is WebM/Opus),
shows the heard emotion and a playlist, picks a song, asks again and gets a playlist from the picked topic, and
plays a song (seeking needs range requests).
Topics and Pipeline render their data; the Pipeline page refuses without a key. Each page is saved as a PNG
(desktop and phone width) under var/test-artifacts/console/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import CrawlError, CrawlJob, RecommendationSession, Song, Topic, TopicModel
from tests.support.console_support import artifacts_dir, build_console_catalog, chromium, fake_mic_wav, require_browser, screenshot
from tests.support.recommender_support import Server, emodb_clips, tiny_speech_model  # noqa: F401 - tiny_speech_model is a fixture

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.slow
KEY = "console-test-key"
PHONE = 390
DESKTOP = 1280


@pytest.fixture(scope="session", autouse=True)  # session: set up before the session-scoped speech model
def browser_present() -> None:
    """Before anything is built: skip locally, fail in CI without Chromium, chromedriver or selenium."""
    require_browser()


@pytest.fixture(scope="module")
def console(shared_data: Path, tiny_speech_model: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811 - the fixture imported above
    """Catalog + live server: (base url, catalog, database url)."""
    from catalog import migrate
    from catalog.db import get_engine
    from catalog.settings import reload_settings

    var = tmp_path_factory.mktemp("console-var")
    url = f"sqlite:///{var / 'catalog.db'}"
    env = {
        "MUSICREC_DATABASE_URL": url,
        "MUSICREC_VAR_DIR": str(var),
        "MUSICREC_STORE_DIR": str(var / "store"),
        "MUSICREC_SPEECH_MODEL": str(tiny_speech_model),
        "MUSICREC_API_KEYS": json.dumps([KEY]),
        "MUSICREC_CRAWL_DISPATCH": "false",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        reload_settings()
        migrate.upgrade("head", url)
        cat = build_console_catalog(url, shared_data)
        with session_scope(url) as s:  # pipeline data for the admin page: a crawl job with errors, a failed song
            job = CrawlJob(
                spider="site", args={"start_url": "http://127.0.0.1:9/"}, status="running", pages=12, items=9, new_songs=7, duplicates=1, dropped=1, errors=2
            )
            job.error_rows = [CrawlError(url="http://127.0.0.1:9/song/4", stage="download", message="HTTP 404 on the audio file")]
            s.add(job)
            failed = s.get(Song, cat.songs["sad"][-1])
            failed.status, failed.failed_stage, failed.failure_reason = "failed", "features", "corrupt or truncated ogg file"
        get_engine.cache_clear()
        server = Server(env).start()
        try:
            yield server.url, cat, url
        finally:
            server.stop()
            reload_settings()


@pytest.fixture(scope="module")
def mic_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = next(p for p, label, _ in emodb_clips(shared_data, per_label=1) if label == "sad")
    return fake_mic_wav(src, tmp_path_factory.mktemp("mic") / "clip.wav")


@pytest.fixture(scope="module")
def browser(console, mic_clip: Path, tmp_path_factory: pytest.TempPathFactory):
    driver = chromium(tmp_path_factory.mktemp("chromium") / "profile", fake_audio=mic_clip)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, script: str, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    shown = driver.execute_script("return (document.getElementById('status') || document.getElementById('admin-status') || {}).textContent")
    raise AssertionError(f"timed out waiting for {what}; the page's status line says {shown!r}")


def playlist(driver: WebDriver) -> list[dict[str, Any]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#playlist li')]"
        ".map(li => ({id: +li.dataset.songId, topic: li.dataset.topicId, title: li.querySelector('.song-title').textContent}))"
    )


NOTE_UPLOADS = """window.uploads = [];
const pass = window.fetch;
window.fetch = async (url, opts) => {
  const clip = opts && opts.body instanceof FormData ? opts.body.get('audio') : null;
  if (clip) {
    const head = new Uint8Array(await clip.slice(0, 4).arrayBuffer());
    window.uploads.push({name: clip.name, type: clip.type, size: clip.size, magic: [...head].map(b => b.toString(16).padStart(2, '0')).join('')});
  }
  return pass(url, opts);
};"""  # notes what the page uploads: file name, type, size and the container's first bytes


def test_listen_records_the_voice_learns_from_a_pick_and_plays_a_song(console, browser, mic_clip: Path) -> None:
    base, cat, url = console
    d = browser
    d.get(base + "/")
    d.find_element("id", "listener").send_keys("browser-listener")
    d.execute_script(NOTE_UPLOADS)
    d.find_element("id", "record").click()
    wait_for(d, "return document.getElementById('record').getAttribute('aria-pressed') === 'true'", 10, "recording to start")
    assert d.find_element("id", "record").get_attribute("data-recorder") == "mediarecorder"  # not the WAV fallback
    time.sleep(2.5)  # the fake microphone plays the EmoDB clip in a loop
    assert d.find_element("id", "rec-time").text.endswith("s / 8 s")  # the recording time is shown
    d.find_element("id", "record").click()
    wait_for(d, "return !document.getElementById('result').hidden && document.querySelectorAll('#playlist li').length > 0", 60, "the first playlist")
    # the server heard Chrome's MediaRecorder output: a WebM (EBML magic 1a45dfa3) with Opus, named .webm
    [upload] = d.execute_script("return window.uploads")
    assert upload["name"] == "recording.webm" and upload["magic"] == "1a45dfa3", upload
    assert upload["type"].startswith("audio/webm") and "opus" in upload["type"] and upload["size"] > 2000, upload
    assert d.find_element("id", "record").get_attribute("data-mime") == upload["type"]
    emotion = d.find_element("id", "emotion").get_attribute("data-emotion")
    assert emotion in cat.songs
    probs = d.execute_script("return [...document.querySelectorAll('#probabilities .bar-row')].map(r => r.getAttribute('aria-label'))")
    assert len(probs) == 4 and all("percent" in p for p in probs)
    first = playlist(d)
    with session_scope(url) as s:
        topics = {t.id: t for t in s.scalars(select(Topic).join(TopicModel).where(TopicModel.emotion == emotion, TopicModel.active.is_(True)))}
    # step 1: one song per topic of the heard emotion, all of that emotion
    assert {int(x["topic"]) for x in first} == set(topics) and {x["id"] for x in first} <= set(cat.songs[emotion])
    assert d.execute_script("return localStorage.getItem('musicrec.listener')") == "browser-listener"
    screenshot(d, artifacts_dir() / "listen-desktop.png", DESKTOP)

    # The listener token (issued by servers with session ownership) goes with every later request as
    # X-Listener-Token: use the issued one, or store one as such a server would have.
    token = d.execute_script(
        """const k = 'musicrec.token.browser-listener';
        if (!localStorage.getItem(k)) localStorage.setItem(k, 'token-kept-by-the-browser');
        window.sent = [];
        const pass = window.fetch;
        window.fetch = (url, opts) => { window.sent.push([String(url), (opts && opts.headers) || {}]); return pass(url, opts); };
        return localStorage.getItem(k);"""
    )
    picked = max(first, key=lambda x: topics[int(x["topic"])].size)  # the largest topic has unheard songs left
    d.find_element("css selector", f"#playlist li[data-song-id='{picked['id']}'] button.pick").click()
    wait_for(d, f"return document.querySelector(\"#playlist li[data-song-id='{picked['id']}']\").dataset.event === 'pick'", 15, "the pick")
    d.find_element("id", "again").click()
    wait_for(
        d,
        f"return ![...document.querySelectorAll('#playlist li')].some(li => li.dataset.songId === '{picked['id']}')"
        " && document.querySelectorAll('#playlist li').length > 0",
        60,
        "the second playlist",
    )
    second = playlist(d)
    assert second[0]["topic"] == picked["topic"], (picked, second)  # learned: the picked topic comes first
    assert picked["id"] not in [x["id"] for x in second]
    assert f"Preferred topics: {picked['topic']}." in d.find_element("id", "session-info").text
    sent = d.execute_script("return window.sent")
    assert [u.split("/v1/")[1].split("/")[0] for u, _ in sent] == ["sessions", "recommendations"]
    assert all(h.get("X-Listener-Token") == token for _, h in sent), sent

    # the first song's player loads its audio, and seeking works (Chromium only seeks with range requests)
    ok = d.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const a = document.querySelector('#playlist li audio');
        a.preload = 'auto';
        a.addEventListener('error', () => done({error: a.error && a.error.code}));
        a.addEventListener('seeked', () => done({t: a.currentTime, seekable: a.seekable.length ? a.seekable.end(0) : 0, duration: a.duration}));
        a.addEventListener('loadedmetadata', () => { a.currentTime = 12; }, {once: true});
        a.load();"""
    )
    assert "error" not in ok, ok
    assert ok["duration"] > 20 and ok["seekable"] > 20 and abs(ok["t"] - 12) < 1, ok
    screenshot(d, artifacts_dir() / "listen-phone.png", PHONE)

    # abandon ends the session; a clip chosen with the file picker starts a new one at step 1
    d.find_element("id", "abandon").click()
    wait_for(d, "return document.getElementById('status').textContent.includes('abandoned')", 15, "the abandon")
    with session_scope(url) as s:
        assert s.scalars(select(RecommendationSession.status)).all() == ["abandoned"]
    d.find_element("id", "clip-file").send_keys(str(mic_clip))
    d.find_element("css selector", "#upload button[type=submit]").click()
    wait_for(d, "return document.getElementById('status').textContent.includes('Here is your playlist')", 60, "the playlist for the chosen file")
    heard = d.find_element("id", "emotion").get_attribute("data-emotion")
    with session_scope(url) as s:
        assert sorted(s.scalars(select(RecommendationSession.status)).all()) == ["abandoned", "active"]
        fresh = set(s.scalars(select(Topic.id).join(TopicModel).where(TopicModel.emotion == heard, TopicModel.active.is_(True))))
    assert {int(x["topic"]) for x in playlist(d)} == fresh  # step 1 again: one song per topic


def test_listen_explains_a_refused_microphone_and_falls_back_to_wav_without_mediarecorder(console, browser) -> None:
    base, cat, _ = console
    d = browser
    d.get(base + "/")
    d.find_element("id", "listener").send_keys("fallback-listener")
    # a refused microphone (as getUserMedia rejects when the person says no) gets a clear message, no recording
    d.execute_script("navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'))")
    d.find_element("id", "record").click()
    wait_for(d, "return document.getElementById('status').classList.contains('error')", 10, "the refusal message")
    assert "microphone was refused" in d.find_element("id", "status").text
    assert d.find_element("id", "record").get_attribute("aria-pressed") == "false"

    # a browser without MediaRecorder records through Web Audio and uploads 16-bit PCM WAV, which the server hears
    d.refresh()
    d.execute_script("delete window.MediaRecorder; window.MediaRecorder = undefined;" + NOTE_UPLOADS)
    d.find_element("id", "record").click()
    wait_for(d, "return document.getElementById('record').getAttribute('aria-pressed') === 'true'", 10, "recording to start")
    assert d.find_element("id", "record").get_attribute("data-recorder") == "wav"
    time.sleep(2.0)
    d.find_element("id", "record").click()
    wait_for(d, "return document.getElementById('status').textContent.includes('Here is your playlist')", 60, "the playlist for the WAV recording")
    [upload] = d.execute_script("return window.uploads")
    assert upload["name"] == "recording.wav" and upload["type"] == "audio/wav" and upload["magic"] == "52494646", upload  # RIFF
    assert d.find_element("id", "emotion").get_attribute("data-emotion") in cat.songs


def test_topics_page_shows_descriptions_map_heatmap_and_players(console, browser) -> None:
    base, cat, url = console
    d = browser
    d.get(base + "/topics?emotion=happy")
    with session_scope(url) as s:
        tm = s.scalars(select(TopicModel).where(TopicModel.emotion == "happy", TopicModel.active.is_(True))).one()
        n_topics, n_songs = len(tm.topics), (tm.metrics or {})["songs"]
    cards = d.find_elements("css selector", "article.topic")
    assert len(cards) == n_topics >= 2
    text = cards[0].find_element("css selector", ".description").text
    assert "listen to" in text and "typical of the emotion" not in text
    assert any(cat.titles[sid] in text for sid in cat.songs["happy"])
    assert d.find_elements("css selector", "article.topic table.measures th[scope=row]")[0].text.startswith("Tempo")
    dots = d.find_elements("css selector", "#song-map circle.song-dot")
    assert len(dots) == n_songs and len({dot.get_attribute("fill") for dot in dots}) >= 2
    headers = [h.get_attribute("textContent").strip() for h in d.find_elements("css selector", "#heatmap thead th.vertical")]
    assert headers and not any(h.startswith("w") and h[1:].isdigit() for h in headers)  # named by sound, not codeword id
    assert len(d.find_elements("css selector", "#heatmap tbody tr")) == n_topics
    players = d.find_elements("css selector", "article.topic audio")
    assert len(players) == n_songs
    src = players[0].get_attribute("src")
    r = httpx.get(src, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100 and r.headers["content-type"] == "audio/ogg"
    screenshot(d, artifacts_dir() / "topics-desktop.png", DESKTOP)
    screenshot(d, artifacts_dir() / "topics-phone.png", PHONE)


def test_pipeline_page_refuses_without_a_key_then_shows_status_and_manages_schedules(console, browser) -> None:
    base, cat, _ = console
    d = browser
    d.get(base + "/admin")
    d.execute_script("localStorage.removeItem('musicrec.apiKey')")
    d.refresh()
    wait_for(d, "return document.getElementById('admin-status').textContent.includes('needs an admin API key')", 10, "the key prompt")
    assert not d.find_element("id", "admin-data").is_displayed()
    screenshot(d, artifacts_dir() / "pipeline-no-key.png", PHONE)
    d.find_element("id", "api-key").send_keys("wrong-key")
    d.find_element("css selector", "#key-form button[type=submit]").click()
    wait_for(d, "return document.getElementById('admin-status').textContent.includes('Refused')", 10, "the refusal")
    assert "403" in d.find_element("id", "admin-status").text and not d.find_element("id", "admin-data").is_displayed()

    d.find_element("id", "api-key").send_keys(KEY)
    d.find_element("css selector", "#key-form button[type=submit]").click()
    wait_for(d, "return !document.getElementById('admin-data').hidden", 15, "the pipeline data")
    states = dict(d.execute_script("return [...document.querySelectorAll('#song-states tbody tr')].map(tr => [tr.dataset.state, +tr.cells[1].textContent])"))
    total = sum(len(v) for v in cat.songs.values())
    assert states["topics"] == total - 1 and states["failed"] == 1
    failed = d.find_element("css selector", "#failed-songs tbody").text
    assert "features" in failed and "corrupt or truncated ogg file" in failed
    job = d.find_element("css selector", "#crawl-jobs tbody tr").text
    assert "site" in job and "running" in job and "HTTP 404 on the audio file" in job
    assert "crawl" in d.find_element("id", "queues").text

    d.find_element("id", "s-args").send_keys("site=example")
    d.find_element("id", "s-every").send_keys("6h")
    d.find_element("id", "s-name").send_keys("nightly-demo")
    d.find_element("css selector", "#schedule-form button[type=submit]").click()
    wait_for(d, "return !!document.querySelector(\"#schedules tr[data-name='crawl:nightly-demo']\")", 15, "the new schedule")
    row = d.find_element("css selector", "#schedules tr[data-name='crawl:nightly-demo']").text
    assert "every 6 hours" in row and "site=example" in row
    screenshot(d, artifacts_dir() / "pipeline-desktop.png", DESKTOP)
    screenshot(d, artifacts_dir() / "pipeline-phone.png", PHONE)
    d.find_element("css selector", "#schedules tr[data-name='crawl:nightly-demo'] button.danger").click()
    wait_for(d, "return !document.querySelector(\"#schedules tr[data-name='crawl:nightly-demo']\")", 15, "the removal")
    r = httpx.get(base + "/v1/admin/schedules", headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["schedules"] == []
