# -*- test-case-name: frptx.test.test_vhost_routing -*-
"""Virtual-host routing: which proxy owns a (domain, location, HTTP user).

frps routes HTTP requests, TLS connections (by SNI) and tcpmux CONNECTs to
proxies by host name.  The rules below are Go frp 0.65.0's
(``pkg/util/vhost/router.go`` and the ``getVhost``/``getListener`` lookups in
``pkg/util/vhost/{http,vhost}.go``), kept exactly because users' configs rely
on them:

* Domains are stored and looked up lower-cased.  A request's Host is first
  canonicalised (:func:`canonical_host`: lower-cased, port stripped, one
  trailing dot removed).
* Lookup order: the exact host; then, while the name still has at least three
  labels, the name with its first label replaced by ``*`` and then that label
  dropped (``a.b.example.com`` tries ``*.b.example.com`` then
  ``*.example.com``, never ``*.com``); finally the catch-all domain ``*``.
* At every step, routes registered for the request's HTTP user come first,
  then routes registered without a user (``routeByHTTPUser`` unset means
  "match everybody").
* Within one (domain, user), locations are plain string prefixes of the
  request path (``/api`` also matches ``/apix``); the longest matching prefix
  wins, and the empty location (frp's default when ``locations`` is unset)
  matches everything.  Locations are compared case-sensitively; only the
  domain is case-folded.
* A (domain, location, user) triple has one owner: a second registration
  fails with frp's ``router config conflict``, which frps reports verbatim in
  ``NewProxyResp.error`` (``detailedErrorsToClient`` defaults to true).

The table is pure data (no locking: the reactor is single-threaded) and holds
any value, so frps can store whatever it needs per route.

Load-balancing groups (``loadBalancer.group``/``groupKey``) share one route
(:class:`GroupedRoutes`, :class:`RouteGroup`), as frps's ``server/group``
(``http.go``, ``tcpmux.go`` of 0.65.0; ``https.go`` of 0.66.0, where https
groups arrived -- frps 0.65.0 ignores an https group, so its second member
gets ``router config conflict`` there):

* A group is found by its name alone, across users and clients.  Its first
  member adds the route (a taken route refuses it with ``router config
  conflict``) and fixes the group's key and route parameters.
* A later member must ask for the same route parameters -- http: domain,
  location and routeByHTTPUser; https: the domain; tcpmux: domain,
  routeByHTTPUser, httpUser and httpPassword -- or gets ``group params
  invalid``; then the same key, or ``group auth failed`` (parameters are
  checked first).  So a grouped proxy naming two domains (or two locations)
  is refused on its second one: a group is one route.
* The route keeps its first member's settings (http: basic auth, host
  rewrite, headers), even after that member left; each request (http) or
  connection (https, tcpmux) goes to the next member in turn.
* A member leaving leaves the route to the others; the last one leaving
  removes the route and forgets the group.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "GROUP_AUTH_FAILED",
    "GROUP_PARAMS_INVALID",
    "GROUP_PROXY_REPEATED",
    "ROUTER_CONFIG_CONFLICT",
    "DomainConfigError",
    "GroupedRoutes",
    "RouteGroup",
    "RouteGroupRefused",
    "Route",
    "RouteConflict",
    "RouteTable",
    "canonical_host",
    "check_custom_domain",
    "proxy_domains",
    "proxy_locations",
    "subdomain_domain",
    "validate_domain_config_for_client",
]

T = TypeVar("T")

#: frp's ``vhost.ErrRouterConfigConflict`` text, sent to frpc in NewProxyResp.error.
ROUTER_CONFIG_CONFLICT = "router config conflict"

#: frp's validation texts (``pkg/config/v1/validation/proxy.go``), sent to frpc verbatim.
SUBDOMAIN_NOT_ENABLED = "subdomain is not supported because this feature is not enabled in server"
SUBDOMAIN_BAD_CHARS = "'.' and '*' are not supported in subdomain"
DOMAINS_BOTH_EMPTY = "subdomain and custom domains should not be both empty"

#: frps's group errors (``server/group/group.go``), sent to frpc verbatim.
GROUP_PARAMS_INVALID = "group params invalid"
GROUP_AUTH_FAILED = "group auth failed"
GROUP_PROXY_REPEATED = "group proxy repeated"


class RouteConflict(ValueError):
    """The (domain, location, user) is already owned; ``str()`` is frp's message."""

    def __init__(self, domain: str, location: str, http_user: str) -> None:
        super().__init__(ROUTER_CONFIG_CONFLICT)
        self.domain = domain
        self.location = location
        self.http_user = http_user


class DomainConfigError(ValueError):
    """A proxy's customDomains/subdomain is refused; ``str()`` is frp's message."""


@dataclass(frozen=True)
class Route(Generic[T]):
    """One registered route; ``value`` is whatever the owner stored."""

    domain: str
    location: str
    http_user: str
    value: T


