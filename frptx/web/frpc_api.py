# -*- test-case-name: frptx.test.test_web_frpc_api -*-
"""
frpc's admin API, as frp 0.65.0 serves it (golden captures in
C{frptx/test/data/captures/web-frpc-0.65.0.json}):

  - C{GET /healthz} (no auth)
  - C{GET /api/reload[?strictConfig=bool]}: 200 empty, 400 with the config error, 500
  - C{POST /api/stop}: 200 empty, then frpc stops
  - C{GET /api/status}: proxies grouped by type, sorted by name
  - C{GET /api/config} / C{PUT /api/config}: the configuration file's text

C{frpc reload}, C{frpc status} and C{frpc stop} of real frp talk to these, so the
bodies follow frp's byte for byte where the captures pin them.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import server

from frptx.logs import logger
from frptx.web._http import ANY, Route, RouterResource, json_text, parse_go_bool, query_arg, text, write
from frptx.web.state import ConfigError, FrpcState, ProxyStatus

log = logger(__name__)

#: the largest configuration file C{PUT /api/config} accepts (frp has no limit; a config is a few KB,
#: and the body is read into memory)
MAX_CONFIG_BYTES = 1 << 20


def join_host_port(host: str, port: int) -> str:
    """Go's C{net.JoinHostPort}: brackets around an IPv6 literal."""
    if ":" in host:
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            return f"[{host}]:{port}"
        except ValueError:
            pass
    return f"{host}:{port}"


def status_entry(status: ProxyStatus, server_addr: str) -> dict[str, Any]:
    """frp's C{ProxyStatusResp}: the remote address only when there is no error, tcp/udp prefixed with serverAddr."""
    remote = ""
    if not status.err:
        remote = status.remote_addr
        if status.type in ("tcp", "udp"):
            remote = server_addr + remote
    return {
        "name": status.name,
        "type": status.type,
        "status": status.phase,
        "err": status.err,
        "local_addr": join_host_port(status.local_ip, status.local_port) if status.local_port else "",
        "plugin": status.plugin,
        "remote_addr": remote,
    }


def _go_os_error(op: str, path: str, err: OSError) -> str:
    """An C{OSError} worded like Go's C{*PathError} ("open /x: no such file or directory")."""
    reason = err.strerror or str(err)
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


class FrpcAPI:
    """The admin API handlers, bound to one L{FrpcState}."""

    def __init__(self, state: FrpcState, clock: IReactorTime) -> None:
        self.state = state
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route(ANY, "/healthz", lambda request: (200, b"", None)),
            Route(b"GET", "/api/reload", self.reload),
            Route(b"POST", "/api/stop", self.stop),
            Route(b"GET", "/api/status", self.status),
            Route(b"GET", "/api/config", self.get_config),
            Route(b"PUT", "/api/config", self.put_config),
        ]

    def resource(self) -> RouterResource:
        return RouterResource(self.routes())

    def reload(self, request: server.Request) -> Any:
        strict = parse_go_bool(query_arg(request, "strictConfig")) or False
        d = self.state.reload(strict)

        def done(_: object) -> None:
            log.info("frpc admin API: configuration reloaded")
            return _finish(request, (200, b"", None))

        def failed(f: Failure) -> None:
            if f.check(ConfigError):
                log.warn("reload frpc proxy config error: {err}", err=f.getErrorMessage())
                return _finish(request, text(400, f.getErrorMessage()))
            log.failure("reload frpc proxy config failed", f)
            return _finish(request, text(500, f.getErrorMessage()))

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

    def stop(self, request: server.Request) -> Any:
        # answer first, like frp's goroutine: the client sees 200 before the listener goes away
        request.notifyFinish().addBoth(self._stop_soon)
        return (200, b"", None)

    def _stop_soon(self, _: object) -> None:
        self._clock.callLater(0, self.state.stop)

    def status(self, request: server.Request) -> Any:
        server_addr = self.state.server_addr()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for st in self.state.proxy_statuses():
            grouped.setdefault(st.type, []).append(status_entry(st, server_addr))
        body = {t: sorted(entries, key=lambda e: e["name"]) for t, entries in sorted(grouped.items())}
        return json_text(body)

    def get_config(self, request: server.Request) -> Any:
        path = self.state.config_path()
        if not path:
            return text(400, "frpc has no config file path")
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            return text(400, _go_os_error("open", path, e))
        return (200, content, b"text/plain; charset=utf-8" if content else None)

    def put_config(self, request: server.Request) -> Any:
        body = request.content.read(MAX_CONFIG_BYTES + 1) if request.content is not None else b""
        if len(body) > MAX_CONFIG_BYTES:
            return text(413, f"config file larger than {MAX_CONFIG_BYTES} bytes")
        if not body:
            return text(400, "body can't be empty")
        path = self.state.config_path()
        try:
            # like os.WriteFile(path, body, 0o600): created private, an existing file keeps its mode
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
        except OSError as e:
            return text(500, f"write content to frpc config file error: {_go_os_error('open', path, e)}")
        return (200, b"", None)


def _finish(request: server.Request, answer: tuple[int, bytes, bytes | None]) -> None:
    """Complete a deferred answer, unless the client has gone away meanwhile."""
    if request.finished or getattr(request, "_disconnected", False):
        return
    body = write(request, answer)
    if body:
        request.write(body)
    request.finish()
