"""The console: one HTML page and its static files (hookpost/api/console), served by the same
function as the API, so API Gateway serves it on AWS and `make dev` locally.

Every file is addressed under one version, a hash of all of them (`/console/assets/<version>/`):
a new release changes the address, so the files may be cached for a year and the page never
mixes two releases. The page itself is never cached. Every answer carries the console's
Content-Security-Policy: scripts and styles only from here (none inline), and the page may be
framed only by the origins HOOKPOST_PORTAL_FRAME_ANCESTORS names (by none unless set)."""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import Router

from hookpost.api.responses import problem_response
from hookpost.config import get_settings

router = Router()

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_ANCESTOR_RE = re.compile(r"^(https?://[A-Za-z0-9.*-]+(:\d+)?|'self')$")
_PAGE = "index.html"


@lru_cache(maxsize=1)
def assets() -> tuple[str, dict[str, str]]:
    """The version, and every file of the console by name."""
    folder = resources.files("hookpost.api") / "console"
    files = {
        f.name: f.read_text(encoding="utf-8")
        for f in folder.iterdir()
        if f.is_file() and os.path.splitext(f.name)[1] in _CONTENT_TYPES
    }
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()[:16], files


def frame_ancestors() -> str:
    """The CSP frame-ancestors sources: HOOKPOST_PORTAL_FRAME_ANCESTORS (space-separated origins,
    e.g. `https://app.example.com`), else 'none'. A malformed entry is dropped rather than let
    into the header."""
    wanted = get_settings().portal_frame_ancestors
    allowed = [origin for origin in wanted if _ANCESTOR_RE.fullmatch(origin)]
    return " ".join(allowed) or "'none'"


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
            f" frame-ancestors {frame_ancestors()}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@router.get("/console", include_in_schema=False)
def console_page():
    version, files = assets()
    page = files[_PAGE].replace("{{assets}}", f"console/assets/{version}")
    headers = {**security_headers(), "Cache-Control": "no-cache"}
    return Response(200, _CONTENT_TYPES[".html"], page, headers=headers)


@router.get("/console/assets/<version>/<name>", include_in_schema=False)
def console_asset(version: str, name: str):
    current, files = assets()
    if name == _PAGE or name not in files:
        return problem_response(404, "no such console file", slug="not-found")
    # An old version's address gets today's file, uncached: a page loaded before a release still
    # works until reloaded.
    cache = "public, max-age=31536000, immutable" if version == current else "no-cache"
    content_type = _CONTENT_TYPES[os.path.splitext(name)[1]]
    headers = {**security_headers(), "Cache-Control": cache}
    return Response(200, content_type, files[name], headers=headers)
