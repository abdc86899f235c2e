# -*- test-case-name: frptx.test.test_protocols_client -*-
"""What frpc's parts see of the client: small interfaces ``FrpClient`` implements.

Proxy kinds (``frptx.client.kinds``), visitors and the proxy manager take a
``ClientContext`` instead of ``FrpClient`` itself, so none of them imports the
module that builds them (no import circle inside ``frptx.client``) and tests can
hand them a small fake.
"""
from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocol

from frptx.client.dialer import Dialer
from frptx.config import ClientConfig, ProxyConfig
from frptx.protocols.bandwidth import BandwidthLimiter
from frptx.protocols.relay import TrafficCounter
from frptx.protocols.tracking import ConnectionSet
from frptx.wire import Message


class LoginState(Protocol):
    """The live login session as others see it (``frptx.client.session.LoginSession``)."""

    @property
    def logged_in(self) -> bool:
        """frps accepted the login (so the run id is known and messages can be sent)."""

    def send(self, msg: Message) -> None:
        """Send ``msg`` on the control connection."""


class TrafficCounters(Protocol):
    def counter(self, name: str) -> TrafficCounter:
        """The byte counters of proxy ``name``."""

    def limiter(self, proxy: ProxyConfig) -> BandwidthLimiter | None:
        """frpc's limiter for ``proxy`` (client-mode ``bandwidthLimit``), shared by its connections."""


class ClientContext(Protocol):
    """The client state a proxy kind or a visitor uses."""

    @property
    def config(self) -> ClientConfig: ...

    @property
    def reactor(self) -> Any: ...

    @property
    def run_id(self) -> str:
        """The run id frps gave at the last login ("" before the first)."""

    @property
    def connections(self) -> ConnectionSet:
        """Every open connection of frpc, closed (and awaited) when it stops."""

    @property
    def dialer(self) -> Dialer:
        """Opens connections (or yamux streams) to frps."""

    @property
    def control(self) -> LoginState | None:
        """The live login session, if any."""

    @property
    def proxy_manager(self) -> TrafficCounters: ...

    def when_logged_in(self) -> Deferred[Any]:
        """Fires at the next successful login (or now, if logged in)."""

    def connect_local(self, host: str, port: int, protocol: IProtocol, timeout: float) -> Deferred[IProtocol]:
        """Connect ``protocol`` to a local service."""

