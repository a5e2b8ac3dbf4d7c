"""The supervisors' wallboard and the advocates' console: static pages.

Plain HTML, CSS and JavaScript kept beside this module (no build step, no
CDN, nothing fetched from elsewhere). The pages hold no data: they ask for
a token, keep it in the page's memory only, and call the engine's API with
it in the Authorization header, so it never lands in a URL, a log or the
browser's history. The Content-Security-Policy lets them load only this
engine's own scripts and styles and talk only to this engine; its
``form-action 'none'`` means the token form can never be submitted as a
request, even if the script failed to load.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

# Every file served: read once at start-up, so no request names a path on disk.
_PAGES = {"/wallboard": "wallboard.html", "/console": "console.html"}
_ASSETS = ("hotline.js", "wallboard.js", "console.js", "pages.css")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always revalidated: a page and its script must come from the same engine version.
    "Cache-Control": "no-cache",
}


class Pages:
    def __init__(self) -> None:
        folder = files(__name__)
        self._files = {name: folder.joinpath(name).read_bytes() for name in (*_PAGES.values(), *_ASSETS)}

    def routes(self) -> list[web.RouteDef]:
        pages = [web.get(path, self._serve(name)) for path, name in _PAGES.items()]
        return [*pages, *(web.get(f"/pages/{name}", self._serve(name)) for name in _ASSETS)]

    def _serve(self, name: str):
        body, content_type = self._files[name], _TYPES[name.rsplit(".", 1)[1]]

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)
        return handler
