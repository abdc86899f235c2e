# -*- test-case-name: frptx.test.test_plugin_static_file -*-
"""``static_file``: serve ``localPath`` over HTTP on each work connection.

frp routes ``GET`` under ``/<stripPrefix>/`` (or ``/``) through an auth
middleware to Go's ``http.FileServer``.  The rules reproduced, all visible to
a user:

* a path outside the prefix: ``404 page not found``; inside it with another
  method: ``405`` with an empty body (the router answers before the auth);
* ``httpUser``/``httpPassword`` set: basic auth, else ``401`` with
  ``WWW-Authenticate: Basic realm="Restricted"`` and body ``Unauthorized``;
* ``.../index.html`` redirects to ``./``; a directory without its trailing
  slash redirects to ``name/``; a file asked with one to ``../name``
  (all ``301`` with a relative Location, as Go's ``localRedirect``);
* a directory serves its ``index.html``, else Go's listing (``<pre>`` of
  escaped links, sorted, directories with ``/``);
* files: Content-Type by extension, Last-Modified, ranges (``206``, ``416``)
  by :class:`twisted.web.static.File`, which streams through a producer
  (a slow reader pauses the file reads).

Not reproduced: Go's transparent gzip for ``Accept-Encoding: gzip`` clients
(the bytes are the same once decoded; curl does not ask for it by default).
"""
from __future__ import annotations

import hmac
import os
import posixpath
from typing import Any, ClassVar
from urllib.parse import quote, unquote_to_bytes

from twisted.internet.interfaces import IProtocolFactory
from twisted.web import http, resource, server, static

from frptx.client.plugins.base import ClientPlugin
from frptx.vhost.rewrite import parse_basic_auth

_PATH_SAFE = "$&+,/:;=@-_.~"


def go_html_escape(text: str) -> str:
    """Go's ``htmlReplacer`` (numeric entities for the quotes, unlike ``html.escape``)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def listing_html(directory: str) -> bytes:
    """Go's ``dirList`` for ``directory``."""
    entries = []
    with os.scandir(directory) as it:
        for entry in it:
            name = entry.name + ("/" if entry.is_dir() else "")
            entries.append(name)
    lines = ["<!doctype html>", '<meta name="viewport" content="width=device-width">', "<pre>"]
    for name in sorted(entries):
        href = quote(name, safe=_PATH_SAFE)
        first = href.split("/", 1)[0]
        if ":" in first:
            href = "./" + href  # Go's url.URL.String() keeps "a:b" from reading as a scheme
        lines.append(f'<a href="{href}">{go_html_escape(name)}</a>')
    lines.append("</pre>")
    return ("\n".join(lines) + "\n").encode("utf-8")


class StaticFileResource(resource.Resource):
    """The whole URL space of one ``static_file`` plugin (a leaf: it routes itself)."""

    isLeaf = True

    def __init__(self, root: str, strip_prefix: str, user: str, password: str) -> None:
        super().__init__()
        self.root = os.path.abspath(root)
        self.prefix = f"/{strip_prefix}/" if strip_prefix else "/"
        self.user = user
        self.password = password

    def render(self, request: Any) -> Any:
        path = unquote_to_bytes(request.path.split(b"?", 1)[0]).decode("utf-8", "surrogateescape")
        if not path.startswith(self.prefix):
            return self._text(request, 404, "404 page not found")
        if request.method != b"GET":
            request.setResponseCode(405)
            return b""
        if not self._authorised(request):
            request.setHeader(b"WWW-Authenticate", b'Basic realm="Restricted"')
            return self._text(request, 401, "Unauthorized")
        rest = path[len(self.prefix):]
        upath = rest if rest.startswith("/") else "/" + rest
        return self._serve(request, upath, path)

    def _authorised(self, request: Any) -> bool:
        if not self.user and not self.password:
            return True
        value = request.getHeader(b"authorization")
        pair = parse_basic_auth(value.decode("latin-1") if isinstance(value, bytes) else value)
        if pair is None:
            return False
        ok_user = hmac.compare_digest(pair[0].encode("utf-8", "surrogateescape"), self.user.encode())
        ok_password = hmac.compare_digest(pair[1].encode("utf-8", "surrogateescape"), self.password.encode())
        return ok_user and ok_password

    def _serve(self, request: Any, upath: str, url_path: str) -> Any:
        if upath.endswith("/index.html"):
            return self._redirect(request, "./")
        clean = posixpath.normpath(upath)
        if clean == "//":
            clean = "/"
        if "\x00" in clean:
            return self._text(request, 404, "404 page not found")
        full = os.path.join(self.root, clean.lstrip("/"))
        if not os.path.exists(full):
            return self._text(request, 404, "404 page not found")
        if os.path.isdir(full):
            if not url_path.endswith("/"):
                return self._redirect(request, posixpath.basename(url_path) + "/")
            index = os.path.join(full, "index.html")
            if os.path.isfile(index):
                full = index
            else:
                try:
                    body = listing_html(full)
                    modified = os.path.getmtime(full)
                except OSError:
                    return self._text(request, 500, "Error reading directory")
                if request.setLastModified(modified) is http.CACHED:
                    return b""
                request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
                return body
        elif url_path.endswith("/"):
            return self._redirect(request, "../" + posixpath.basename(clean))
        return _File(full).render(request)

    @staticmethod
    def _redirect(request: Any, location: str) -> bytes:
        query = request.uri.split(b"?", 1)
        if len(query) == 2:
            location += "?" + query[1].decode("latin-1")
        request.setResponseCode(301)
        request.setHeader(b"Location", location.encode("utf-8"))
        return b""

    @staticmethod
    def _text(request: Any, code: int, text: str) -> bytes:
        """Go's ``http.Error``."""
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return (text + "\n").encode()


class _File(static.File):
    """One regular file (the resource above has already routed and checked it)."""

    def directoryListing(self) -> resource.Resource:  # never reached: directories are handled above
        return resource.NoResource()


class _QuietSite(server.Site):
    """A Site per plugin; frpc's log, not an access log, records the connections."""

    def log(self, request: Any) -> None:
        pass


class StaticFilePlugin(ClientPlugin):
    name: ClassVar[str] = "static_file"
    option_names: ClassVar[tuple[str, ...]] = ("localPath", "stripPrefix", "httpUser", "httpPassword")
    required: ClassVar[tuple[str, ...]] = ("localPath",)

    def __init__(self, options: Any, prefix: str = "plugin") -> None:
        super().__init__(options, prefix)
        self.local_path = self.option_str("localPath")
        self.strip_prefix = self.option_str("stripPrefix")
        self.user = self.option_str("httpUser")
        self.password = self.option_str("httpPassword")

    def build(self, reactor: Any) -> IProtocolFactory:
        root = StaticFileResource(self.local_path, self.strip_prefix, self.user, self.password)
        site = _QuietSite(root, reactor=reactor)
        site.displayTracebacks = False
        return site
