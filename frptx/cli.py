# -*- test-case-name: frptx.test.test_cli -*-
"""frp's own command line: ``frps -c frps.toml``, ``frpc -c frpc.toml``, ``frpc verify -c``.

frp users and their scripts type these; twistd's ``twistd -n frps --config`` stays the
other way in.  Both run the very same thing: running a config hands over to twistd
(``-n``, no pid file) with the ``frps``/``frpc`` plugin, so logging, signals, exit
statuses and shutdown are twistd's in both cases.  This module only translates frp's
flags and subcommands.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from frptx import FRP_PROTOCOL_VERSION, __version__

#: subcommands frp's frpc has that drive a running frpc through its admin API
_ADMIN_COMMANDS = ("reload", "status", "stop")


def version_line() -> str:
    return f"{__version__} (frptx; frp wire protocol {FRP_PROTOCOL_VERSION})"


def _parser(tapname: str) -> argparse.ArgumentParser:
    role = "server" if tapname == "frps" else "client"
    p = argparse.ArgumentParser(prog=tapname, description=f"{tapname} is the {role} of frp, rebuilt on Twisted "
                                                          "(frptx); it reads frp's TOML, YAML or JSON config.")
    p.add_argument("-c", "--config", help=f"config file of {tapname} (.toml, .yaml/.yml or .json)")
    p.add_argument("-v", "--version", action="store_true", help=f"version of {tapname}")
    p.add_argument("--strict-config", default="true", choices=("true", "false"),
                   help="accepted for frp compatibility; frptx always rejects unknown keys")
    commands = ["verify", *(_ADMIN_COMMANDS if tapname == "frpc" else ())]
    p.add_argument("command", nargs="?", choices=commands, help="verify: check the config and exit")
    if tapname == "frps":
        g = p.add_argument_group("without -c: a server from these flags (frp's defaults)")
        g.add_argument("--bind-addr", default="0.0.0.0", help="bind address")
        g.add_argument("-p", "--bind-port", type=int, default=7000, help="bind port")
        g.add_argument("-t", "--token", default="", help="auth token")
        g.add_argument("--allow-ports", default="", help="allowed ports, e.g. 2000-3000,3001")
        g.add_argument("--max-ports-per-client", type=int, default=0, help="max ports per client")
        g.add_argument("--proxy-bind-addr", default="0.0.0.0", help="proxy bind address")
        g.add_argument("--tls-only", action="store_true", help="accept TLS connections only")
        g.add_argument("--log-level", default="info", help="log level (trace, debug, info, warn, error)")
        g.add_argument("--log-file", default="console", help="log file, or console")
    return p


def _allow_ports(text: str) -> list[dict[str, int]]:
    ranges: list[dict[str, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        try:
            ranges.append({"start": int(low), "end": int(high)} if sep else {"single": int(low)})
        except ValueError:
            raise SystemExit(f"frps: --allow-ports: {part!r} is not a port or a port range") from None
    return ranges


def server_config_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """frps's config (frp's camelCase schema) from the command-line flags, for a run without ``-c``."""
    cfg: dict[str, Any] = {
        "bindAddr": args.bind_addr,
        "bindPort": args.bind_port,
        "proxyBindAddr": args.proxy_bind_addr,
        "log": {"level": args.log_level, "to": args.log_file},
    }
    if args.token:
        cfg["auth"] = {"token": args.token}
    if args.allow_ports:
        cfg["allowPorts"] = _allow_ports(args.allow_ports)
    if args.max_ports_per_client:
        cfg["maxPortsPerClient"] = args.max_ports_per_client
    if args.tls_only:
        cfg["transport"] = {"tls": {"force": True}}
    return cfg


def verify(tapname: str, path: str | None, inline_json: str | None = None) -> int:
    """frp's ``verify``: validate the config, say so as frp does, and return the exit status."""
    from frptx.tap import load

    try:
        load(tapname, path, inline_json)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{tapname}: the configuration file {path or '<flags>'} syntax is ok")
    return 0


