# -*- test-case-name: frptx.test.test_groups -*-
"""Load-balancing groups (frp's ``loadBalancer.group`` / ``groupKey``).

Proxies of one or several clients that name the same group share one public
listener: the first member opens the ingress on its ``remotePort`` as any proxy
does; later members attach to that same ingress instead of opening a port, and
the ingress spreads arriving users among its open members.  When the last
member detaches, the ingress closes and its port is given back (the ingress
already does both); the group is forgotten then, so the next proxy naming it
starts a new group.

frps 0.65.0's rules, kept here with its error texts: a later member must ask for
the remote port the *first member asked for* ("group should have same remote
port" -- with ``remotePort: 0`` the members all ask 0 and get the group's real
port), and must present the first member's key ("group auth failed").  Groups
are found by name alone, across users and clients, per ingress type (frps keeps
one group table for tcp).

With ``remotePort: 0`` frps 0.65.0 reports the port its port manager picked but
listens on another one the kernel picked (users of the reported port are
refused); frptx listens on the port it reports.

How frps spreads users: every member's accept loop waits on one shared channel
and takes the next connection when its turn comes, so with idle members the
connections go round the members in turn (32 users one after the other against
two members of a Go frps: ABAB...AB).  ``RoundRobin`` does that on purpose.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from frptx.server.ingress import PortIngress, R

#: frps 0.65.0's errors (``server/group``), sent as-is in NewProxyResp.error
GROUP_DIFFERENT_PORT = "group should have same remote port"
GROUP_AUTH_FAILED = "group auth failed"


class GroupRefused(Exception):
    """A proxy may not join its group; ``str()`` is frp's error text."""


class RoundRobin:
    """An ingress policy: each user goes to the next open member, in attach order."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, proxies: Sequence[R]) -> R | None:
        if not proxies:
            return None
        chosen = proxies[self._next % len(proxies)]
        self._next = (self._next + 1) % len(proxies)
        return chosen


@dataclass
class Group:
    """One group: the shared ingress and what its first member asked for."""

    name: str
    key: str
    #: the remotePort the first member asked for (0: any), which later members must ask too
    requested_port: int
    ingress: PortIngress[Any]

    def check(self, key: str, requested_port: int) -> None:
        """Raise ``GroupRefused`` unless a proxy asking ``requested_port`` with ``key`` may join."""
        if requested_port != self.requested_port:
            raise GroupRefused(GROUP_DIFFERENT_PORT)
        if key != self.key:
            raise GroupRefused(GROUP_AUTH_FAILED)


class Groups:
    """The live groups of one frps, by ingress type and group name."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], Group] = {}

    def get(self, ingress_type: str, name: str) -> Group | None:
        """The group ``name`` if it still has a listening ingress (a closed one is forgotten)."""
        group = self._groups.get((ingress_type, name))
        if group is not None and group.ingress.closed:
            del self._groups[(ingress_type, name)]
            return None
        return group

    def create(self, ingress_type: str, name: str, key: str, requested_port: int,
               ingress: PortIngress[Any]) -> Group:
        """Make ``ingress`` (just opened by the first member) the group's; it now spreads users."""
        ingress.routes.policy = RoundRobin()
        group = self._groups[(ingress_type, name)] = Group(name, key, requested_port, ingress)
        return group

    def __len__(self) -> int:
        return sum(1 for key in list(self._groups) if self.get(*key) is not None)
