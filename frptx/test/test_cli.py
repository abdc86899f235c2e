"""frp's own command line (``frps -c``, ``frpc -c``, ``verify``, ``-v``): flags and real processes."""
from __future__ import annotations

import io
import os
import signal
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from frptx import __version__, cli
from frptx.test.support import Collector, EchoFactory, child_env, connect, listen_local, with_timeout
from frptx.test.test_e2e import async_test, free_port


def command(tapname: str) -> list[str]:
    """The installed console script, or the same entry point through this interpreter."""
    script = Path(sys.executable).with_name(tapname)
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", f"from frptx.cli import {tapname}; {tapname}()"]


class Outcome:
    def __init__(self, status: int, output: str) -> None:
        self.status = status
        self.output = output


class WatchedProcess(ProcessProtocol):
    """A child process whose output lines can be awaited; ``ended`` fires with its ``Outcome``."""

    def __init__(self) -> None:
        self.output = ""
        self.ended: Deferred[Outcome] = Deferred()
        self._waiting: list[tuple[str, Deferred[str]]] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        still = []
        for text, d in self._waiting:
            if text in self.output:
                d.callback(self.output)
            else:
                still.append((text, d))
        self._waiting = still

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        status = reason.value.exitCode if reason.value.exitCode is not None else -(reason.value.signal or 0)
        for text, d in self._waiting:
            d.errback(AssertionError(f"process ended (status {status}) before {text!r}:\n{self.output}"))
        self._waiting = []
        self.ended.callback(Outcome(status, self.output))

    def wait_for(self, text: str, seconds: float = 20) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        if text in self.output:
            d.callback(self.output)
        elif self.ended.called:
            d.errback(AssertionError(f"process ended before {text!r}:\n{self.output}"))
        else:
            self._waiting.append((text, d))
        return with_timeout(d, seconds)


class ProcessTestCase(unittest.TestCase):
    def spawn(self, tapname: str, *args: str) -> WatchedProcess:
        proto = WatchedProcess()
        argv = [*command(tapname), *args]
        transport = reactor.spawnProcess(proto, argv[0], argv, env=child_env(), path=self.mktemp_dir())

        def stop() -> Deferred[Any] | None:
            if proto.ended.called:
                return None
            try:
                transport.signalProcess("TERM")
            except ProcessExitedAlready:
                pass  # exited; processEnded is on its way
            return with_timeout(proto.ended, 15)

        self.addCleanup(stop)
        return proto

    def mktemp_dir(self) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return path

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.mktemp_dir(), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


