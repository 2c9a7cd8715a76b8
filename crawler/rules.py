"""Site rule files (`crawler/sites/NAME.toml`): where to start, which links to follow, how to read a song page."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SITES_DIR = Path(__file__).resolve().parent / "sites"
FIELDS = ("title", "artist", "album", "duration", "lyrics", "lyrics_url", "audio_url", "source_id", "tags")
REQUIRED_FIELDS = ("title", "audio_url")


class RulesError(ValueError):
    """A rule file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class LinkRule:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    restrict_css: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldRule:
    """One of css / xpath / url_re, then an optional `re` applied to what it found."""

    css: str | None = None
    xpath: str | None = None
    url_re: str | None = None
    re: str | None = None


@dataclass(frozen=True)
class SiteRules:
    name: str
    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...]
    order: str
    listing: LinkRule
    song: LinkRule
    follow_from_songs: bool
    fields: dict[str, FieldRule] = field(default_factory=dict)
    path: str = ""


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RulesError(f"{where} must be a string or a list of strings")


def _link_rule(raw: Any, where: str) -> LinkRule:
    if raw is None:
        return LinkRule()
    if not isinstance(raw, dict):
        raise RulesError(f"{where} must be a table")
    rule = LinkRule(_strings(raw.get("allow"), f"{where}.allow"), _strings(raw.get("deny"), f"{where}.deny"),
                    _strings(raw.get("restrict_css"), f"{where}.restrict_css"))
    for pattern in rule.allow + rule.deny:
        _compile(pattern, where)
    return rule


def _compile(pattern: str, where: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise RulesError(f"{where}: bad regular expression {pattern!r}: {exc}") from exc


def _check_selector(css: str | None, xpath: str | None, where: str) -> None:
    """Try the selector on an empty page, so a typo is reported before crawling."""
    from parsel import Selector

    probe = Selector(text="<html><body></body></html>")
    try:
        if css:
            probe.css(css)
        if xpath:
            probe.xpath(xpath)
    except Exception as exc:  # parsel/cssselect/lxml raise various types
        kind, expr = ("css", css) if css else ("xpath", xpath)
        raise RulesError(f"{where}: bad {kind} selector {expr!r}: {exc}") from exc


def _field_rule(name: str, raw: Any) -> FieldRule:
    if isinstance(raw, str):
        raw = {"css": raw}
    if not isinstance(raw, dict):
        raise RulesError(f"fields.{name} must be a CSS string or a table with css/xpath/url_re/re")
    unknown = set(raw) - {"css", "xpath", "url_re", "re"}
    if unknown:
        raise RulesError(f"fields.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    sources = [k for k in ("css", "xpath", "url_re") if raw.get(k)]
    if len(sources) != 1:
        raise RulesError(f"fields.{name} needs exactly one of css, xpath, url_re")
    for key in ("url_re", "re"):
        if raw.get(key):
            _compile(raw[key], f"fields.{name}.{key}")
    _check_selector(raw.get("css"), raw.get("xpath"), f"fields.{name}")
    return FieldRule(raw.get("css"), raw.get("xpath"), raw.get("url_re"), raw.get("re"))


def parse_rules(data: dict[str, Any], path: str = "<rules>") -> SiteRules:
    """Check and convert a parsed rule file."""
    try:
        start_urls = _strings(data.get("start_urls"), "start_urls")
        if not start_urls:
            raise RulesError("start_urls is required")
        for url in start_urls:
            if urlparse(url).scheme not in ("http", "https"):
                raise RulesError(f"start URL {url!r} is not http(s)")
        order = data.get("order", "depth")
        if order not in ("depth", "breadth"):
            raise RulesError(f"order must be 'depth' or 'breadth', got {order!r}")
        links = data.get("links", {})
        if not isinstance(links, dict):
            raise RulesError("links must be a table with 'listing' and 'song'")
        song = _link_rule(links.get("song"), "links.song")
        if not song.allow:
            raise RulesError("links.song.allow is required: a regex matching song page URLs")
        raw_fields = data.get("fields", {})
        unknown = set(raw_fields) - set(FIELDS)
        if unknown:
            raise RulesError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}")
        fields = {name: _field_rule(name, raw) for name, raw in raw_fields.items()}
        missing = [f for f in REQUIRED_FIELDS if f not in fields]
        if missing:
            raise RulesError(f"fields.{missing[0]} is required")
        domains = _strings(data.get("allowed_domains"), "allowed_domains") or tuple(
            sorted({urlparse(u).hostname or "" for u in start_urls})
        )
        return SiteRules(
            name=str(data.get("name") or Path(path).stem),
            start_urls=start_urls,
            allowed_domains=domains,
            order=order,
            listing=_link_rule(links.get("listing"), "links.listing"),
            song=song,
            follow_from_songs=bool(data.get("follow_from_songs", False)),
            fields=fields,
            path=str(path),
        )
    except RulesError as exc:
        raise RulesError(f"{Path(path).name}: {exc}") from None


def load_rules(path: str | Path) -> SiteRules:
    path = Path(path)
    if not path.is_file():
        raise RulesError(f"rule file {path.name} not found")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path.name}: not valid TOML: {exc}") from exc
    return parse_rules(data, str(path))


def site_path(name: str) -> Path:
    """The rule file of site NAME in the configured sites folder (`sites_dir`, default crawler/sites/)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RulesError(f"site name {name!r} may only use letters, digits, '_', '-', '.'")
    from catalog.settings import get_settings

    sites = get_settings().sites_dir or SITES_DIR
    path = sites / f"{name}.toml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in sites.glob("*.toml"))) or "none"
        raise RulesError(f"no rule file for site {name!r} in the sites folder; available: {available}")
    return path


def rules_for(args: dict[str, str]) -> SiteRules:
    """The rules named by `-a site=NAME` or `-a rules=PATH`."""
    if args.get("rules"):
        return load_rules(args["rules"])
    if args.get("site"):
        return load_rules(site_path(args["site"]))
    raise RulesError("spider 'site' needs -a site=NAME (a rule file in crawler/sites/) or -a rules=PATH")