def _has_port(host: str) -> bool:
    colons = host.count(":")
    if colons == 0:
        return False
    if colons == 1:
        return True
    return host.startswith("[") and "]:" in host


def _split_host_port(hostport: str) -> str | None:
    """The host part of ``host:port`` with Go's net.SplitHostPort rules, or None on error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host


def canonical_host(host: str) -> str:
    """frp's ``CanonicalHost``: lower-case, strip a port, strip one trailing dot.

    A malformed ``host:port`` gives ``""`` (frp ignores the error and routes
    the empty name, which only the ``*`` domain can match).
    """
    host = host.lower()
    if _has_port(host):
        split = _split_host_port(host)
        if split is None:
            return ""
        host = split
    if host.endswith("."):
        host = host[:-1]
    return host


class RouteTable(Generic[T]):
    """Routes keyed by domain, then HTTP user, then location (longest prefix first)."""

    def __init__(self) -> None:
        # domain -> http_user -> routes sorted by location, descending
        self._index: dict[str, dict[str, list[Route[T]]]] = {}

    def add(self, domain: str, location: str, http_user: str, value: T) -> Route[T]:
        """Register a route; raise :class:`RouteConflict` if the triple is taken."""
        domain = domain.lower()
        by_user = self._index.setdefault(domain, {})
        routes = by_user.setdefault(http_user, [])
        if any(r.location == location for r in routes):
            raise RouteConflict(domain, location, http_user)
        route = Route(domain, location, http_user, value)
        routes.append(route)
        # Descending order puts a string before all of its proper prefixes,
        # so the first prefix match is the longest one.
        routes.sort(key=lambda r: r.location, reverse=True)
        return route

    def remove(self, domain: str, location: str, http_user: str) -> None:
        """Unregister the triple; removing an absent route does nothing (as in frp)."""
        domain = domain.lower()
        by_user = self._index.get(domain)
        if by_user is None:
            return
        routes = by_user.get(http_user)
        if routes is None:
            return
        kept = [r for r in routes if r.location != location]
        if kept:
            by_user[http_user] = kept
        else:
            del by_user[http_user]
            if not by_user:
                del self._index[domain]

    def __len__(self) -> int:
        return sum(len(routes) for by_user in self._index.values() for routes in by_user.values())

    def __iter__(self) -> Iterator[Route[T]]:
        return iter([r for by_user in self._index.values() for routes in by_user.values() for r in routes])

    def get_exact(self, domain: str, path: str, http_user: str) -> Route[T] | None:
        """frp's ``Routers.Get``: this domain and user only, longest location prefix of path."""
        by_user = self._index.get(domain.lower())
        if by_user is None:
            return None
        for route in by_user.get(http_user, ()):
            if path.startswith(route.location):
                return route
        return None

    def _find(self, domain: str, path: str, http_user: str) -> Route[T] | None:
        route = self.get_exact(domain, path, http_user)
        if route is None and http_user != "":
            route = self.get_exact(domain, path, "")
        return route

    def lookup(self, host: str, path: str = "", http_user: str = "") -> Route[T] | None:
        """The route serving a request, with frp's full fallback order.

        ``host`` should already be canonical (see :func:`canonical_host`); it
        is lower-cased here again.  ``path`` is the request's decoded URL path
        ("" for SNI and tcpmux routing, which have none).
        """
        host = host.lower()
        route = self._find(host, path, http_user)
        if route is not None:
            return route
        labels = host.split(".")
        while len(labels) >= 3:
            labels[0] = "*"
            route = self._find(".".join(labels), path, http_user)
            if route is not None:
                return route
            labels = labels[1:]
        return self._find("*", path, http_user)


class RouteGroupRefused(ValueError):
    """A proxy may not join a vhost group; ``str()`` is frp's message."""


class RouteGroup(Generic[T]):
    """The value of one route: its members, and which one serves next.

    A proxy outside any group is the only member of an unnamed group, so the
    vhosts treat every route alike: ``founder`` carries the route's settings
    and :meth:`pick` names the member a request or connection goes to.
    """

    def __init__(self, name: str, key: str, params: tuple[Hashable, ...], founder: T, offset: int = 0) -> None:
        self.name = name
        self.key = key
        #: what every member must ask for (see the module docstring)
        self.params = params
        #: the first member, whose settings the route keeps
        self.founder = founder
        self.members: list[T] = [founder]
        self._offset = offset
        self._count = 0

    def join(self, member: T, key: str, params: tuple[Hashable, ...]) -> None:
        """Add a later member; ``RouteGroupRefused`` with frp's text if it may not."""
        if params != self.params:
            raise RouteGroupRefused(GROUP_PARAMS_INVALID)
        if key != self.key:
            raise RouteGroupRefused(GROUP_AUTH_FAILED)
        if any(m is member for m in self.members):
            raise RouteGroupRefused(GROUP_PROXY_REPEATED)
        self.members.append(member)

    def leave(self, member: T) -> bool:
        """Remove ``member`` if it is one; True once the group has no member left."""
        self.members = [m for m in self.members if m is not member]
        return not self.members

    def pick(self) -> T | None:
        """The member to serve the next request or connection: each in turn, in joining order.

        frps's http group adds one to its counter before using it, so its
        first request goes to the member at index 1 (``offset=1``); its
        https and tcpmux groups hand connections to their members' accept
        loops in turn, the first member first (``offset=0``).
        """
        if not self.members:
            return None
        chosen = self.members[(self._count + self._offset) % len(self.members)]
        self._count += 1
        return chosen


