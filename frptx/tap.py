# -*- test-case-name: frptx.test.test_process -*-
"""``twistd frps --config F`` and ``twistd frpc --config F``.

twistd finds ``Options`` and ``makeService`` here through the service makers in
``twisted/plugins/frp_plugin.py``, which pass their tapname (``frps``/``frpc``).
Config problems end start-up with the key path and reason and a non-zero status,
never a traceback.  ``--verify`` only loads and validates the config, prints
what would run and exits (frp's ``verify``).
"""
from __future__ import annotations

import json
import sys

from twisted.application.service import IService
from twisted.python import usage

from frptx import logs, process_exit
from frptx.config import (
    ClientConfig,
    ConfigError,
    ServerConfig,
    load_client_config,
    load_server_config,
    parse_client_config,
    parse_server_config,
)


class Options(usage.Options):
    """Command-line options shared by frps and frpc."""

    optParameters = [
        ["config", "c", None, "frp config file (.yaml/.yml, .toml or .json)"],
        ["config-json", None, None, "the config itself as JSON text, instead of a file"],
    ]
    optFlags = [["verify", None, "only load and validate the config, print what would run, and exit"]]

    def postOptions(self) -> None:
        # SystemExit rather than UsageError: twistd before 25.x prints a UsageError from
        # a plugin's options and then exits 0, which scripts would take for success.
        if not self["config"] and not self["config-json"]:
            raise SystemExit(f"{self}\n--config/-c PATH is required")
        if self["config"] and self["config-json"]:
            raise SystemExit(f"{self}\ngive either --config or --config-json, not both")


def describe_server(cfg: ServerConfig) -> str:
    t = cfg.transport
    scopes = " " + ",".join(sorted(cfg.auth.additional_scopes)) if cfg.auth.additional_scopes else ""
    ports = ", ".join(f"{r.start}-{r.end}" if r.start != r.end else str(r.start) for r in cfg.allow_ports)
    lines = [
        f"frps on {cfg.bind_addr}:{cfg.bind_port} (proxy ports on {cfg.proxy_bind_addr})",
        f"  tcpMux: {t.tcp_mux}, TLS: {'required' if t.tls.force or t.tls.trusted_ca_file else 'optional'}"
        f"{', client certificates verified' if t.tls.trusted_ca_file else ''}",
        f"  auth: {cfg.auth.method}{scopes}",
        f"  allowPorts: {ports or 'any'}"
        f", maxPortsPerClient: {cfg.max_ports_per_client or 'unlimited'}, maxPoolCount: {t.max_pool_count}",
        f"  heartbeatTimeout: {t.heartbeat_timeout}s, userConnTimeout: {cfg.user_conn_timeout}s",
    ]
    return "\n".join(lines)


def describe_client(cfg: ClientConfig) -> str:
    t = cfg.transport
    lines = [
        f"frpc to {cfg.server_addr}:{cfg.server_port} as user '{cfg.user}'",
        f"  tcpMux: {t.tcp_mux}, TLS: {t.tls.enable}"
        f"{' (server verified with ' + t.tls.trusted_ca_file + ')' if t.tls.enable and t.tls.trusted_ca_file else ''}"
        f", poolCount: {t.pool_count}, heartbeat: {t.heartbeat_interval}s/{t.heartbeat_timeout}s",
    ]
    active = cfg.active_proxies()
    for p in active:
        remote = getattr(p, "remote_port", 0) or "server picks"  # only tcp and udp proxies have one
        lines.append(f"  proxy {cfg.wire_name(p.name)} ({p.type}): {p.local_ip}:{p.local_port} -> remote port {remote}")
    if not active:
        lines.append("  no proxies")
    return "\n".join(lines)


def load(tapname: str, path: str | None, inline_json: str | None = None) -> ServerConfig | ClientConfig:
    """The config of ``tapname`` from a file or from JSON text; ``SystemExit`` with every problem."""
    try:
        if inline_json is not None:
            try:
                data = json.loads(inline_json)
            except ValueError as e:
                raise ConfigError([("<config-json>", f"not valid JSON: {e}")]) from None
            if not isinstance(data, dict):
                raise ConfigError([("<config-json>", "expected a JSON object")])
            return (parse_server_config(data, "<config-json>") if tapname == "frps"
                    else parse_client_config(data, "<config-json>"))
        assert path is not None
        return load_server_config(path) if tapname == "frps" else load_client_config(path)
    except ConfigError as e:
        raise SystemExit(f"{tapname}: invalid config {path or '<config-json>'}:\n{e}") from None


def makeService(options: Options, tapname: str) -> IService:
    """Build frps (``tapname == "frps"``) or frpc; called by the twistd plugin."""
    from frptx.transport.internals_reactor import import_reactor

    # twistd installs the reactor only after makeService, so this is its first import:
    # made without pyOpenSSL, which a frps or frpc that meets no TLS never loads
    reactor = import_reactor()

    cfg = load(tapname, options["config"], options["config-json"])
    if options["verify"]:
        print(f"{options['config'] or '<config-json>'}: syntax is ok and the config is valid")
        print(describe_server(cfg) if isinstance(cfg, ServerConfig) else describe_client(cfg))
        raise SystemExit(0)
    logs.set_level(cfg.log.level)
    logs.log_to(cfg.log.to)
    from frptx.transport.internals_tcp import lean_epoll_dispatch

    lean_epoll_dispatch()  # a process of its own: no per-event legacy log context (see there)

    def on_fatal(message: str) -> None:
        print(f"{tapname}: {message}", file=sys.stderr)
        process_exit.fail(reactor, 1)

    if isinstance(cfg, ServerConfig):
        from frptx.server.service import FrpsService

        return FrpsService(cfg, reactor, on_fatal=on_fatal, config_path=options["config"], install_sighup=True)
    from frptx.client.service import FrpcService
    from frptx.transport.certs import TLSConfigError

    try:
        return FrpcService(cfg, reactor, config_path=options["config"], on_fatal=on_fatal, install_sighup=True)
    except TLSConfigError as e:
        raise SystemExit(f"frpc: TLS setup failed: {e}") from None
    except ConfigError as e:  # what only the client can check (plugin options)
        raise SystemExit(f"frpc: invalid config {options['config']}:\n{e}") from None

