"""Checks on crawl arguments that arrive over the network (POST /v1/crawls), before a job row exists.

An API client is not the operator: it may only point crawls at public http(s) hosts (private, loopback,
link-local and reserved addresses only when listed in the `crawl_allow_hosts` setting), may only name rule files
inside the configured sites folder, never sets the Jamendo base URL (that comes from settings), and every argument
is a short printable string.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from urllib.parse import urlsplit

from catalog.settings import Settings, get_settings

URL_ARGS = ("url", "start_url")
SETTINGS_ONLY_ARGS = ("base_url",)


class UnsafeCrawl(ValueError):
    """A crawl argument the API refuses (answered 400 naming the argument)."""


def _allowed(host: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], allow: list[str]) -> bool:
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower():
            return True
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(a in net for a in addresses):
            return True
    return False


def public_or_allowed(host: str, port: int, settings: Settings) -> str | None:
    """None when every address of `host` is public or the host is allow-listed; else the first private address."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if _allowed(host, addresses, settings.crawl_allow_hosts):
        return None
    private = [str(a) for a in addresses if not a.is_global]
    return private[0] if private else None


def check_url(name: str, url: str, settings: Settings) -> None:
    """http(s) only, to a host whose every address is public, unless the host is allow-listed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeCrawl(f"{name}: only http and https URLs are accepted, got scheme {parts.scheme or 'none'!r}")
    host = parts.hostname or ""
    if not host:
        raise UnsafeCrawl(f"{name}: URL has no host")
    try:
        private = public_or_allowed(host, parts.port or (443 if parts.scheme == "https" else 80), settings)
    except (OSError, UnicodeError, ValueError) as exc:
        raise UnsafeCrawl(f"{name}: host {host!r} does not resolve") from exc
    if private:
        raise UnsafeCrawl(f"{name}: host {host!r} is not a public address ({private}); allow it with the crawl_allow_hosts setting")


def check_rules_path(value: str, settings: Settings) -> None:
    """A rule file named by the API must lie inside the sites folder."""
    sites = settings.sites_dir
    assert sites is not None
    candidate = Path(value)
    path = (candidate if candidate.is_absolute() else sites / candidate).resolve()
    if not path.is_relative_to(sites) or path.suffix != ".toml":
        raise UnsafeCrawl("rules: only .toml rule files inside the sites folder are accepted (use site=NAME)")


def check_api_args(spider: str, args: dict[str, str], settings: Settings | None = None) -> dict[str, str]:
    """Refuse unsafe crawl arguments from the API; returns the arguments to store (rule paths made absolute)."""
    settings = settings or get_settings()
    out = dict(args)
    for key, value in args.items():
        if len(key) > 64 or len(value) > settings.crawl_arg_max_chars:
            raise UnsafeCrawl(f"argument {key[:64]!r} is longer than {settings.crawl_arg_max_chars} characters")
        if not key.isprintable() or not value.isprintable():
            raise UnsafeCrawl(f"argument {key[:64]!r} contains control characters")
        if key in SETTINGS_ONLY_ARGS:
            raise UnsafeCrawl(f"{key} comes from the server settings, not from a crawl request")
        if key in URL_ARGS:
            check_url(key, value, settings)
        if key == "rules":
            check_rules_path(value, settings)
            sites = settings.sites_dir
            assert sites is not None
            out[key] = str((Path(value) if Path(value).is_absolute() else sites / value).resolve())
    return out