class GroupedRoutes(Generic[T]):
    """A :class:`RouteTable` of :class:`RouteGroup` values, and the named groups on it."""

    def __init__(self, offset: int = 0) -> None:
        self.table: RouteTable[RouteGroup[T]] = RouteTable()
        self.groups: dict[str, RouteGroup[T]] = {}
        self._offset = offset

    def add(self, member: T, domain: str, location: str, http_user: str, group: str = "", key: str = "",
            extra: tuple[Hashable, ...] = ()) -> None:
        """Route (domain, location, http_user) to ``member``, alone or in ``group``.

        Raises :class:`RouteConflict` when the route is taken by someone else
        (a proxy, or another group) and :class:`RouteGroupRefused` when the
        group exists and refuses ``member``.  ``extra`` are the parameters a
        kind's members must share beyond the route itself.
        """
        params = (domain, location, http_user, *extra)
        existing = self.groups.get(group) if group else None
        if existing is not None:
            existing.join(member, key, params)
            return
        value = RouteGroup(group, key, params, member, self._offset)
        self.table.add(domain, location, http_user, value)
        if group:
            self.groups[group] = value

    def remove(self, member: T) -> None:
        """Take ``member`` out of every route; a route left without members is removed."""
        for route in list(self.table):
            value = route.value
            if any(m is member for m in value.members) and value.leave(member):
                self.table.remove(route.domain, route.location, route.http_user)
                if value.name and self.groups.get(value.name) is value:
                    del self.groups[value.name]

    def lookup(self, host: str, path: str = "", http_user: str = "") -> RouteGroup[T] | None:
        """The route group serving a request (see :meth:`RouteTable.lookup`)."""
        route = self.table.lookup(host, path, http_user)
        return None if route is None else route.value


def subdomain_domain(subdomain: str, subdomain_host: str) -> str:
    """The full domain for a proxy's ``subdomain`` under frps's ``subDomainHost``.

    Raises :class:`DomainConfigError` with frp's texts when the server has no
    subDomainHost or the subdomain contains ``.`` or ``*``.
    """
    if subdomain_host == "":
        raise DomainConfigError(SUBDOMAIN_NOT_ENABLED)
    if "." in subdomain or "*" in subdomain:
        raise DomainConfigError(SUBDOMAIN_BAD_CHARS)
    return subdomain + "." + subdomain_host


def check_custom_domain(domain: str, subdomain_host: str) -> None:
    """frps refuses a custom domain that lies under its subDomainHost.

    frp's test is loose on purpose-or-not (more labels than subDomainHost and
    subDomainHost appearing anywhere in it, case-sensitively); it is kept as is
    so that the same configs are accepted and refused.
    """
    if subdomain_host and len(subdomain_host.split(".")) < len(domain.split(".")):
        if subdomain_host in domain:
            raise DomainConfigError(
                f"custom domain [{domain}] should not belong to subdomain host [{subdomain_host}]")


def validate_domain_config_for_client(custom_domains: Iterable[str], subdomain: str) -> None:
    """frpc's check: an http/https/tcpmux proxy needs customDomains or subdomain."""
    if subdomain == "" and not list(custom_domains):
        raise DomainConfigError(DOMAINS_BOTH_EMPTY)


def proxy_domains(custom_domains: Iterable[str], subdomain: str, subdomain_host: str) -> list[str]:
    """The domains a proxy registers, in frp's order, after frps's validation.

    Empty custom domains are skipped (as frps does); the subdomain, if any,
    comes last.  Raises :class:`DomainConfigError` like frps's
    ``validateDomainConfigForServer``.
    """
    customs = list(custom_domains)
    for domain in customs:
        check_custom_domain(domain, subdomain_host)
    domains = [d for d in customs if d != ""]
    if subdomain != "":
        domains.append(subdomain_domain(subdomain, subdomain_host))
    return domains


def proxy_locations(locations: Iterable[str]) -> list[str]:
    """An http proxy's locations; none configured means the single location ``""``."""
    result = list(locations)
    return result if result else [""]