def run_twistd(tapname: str, path: str | None, inline_json: str | None = None) -> NoReturn:
    """Hand over to twistd, exactly as ``twistd -n --pidfile= frps --config PATH`` would run."""
    from twisted.scripts.twistd import run

    source = ["--config", path] if path is not None else ["--config-json", inline_json or "{}"]
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", tapname, *source]
    run()
    raise SystemExit(0)


def main(tapname: str, argv: Sequence[str] | None = None) -> int:
    args = _parser(tapname).parse_args(argv)
    if args.version:
        print(version_line())
        return 0
    if args.command in _ADMIN_COMMANDS:
        return admin_command(args.command, args.config)
    inline: str | None = None
    if args.config is None:
        if tapname == "frpc":
            print("frpc: -c/--config is required (frptx reads frp's TOML, YAML or JSON config; "
                  "the legacy INI format is not supported)", file=sys.stderr)
            return 1
        inline = json.dumps(server_config_from_flags(args))
    if args.command == "verify":
        return verify(tapname, args.config, inline)
    run_twistd(tapname, args.config, inline)


#: the order frp's ``frpc status`` prints proxy types in
_STATUS_ORDER = ("tcp", "udp", "tcpmux", "http", "https", "stcp", "sudp", "xtcp")


def status_table(status: dict[str, list[dict[str, Any]]]) -> str:
    """``frpc status`` output as frp prints it: one table per proxy type."""
    out = ["Proxy Status..."]
    kinds = [k for k in _STATUS_ORDER if status.get(k)]
    kinds += sorted(k for k in status if k not in _STATUS_ORDER and status[k])
    for kind in kinds:
        rows = [["Name", "Status", "LocalAddr", "Plugin", "RemoteAddr", "Error"]]
        rows += [[p.get("name", ""), p.get("status", ""), p.get("local_addr", ""), p.get("plugin", ""),
                  p.get("remote_addr", ""), p.get("err", "")] for p in status[kind]]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        out += ["", kind.upper()]
        out += ["".join(cell.ljust(w) + "  " for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out) + "\n"


def admin_command(command: str, path: str | None) -> int:
    """``frpc reload|status|stop -c F``: ask the running frpc through its admin API, as frp does."""
    import base64
    import urllib.error
    import urllib.request

    from frptx.config import ConfigError, load_client_config

    if path is None:
        print(f"frpc {command}: -c/--config is required (it names the admin API's address)", file=sys.stderr)
        return 1
    try:
        web = load_client_config(path).web_server
    except ConfigError as e:
        print(f"frpc {command}: invalid config {path}:\n{e}", file=sys.stderr)
        return 1
    if not web.port:
        print(f"frpc {command}: webServer.port is not set in {path}, so frpc has no admin API", file=sys.stderr)
        return 1
    host = web.addr if ":" not in web.addr else f"[{web.addr}]"
    url = f"{'https' if web.tls_cert_file else 'http'}://{host}:{web.port}"
    method, endpoint = {"reload": ("GET", "/api/reload"), "status": ("GET", "/api/status"),
                        "stop": ("POST", "/api/stop")}[command]
    request = urllib.request.Request(url + endpoint, method=method, data=b"" if method == "POST" else None)
    if web.user or web.password:
        token = base64.b64encode(f"{web.user}:{web.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = None
    if web.tls_cert_file:
        import ssl

        context = ssl._create_unverified_context()  # our own admin API, its own certificate
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 - URL from config
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace").strip()
        print(f"frpc {command}: {detail or e.reason} (status {e.code})", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"frpc {command}: cannot reach frpc's admin API at {url}: {getattr(e, 'reason', e)}", file=sys.stderr)
        return 1
    if command == "status":
        print(status_table(json.loads(body)), end="")
    else:
        print(f"{command} success")
    return 0


def frps() -> None:
    """Console script ``frps``."""
    sys.exit(main("frps"))


def frpc() -> None:
    """Console script ``frpc``."""
    sys.exit(main("frpc"))
