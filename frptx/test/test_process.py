"""The real thing: ``twistd -n frps`` and ``twistd -n frpc`` as processes on 127.0.0.1.

Covers what only a process shows: the plugin is found, config errors exit
non-zero without a traceback, ``--verify``, ``loginFailExit`` exit status,
SIGHUP reload, and memory of frps/frpc staying bounded while a slow reader
receives 64 MiB.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from frptx.test.support import (
    Collector,
    EchoFactory,
    child_env,
    connect,
    deferLater,
    examples_dir,
    listen_local,
    with_timeout,
)
from frptx.test.test_cli import Outcome, WatchedProcess
from frptx.test.test_e2e import async_test, free_port

#: where the child processes run (they write nothing there: no pid file, logs on their stdout)
RUN_DIR = tempfile.gettempdir()


def twistd() -> list[str]:
    exe = Path(sys.executable).with_name("twistd")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("twistd")
    return [found] if found else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def env() -> dict[str, str]:
    return child_env()


def run_twistd(tapname: str, config: str, *extra: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*twistd(), "-n", "--pidfile=", tapname, "--config", config, *extra],
                          capture_output=True, text=True, timeout=timeout, env=env(), cwd=RUN_DIR)


class VerifyTests(unittest.TestCase):
    @async_test
    async def test_verify_examples(self) -> None:
        """Every example verifies (the six processes run side by side)."""
        from twisted.internet.utils import getProcessOutputAndValue

        examples = [Path(examples_dir()) / f"{name}.{ext}"
                    for name in ("frps", "frpc") for ext in ("yaml", "toml", "json")]
        argv = [*twistd(), "-n", "--pidfile="]
        runs = [getProcessOutputAndValue(argv[0], [*argv[1:], path.name.split(".")[0], "--config", str(path),
                                                   "--verify"], env=env(), path=RUN_DIR)
                for path in examples]
        results = await with_timeout(gatherResults(runs), 60)
        for path, (out, err, code) in zip(examples, results, strict=True):
            self.assertEqual(code, 0, f"{path.name}: {(err + out).decode()}")
            self.assertIn(b"config is valid", out, path.name)

    def test_config_error_exits_nonzero_with_path_and_no_traceback(self) -> None:
        path = os.path.abspath(self.mktemp()) + ".yaml"
        with open(path, "w") as f:
            f.write("serverPort: 7000\nproxies:\n  - name: a\n    type: tcp\n    localPort: 22\n"
                    "  - name: b\n    type: tcp\n    localPort: 23\n    remotePrt: 6000\n")
        r = run_twistd("frpc", path)
        self.assertNotEqual(r.returncode, 0)
        out = r.stdout + r.stderr
        self.assertIn("proxies[1].remotePrt: unknown key", out)
        self.assertNotIn("Traceback", out)

    def test_missing_config_option(self) -> None:
        r = subprocess.run([*twistd(), "-n", "--pidfile=", "frps"], capture_output=True, text=True, timeout=30,
                           env=env(), cwd=RUN_DIR)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--config", r.stdout + r.stderr)


@implementer(IPushProducer)
class Pusher(Protocol):
    """Pushes ``total`` bytes as fast as the transport accepts them (a streaming producer).

    With ``ahead_limit = (received, limit)`` every write checks that the bytes sent
    are never ``limit`` or more ahead of ``received()``; violations are recorded in
    ``too_far_ahead`` (whatever the timing, unbounded buffering shows there).
    """

    CHUNK = b"\xab" * 65536

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.ahead_limit: tuple[Callable[[], int], int] | None = None
        self.too_far_ahead: list[int] = []
        self._paused_waiters: list[Deferred[None]] = []
        #: fires when the connection is gone (after the far end closed it)
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1
        self._wake()

    def _wake(self) -> None:
        waiters, self._paused_waiters = self._paused_waiters, []
        for d in waiters:
            d.callback(None)

    async def stalled(self, quiet: float = 0.3, bound: float = 60) -> None:
        """Wait until the transport paused the pusher and kept it paused for ``quiet`` seconds.

        No event says "every buffer on the way is full", so the pause is the event
        and the quiet period only decides when to look; the test's verdict comes
        from ``too_far_ahead`` and the counts, not from how long this took.
        """
        from twisted.internet import reactor

        async def paused() -> None:
            if not self.paused and self.sent < self.total:
                d: Deferred[None] = Deferred()
                self._paused_waiters.append(d)
                await d

        deadline = reactor.seconds() + bound
        while reactor.seconds() < deadline:
            await with_timeout(Deferred.fromCoroutine(paused()), max(deadline - reactor.seconds(), 0.1))
            if self.sent >= self.total:
                raise AssertionError(f"the pusher sent all {self.total} bytes to a reader that does not read")
            mark = (self.pauses, self.sent)
            await deferLater(quiet)
            if self.paused and (self.pauses, self.sent) == mark:
                return
        raise AssertionError(f"the pusher kept sending to a reader that does not read ({self.sent} bytes sent)")

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.total:
            self.transport.write(self.CHUNK)
            self.sent += len(self.CHUNK)
            if self.ahead_limit is not None:
                received, limit = self.ahead_limit
                if self.sent - received() >= limit:
                    self.too_far_ahead.append(self.sent - received())
        if self.sent >= self.total:
            self.transport.unregisterProducer()
            self.transport.loseWriteConnection()
            self._wake()

    def stopProducing(self) -> None:
        self.paused = True

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(None)


@implementer(IHalfCloseableProtocol)
class SlowReader(Protocol):
    """Reads nothing until ``release()``, then counts everything."""

    def __init__(self) -> None:
        self.received = 0
        self.eof = None
        self._wanted: list[tuple[int, Deferred[None]]] = []

    def connectionMade(self) -> None:
        self.transport.pauseProducing()

    def release(self) -> None:
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        for wanted in [w for w in self._wanted if self.received >= w[0]]:
            self._wanted.remove(wanted)
            wanted[1].callback(None)

    def received_at_least(self, count: int) -> Deferred[None]:
        if self.received >= count:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._wanted.append((count, d))
        return d

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class Twistd(WatchedProcess):
    """One ``twistd -n`` child logging to its stdout (``test_cli``'s watched process)."""

    @property
    def pid(self) -> int:
        return self.transport.pid  # type: ignore[union-attr, no-any-return]

    @property
    def running(self) -> bool:
        return not self.ended.called

    def stopped_cleanly(self, outcome: Outcome) -> bool:
        """Exit status 0, or -SIGTERM: twistd re-raises SIGTERM after a clean shutdown."""
        return outcome.status in (0, -signal.SIGTERM)


#: twistd, plus: on SIGUSR1 print the names of the imported modules (one log line,
#: ``MODULES#<n> name name ... END#<n>``), so a test can see what a real frps/frpc loaded
DUMPING_TWISTD = """
import signal, sys
dumps = [0]
def dump(signum, frame):
    dumps[0] += 1
    names = " ".join(sorted(name for name, module in sys.modules.items() if module is not None))
    epoll = sys.modules.get("twisted.internet.epollreactor")
    if epoll is not None:  # a pseudo-name: what the epoll reactor dispatches events through
        names += " dispatch:" + type(epoll.log).__name__
    sys.stdout.write(f"MODULES#{dumps[0]} {names} END#{dumps[0]}\\n")
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "twistd"
from twisted.scripts.twistd import run
run()
"""


async def modules(proc: Twistd) -> set[str]:
    """The modules a process started with ``spawn(..., dumping=True)`` has imported now."""
    n = proc.output.count("MODULES#") + 1
    proc.transport.signalProcess(signal.SIGUSR1)  # type: ignore[union-attr]
    output = await proc.wait_for(f" END#{n}")
    return set(output.split(f"MODULES#{n} ", 1)[1].split(f" END#{n}", 1)[0].split())


class ProcessTunnelTests(unittest.TestCase):
    timeout = 120

    def spawn(self, tapname: str, config: dict[str, Any], *, dumping: bool = False) -> tuple[Twistd, str]:
        """``twistd -n tapname`` with ``config`` (YAML); with ``dumping``, as JSON and through
        ``DUMPING_TWISTD``, which prints the imported modules on SIGUSR1 (see ``modules``)."""
        path = os.path.abspath(self.mktemp()) + (".json" if dumping else ".yaml")
        with open(path, "w") as f:
            if dumping:
                json.dump(config, f)
            else:
                yaml.safe_dump(config, f)
        proc = Twistd()
        command = [sys.executable, "-c", DUMPING_TWISTD] if dumping else twistd()
        argv = [*command, "-n", "--pidfile=", "--logfile=-", tapname, "--config", path]
        reactor.spawnProcess(proc, argv[0], argv, env=env(), path=RUN_DIR)

        async def stop() -> None:
            if proc.running:
                proc.transport.signalProcess("TERM")  # type: ignore[union-attr]
                try:
                    await with_timeout(proc.ended, 10)
                except Exception:
                    proc.transport.signalProcess("KILL")  # type: ignore[union-attr]
                    await proc.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        return proc, path

    async def start_pair(self, proxies: list[dict[str, Any]], **client_extra: Any) -> tuple[Twistd, Twistd, str, int]:
        bind = free_port()
        frps, _ = self.spawn("frps", {"bindAddr": "127.0.0.1", "bindPort": bind, "proxyBindAddr": "127.0.0.1",
                                      "auth": {"token": "proc-token"}})
        # frpc starts once frps listens (loginFailExit would end it otherwise)
        await frps.wait_for(f"frps listening on 127.0.0.1:{bind}")
        client_cfg = {"serverAddr": "127.0.0.1", "serverPort": bind, "auth": {"token": "proc-token"},
                      "proxies": proxies}
        client_cfg.update(client_extra)
        frpc, frpc_path = self.spawn("frpc", client_cfg)
        return frps, frpc, frpc_path, bind

    @async_test
    async def test_tunnel_reload_and_bounded_memory(self) -> None:
        import psutil

        echo = listen_local(self, EchoFactory())
        slow = SlowReader()
        slow_port = listen_local(self, Factory.forProtocol(lambda: slow))
        p_echo, p_slow = free_port(), free_port()
        proxies = [{"name": "echo", "type": "tcp", "localPort": echo, "remotePort": p_echo},
                   {"name": "slow", "type": "tcp", "localPort": slow_port, "remotePort": p_slow}]
        frps, frpc, frpc_path, bind = await self.start_pair(proxies)
        await frpc.wait_for("proxy [slow] started")
        await frpc.wait_for("proxy [echo] started")

        c = Collector(b"through real processes", half_close=True)
        await connect(p_echo, c)
        self.assertEqual(await with_timeout(c.done, 10), b"through real processes")

        # 64 MiB pushed at a reader that does not read: frps/frpc must hold back, not buffer
        rss = {name: psutil.Process(p.pid) for name, p in (("frps", frps), ("frpc", frpc))}
        before = {name: p.memory_info().rss for name, p in rss.items()}
        pusher = Pusher(64 * 1024 * 1024)
        pusher.ahead_limit = (lambda: slow.received, 48 * 1024 * 1024)
        await connect(p_slow, pusher)
        await pusher.stalled()
        stalled = pusher.sent
        during = {name: p.memory_info().rss for name, p in rss.items()}
        self.assertEqual(pusher.too_far_ahead, [], "the pusher was never paused")
        self.assertLess(stalled, 48 * 1024 * 1024, "the pusher was never paused")
        for name in rss:
            grown = during[name] - before[name]
            self.assertLess(grown, 24 * 1024 * 1024, f"{name} grew by {grown} bytes while the reader stalled")
        slow.release()
        await with_timeout(slow.received_at_least(pusher.total), 60)
        self.assertEqual(slow.received, 64 * 1024 * 1024)
        await with_timeout(pusher.closed, 10)  # the reader's close came all the way back

        # SIGHUP reload: add a proxy
        p_new = free_port()
        with open(frpc_path) as f:
            cfg = yaml.safe_load(f)
        cfg["proxies"].append({"name": "added", "type": "tcp", "localPort": echo, "remotePort": p_new})
        with open(frpc_path, "w") as f:
            yaml.safe_dump(cfg, f)
        frpc.transport.signalProcess("HUP")  # type: ignore[union-attr]
        await frpc.wait_for("proxy [added] started")
        c2 = Collector(b"reloaded", half_close=True)
        await connect(p_new, c2)
        self.assertEqual(await with_timeout(c2.done, 10), b"reloaded")

        frpc.transport.signalProcess("TERM")  # type: ignore[union-attr]
        frps.transport.signalProcess("TERM")  # type: ignore[union-attr]
        frpc_end, frps_end = await with_timeout(gatherResults([frpc.ended, frps.ended]), 15)
        self.assertTrue(frpc.stopped_cleanly(frpc_end), (frpc_end.status, frpc.output))
        self.assertTrue(frps.stopped_cleanly(frps_end), (frps_end.status, frps.output))

    @async_test
    async def test_pyopenssl_only_once_tls_is_used(self) -> None:
        """A frps and a frpc that see no TLS never import pyOpenSSL (nor what else their config does
        not use: YAML, the web stack, client plugins, visitors, UDP); a TLS frpc is then served by the same
        frps, which imports pyOpenSSL for it."""
        echo = listen_local(self, EchoFactory())
        bind, p_plain, p_tls = free_port(), free_port(), free_port()
        frps, _ = self.spawn("frps", {"bindAddr": "127.0.0.1", "bindPort": bind, "proxyBindAddr": "127.0.0.1",
                                      "auth": {"token": "proc-token"}}, dumping=True)
        await frps.wait_for(f"frps listening on 127.0.0.1:{bind}")

        def client(name: str, port: int, tls: bool) -> dict[str, Any]:
            return {"serverAddr": "127.0.0.1", "serverPort": bind, "auth": {"token": "proc-token"},
                    "transport": {"tls": {"enable": tls}},
                    "proxies": [{"name": name, "type": "tcp", "localPort": echo, "remotePort": port}]}

        plain, _ = self.spawn("frpc", client("plain", p_plain, False), dumping=True)
        await plain.wait_for("proxy [plain] started")
        c = Collector(b"plain frp", half_close=True)
        await connect(p_plain, c)
        self.assertEqual(await with_timeout(c.done, 10), b"plain frp")
        unused = {"OpenSSL", "twisted.protocols.tls", "twisted.internet.ssl", "twisted.internet.endpoints",
                  "cryptography.x509", "yaml", "twisted.web.client", "twisted.web.server",
                  "frptx.client.plugins.http_proxy", "frptx.client.udp", "frptx.client.visitors",
                  "frptx.transport.tls_context"}
        for name, proc in (("frps", frps), ("frpc", plain)):
            loaded = await modules(proc)
            self.assertIn("frptx.transport.internals_tcp", loaded, name)  # the dump works
            self.assertIn("dispatch:_LeanDispatchLog", loaded, f"{name}: no lean epoll dispatch")
            self.assertEqual(sorted(unused & loaded), [], f"{name} imported what it does not use")

        tls, _ = self.spawn("frpc", client("tls", p_tls, True), dumping=True)
        await tls.wait_for("proxy [tls] started")
        c = Collector(b"TLS frp", half_close=True)
        await connect(p_tls, c)
        self.assertEqual(await with_timeout(c.done, 10), b"TLS frp")
        for name, proc in (("frps", frps), ("TLS frpc", tls)):
            self.assertIn("OpenSSL", await modules(proc), name)
        # the plain client still works beside it
        c = Collector(b"still plain", half_close=True)
        await connect(p_plain, c)
        self.assertEqual(await with_timeout(c.done, 10), b"still plain")

    @async_test
    async def test_login_fail_exit_wrong_token(self) -> None:
        frps, frpc, frpc_path, _ = await self.start_pair([], auth={"token": "wrong"})
        outcome = await with_timeout(frpc.ended, 20)
        self.assertEqual(outcome.status, 1)
        self.assertIn("token in login doesn't match token from configuration", frpc.output)
        self.assertTrue(frps.running, "frps must keep running")

    @async_test
    async def test_login_fail_exit_server_unreachable(self) -> None:
        frpc, path = self.spawn("frpc", {"serverAddr": "127.0.0.1", "serverPort": free_port(), "proxies": []})
        outcome = await with_timeout(frpc.ended, 20)
        self.assertEqual(outcome.status, 1)
        self.assertIn("cannot connect", frpc.output)

    @async_test
    async def test_frps_sighup_reloads_the_token(self) -> None:
        """``kill -HUP`` on a real ``twistd -n frps`` reloads what can change safely."""
        bind = free_port()
        config = {"bindAddr": "127.0.0.1", "bindPort": bind, "proxyBindAddr": "127.0.0.1",
                  "auth": {"token": "before"}}
        frps, path = self.spawn("frps", config)
        await frps.wait_for(f"frps listening on 127.0.0.1:{bind}")
        with open(path, "w") as f:
            yaml.safe_dump(dict(config, auth={"token": "after"}, userConnTimeout=30), f)
        frps.transport.signalProcess("HUP")  # type: ignore[union-attr]
        await frps.wait_for("applied auth.token; needs a restart to change: user_conn_timeout")
        # a client with the new token logs in; one with the old token is refused
        ok, _ = self.spawn("frpc", {"serverAddr": "127.0.0.1", "serverPort": bind, "auth": {"token": "after"},
                                    "transport": {"tls": {"enable": False}}, "proxies": []})
        await ok.wait_for("logged in to frps")
        old, _ = self.spawn("frpc", {"serverAddr": "127.0.0.1", "serverPort": bind, "auth": {"token": "before"},
                                     "transport": {"tls": {"enable": False}}, "proxies": []})
        outcome = await with_timeout(old.ended, 20)
        self.assertEqual(outcome.status, 1, old.output)
