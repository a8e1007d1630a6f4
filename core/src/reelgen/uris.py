"""`file://` URLs: the one parser from a `file:` URL to a local path, and query stripping.

RFC 8089: `file:///p` and `file://localhost/p` both name the local `/p`; `%XX` escapes
(`%20` for a space, UTF-8 bytes for other characters) are decoded; a query or fragment
is not part of the path. Two leniencies, for hand-written settings: another "host" is
read as the start of a relative path (`file://videos/out` is `videos/out`, never a
remote machine), and a leading `~` is the home folder (`file://~/videos`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["file_url_to_path", "is_file_url", "path_to_file_url", "strip_query"]


def is_file_url(value: str) -> bool:
    """True for `file:` URLs (any case of the scheme)."""
    return value[:7].lower() == "file://"


def file_url_to_path(url: str) -> Path:
    """The local path a `file://` URL names. `ValueError` for any other kind of URL."""
    if not is_file_url(url):
        raise ValueError(f"not a file:// URL: {strip_query(url)!r}")
    parts = urlsplit(url)
    host = "" if parts.netloc.lower() == "localhost" else parts.netloc
    return Path(unquote(host + parts.path)).expanduser()


def path_to_file_url(path: str | Path) -> str:
    """The `file://` URL of a path (made absolute): what `file_url_to_path` reads back."""
    return Path(path).expanduser().absolute().as_uri()


def strip_query(url: str) -> str:
    """The URL without its query string or fragment (signed URLs carry credentials there)."""
    return url.split("#", 1)[0].split("?", 1)[0]