class FlagTests(unittest.TestCase):
    def run_main(self, tapname: str, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = cli.main(tapname, list(argv))
        return status, out.getvalue(), err.getvalue()

    def test_version(self) -> None:
        for tapname in ("frps", "frpc"):
            for flag in ("-v", "--version"):
                status, out, _ = self.run_main(tapname, flag)
                self.assertEqual(status, 0)
                self.assertTrue(out.startswith(__version__ + " "), out)

    def test_verify_ok_as_frp_says_it(self) -> None:
        path = self.mktemp() + ".toml"
        Path(path).write_text('serverPort = 7000\n[[proxies]]\nname = "a"\ntype = "tcp"\nlocalPort = 22\n')
        status, out, _ = self.run_main("frpc", "verify", "-c", path)
        self.assertEqual((status, out), (0, f"frpc: the configuration file {path} syntax is ok\n"))

    def test_verify_bad_config_names_the_key(self) -> None:
        path = self.mktemp() + ".toml"
        Path(path).write_text("bindPort = 7000\nbogus = 1\n")
        status, out, err = self.run_main("frps", "verify", "--config", path)
        self.assertEqual(status, 1)
        self.assertEqual(out, "")
        self.assertIn("bogus: unknown key", err)

    def test_frpc_needs_a_config(self) -> None:
        status, _, err = self.run_main("frpc")
        self.assertEqual(status, 1)
        self.assertIn("-c/--config is required", err)

    def test_admin_commands_need_the_admin_api_configured(self) -> None:
        path = self.mktemp() + ".toml"
        Path(path).write_text('serverPort = 7000\n')
        for sub in ("reload", "status", "stop"):
            status, _, err = self.run_main("frpc", sub, "-c", path)
            self.assertEqual(status, 1)
            self.assertIn("webServer.port is not set", err)

    def test_status_table_as_frp_prints_it(self) -> None:
        table = cli.status_table({
            "stcp": [{"name": "s", "status": "running", "local_addr": "127.0.0.1:22", "plugin": "",
                      "remote_addr": "", "err": ""}],
            "tcp": [{"name": "bad", "status": "start error", "local_addr": "127.0.0.1:23", "plugin": "",
                     "remote_addr": "", "err": "port unavailable"},
                    {"name": "ssh", "status": "running", "local_addr": "127.0.0.1:22", "plugin": "",
                     "remote_addr": "127.0.0.1:16000", "err": ""}]})
        # captured from Go frpc 0.65.0's `frpc status` for the same proxies
        self.assertEqual(table, "Proxy Status...\n\nTCP\n"
                         "Name  Status       LocalAddr     Plugin  RemoteAddr       Error             \n"
                         "bad   start error  127.0.0.1:23                           port unavailable  \n"
                         "ssh   running      127.0.0.1:22          127.0.0.1:16000                    \n"
                         "\nSTCP\n"
                         "Name  Status   LocalAddr     Plugin  RemoteAddr  Error  \n"
                         "s     running  127.0.0.1:22                             \n")

    def test_frps_flags_make_a_valid_server_config(self) -> None:
        args = cli._parser("frps").parse_args(["-p", "7100", "-t", "tok", "--allow-ports", "2000-3000,3001",
                                               "--max-ports-per-client", "4", "--tls-only"])
        doc = cli.server_config_from_flags(args)
        from frptx.config import parse_server_config

        cfg = parse_server_config(doc)
        self.assertEqual((cfg.bind_port, cfg.auth.token, cfg.max_ports_per_client), (7100, "tok", 4))
        self.assertEqual([(r.start, r.end) for r in cfg.allow_ports], [(2000, 3000), (3001, 3001)])
        self.assertTrue(cfg.transport.tls.force)

    def test_frps_flags_verify_without_a_file(self) -> None:
        status, out, _ = self.run_main("frps", "verify", "-p", "7100")
        self.assertEqual((status, out), (0, "frps: the configuration file <flags> syntax is ok\n"))

    def test_bad_allow_ports(self) -> None:
        with self.assertRaises(SystemExit) as e:
            self.run_main("frps", "verify", "--allow-ports", "20-x")
        self.assertIn("--allow-ports", str(e.exception))


class CommandTests(ProcessTestCase):
    """The console scripts as processes: the same services, statuses and logs as twistd."""

    timeout = 60

    @async_test
    async def test_frps_and_frpc_with_toml_start_a_tunnel(self) -> None:
        echo = listen_local(self, EchoFactory())
        bind, remote = free_port(), free_port()
        frps_toml = self.write("frps.toml", f'bindAddr = "127.0.0.1"\nbindPort = {bind}\n'
                                            f'proxyBindAddr = "127.0.0.1"\n[auth]\ntoken = "cli"\n')
        frpc_toml = self.write("frpc.toml", f'serverAddr = "127.0.0.1"\nserverPort = {bind}\n[auth]\ntoken = "cli"\n'
                                            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\n'
                                            f'localPort = {echo}\nremotePort = {remote}\n')
        frps = self.spawn("frps", "-c", frps_toml)
        await frps.wait_for("frps listening")
        frpc = self.spawn("frpc", "-c", frpc_toml)
        await frpc.wait_for("proxy [echo] started")
        c = Collector(b"through the frp command line", half_close=True)
        await connect(remote, c)
        self.assertEqual(await with_timeout(c.done, 10), b"through the frp command line")
        # SIGTERM: a clean twistd shutdown (twistd re-raises the signal after stopping)
        for proc in (frpc, frps):
            proc.transport.signalProcess("TERM")
            outcome = await with_timeout(proc.ended, 15)
            self.assertIn(outcome.status, (0, -signal.SIGTERM), outcome.output)

    @async_test
    async def test_bad_config_exits_nonzero_with_the_reason(self) -> None:
        path = self.write("frps.toml", "bindPort = 7000\nbindPrt = 1\n")
        outcome = await with_timeout(self.spawn("frps", "-c", path).ended, 30)
        self.assertNotEqual(outcome.status, 0)
        self.assertIn("bindPrt: unknown key", outcome.output)
        self.assertNotIn("Traceback", outcome.output)

    @async_test
    async def test_refused_first_login_exits_1(self) -> None:
        bind = free_port()
        frps = self.spawn("frps", "--bind-addr", "127.0.0.1", "-p", str(bind), "-t", "right")
        await frps.wait_for("frps listening")
        frpc_toml = self.write("frpc.toml", f'serverAddr = "127.0.0.1"\nserverPort = {bind}\n'
                                            '[auth]\ntoken = "wrong"\n[transport.tls]\nenable = false\n')
        outcome = await with_timeout(self.spawn("frpc", "-c", frpc_toml).ended, 30)
        self.assertEqual(outcome.status, 1, outcome.output)
        self.assertIn("token in login doesn't match token from configuration", outcome.output)
