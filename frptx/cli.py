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
        print(f"frpc {args.command}: needs frpc's admin API (webServer), which frptx does not have yet",
              file=sys.stderr)
        return 2
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


def frps() -> None:
    """Console script ``frps``."""
    sys.exit(main("frps"))


def frpc() -> None:
    """Console script ``frpc``."""
    sys.exit(main("frpc"))
