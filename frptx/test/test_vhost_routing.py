"""The vhost route table against Go frp 0.65.0's router rules."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from frptx.vhost.routing import (
    GROUP_AUTH_FAILED,
    GROUP_PARAMS_INVALID,
    GROUP_PROXY_REPEATED,
    ROUTER_CONFIG_CONFLICT,
    DomainConfigError,
    GroupedRoutes,
    RouteConflict,
    RouteGroupRefused,
    RouteTable,
    canonical_host,
    check_custom_domain,
    proxy_domains,
    proxy_locations,
    subdomain_domain,
    validate_domain_config_for_client,
)


class CanonicalHostTests(unittest.TestCase):
    CASES = [
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:80", "example.com"),
        ("example.com:", "example.com"),       # Go accepts an empty port
        ("[::1]:80", "::1"),
        ("[::1]", "[::1]"),                     # no port: brackets stay
        ("::1", "::1"),                         # bare IPv6: not host:port
        ("a:b:c", "a:b:c"),
        ("[a]b:1", ""),                         # Go's SplitHostPort error -> empty name
        ("x]:1", ""),
        ("[x:1", ""),
        ("", ""),
    ]

    def test_table(self) -> None:
        for raw, want in self.CASES:
            self.assertEqual(canonical_host(raw), want, raw)


def table(*routes: tuple[str, str, str]) -> RouteTable[str]:
    t: RouteTable[str] = RouteTable()
    for domain, location, user in routes:
        t.add(domain, location, user, f"{domain}|{location}|{user}")
    return t


class LookupTests(unittest.TestCase):
    def test_lookup_table(self) -> None:
        t = table(
            ("example.com", "", ""),
            ("example.com", "/api", ""),
            ("example.com", "/api/v2", ""),
            ("*.example.com", "", ""),
            ("*.b.example.com", "/x", ""),
            ("Upper.Example.com", "", ""),
            ("users.test", "", "alice"),
            ("users.test", "/", ""),
            ("onlyuser.test", "", "bob"),
            ("*", "/catch", ""),
            ("loc.test", "/", ""),
            ("case.test", "/API", ""),
        )
        cases = [
            # host, path, user -> value or None
            ("example.com", "/", "", "example.com||"),
            ("example.com", "/api", "", "example.com|/api|"),
            ("example.com", "/apix", "", "example.com|/api|"),      # plain prefix, not path segments
            ("example.com", "/api/v2/z", "", "example.com|/api/v2|"),
            ("example.com", "/api/v", "", "example.com|/api|"),
            ("a.example.com", "/", "", "*.example.com||"),
            ("a.b.example.com", "/", "", "*.example.com||"),       # deeper names fall to *.example.com
            ("a.b.example.com", "/x1", "", "*.b.example.com|/x|"),
            ("b.example.com", "/x", "", "*.example.com||"),         # *.b.example.com is not b.example.com
            ("upper.example.com", "/", "", "Upper.Example.com||"),   # domains are stored lower-cased
            ("users.test", "/p", "alice", "users.test||alice"),
            ("users.test", "/p", "mallory", "users.test|/|"),       # unknown user falls back to no-user routes
            ("users.test", "/p", "", "users.test|/|"),
            ("onlyuser.test", "/", "bob", "onlyuser.test||bob"),
            ("onlyuser.test", "/", "", None),                       # a user route never serves others
            ("nothing.test", "/catch/me", "", "*|/catch|"),
            ("nothing.test", "/other", "", None),
            ("example", "/catch", "", "*|/catch|"),
            ("loc.test", "", "", None),                             # "/" does not match the empty path
            ("case.test", "/API", "", "case.test|/API|"),           # locations are case-sensitive
            ("case.test", "/api", "", None),
            ("EXAMPLE.com", "/", "", "example.com||"),
        ]
        for host, path, user, want in cases:
            route = t.lookup(host, path, user)
            got = None if route is None else route.value
            self.assertEqual(got, want, (host, path, user))

    def test_wildcard_never_tries_a_top_level_wildcard(self) -> None:
        """frp stops replacing labels at three: ``a.com`` never matches ``*.com``."""
        t = table(("*.com", "", ""))
        self.assertIsNone(t.lookup("a.com", "/"))
        self.assertIsNone(t.lookup("b.a.com", "/"))
        # ... except through the exact name itself
        self.assertIsNotNone(t.lookup("*.com", "/"))

    def test_exact_beats_wildcard_beats_star(self) -> None:
        t = table(("*", "", ""), ("*.example.com", "", ""), ("a.example.com", "", ""))
        self.assertEqual(t.lookup("a.example.com").value, "a.example.com||")  # type: ignore[union-attr]
        self.assertEqual(t.lookup("b.example.com").value, "*.example.com||")  # type: ignore[union-attr]
        self.assertEqual(t.lookup("other.net").value, "*||")  # type: ignore[union-attr]

    def test_user_route_in_wildcard_loses_to_exact_no_user_route(self) -> None:
        """Per step, user then no-user; the exact name's step comes first."""
        t = table(("a.example.com", "", ""), ("*.example.com", "", "alice"))
        self.assertEqual(t.lookup("a.example.com", "/", "alice").value, "a.example.com||")  # type: ignore[union-attr]

    def test_location_miss_on_exact_falls_through_to_wildcard(self) -> None:
        t = table(("a.example.com", "/only", ""), ("*.example.com", "", ""))
        self.assertEqual(t.lookup("a.example.com", "/else").value, "*.example.com||")  # type: ignore[union-attr]

    def test_empty_host_only_matches_star(self) -> None:
        """No SNI (or a malformed Host) routes as "" - only the ``*`` domain takes it."""
        self.assertIsNone(table(("example.com", "", "")).lookup(""))
        self.assertEqual(table(("*", "", "")).lookup("").value, "*||")  # type: ignore[union-attr]


class RegistrationTests(unittest.TestCase):
    def test_conflict_text_is_frps(self) -> None:
        t = table(("Example.com", "/a", "u"))
        with self.assertRaises(RouteConflict) as cm:
            t.add("example.COM", "/a", "u", "second")
        self.assertEqual(str(cm.exception), ROUTER_CONFIG_CONFLICT)
        self.assertEqual(str(cm.exception), "router config conflict")
        self.assertEqual(t.lookup("example.com", "/a", "u").value, "Example.com|/a|u")  # type: ignore[union-attr]

    def test_same_domain_other_location_or_user_is_no_conflict(self) -> None:
        t = table(("example.com", "/a", "u"))
        t.add("example.com", "/b", "u", "x")
        t.add("example.com", "/a", "", "y")
        t.add("example.com", "/a", "v", "z")
        self.assertEqual(len(t), 4)

    def test_remove(self) -> None:
        t = table(("example.com", "/a", ""), ("example.com", "", ""))
        t.remove("EXAMPLE.com", "/a", "")
        self.assertEqual(t.lookup("example.com", "/a").value, "example.com||")  # type: ignore[union-attr]
        t.remove("example.com", "", "")
        self.assertIsNone(t.lookup("example.com", "/a"))
        self.assertEqual(len(t), 0)
        t.remove("example.com", "", "")  # absent: no error
        t.remove("never.test", "/", "nobody")
        # the triple is free again
        t.add("example.com", "/a", "", "again")
        self.assertEqual(t.lookup("example.com", "/a").value, "again")  # type: ignore[union-attr]

    def test_iteration_lists_routes(self) -> None:
        t = table(("a.test", "", ""), ("b.test", "/x", "u"))
        self.assertEqual(sorted(r.value for r in t), ["a.test||", "b.test|/x|u"])  # type: ignore[attr-defined]

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.text("/ab", max_size=4), max_size=8, unique=True), st.text("/ab", max_size=6))
    def test_longest_prefix_wins(self, locations: list[str], path: str) -> None:
        t: RouteTable[str] = RouteTable()
        for loc in locations:
            t.add("h.test", loc, "", loc)
        route = t.lookup("h.test", path)
        matching = [loc for loc in locations if path.startswith(loc)]
        if not matching:
            self.assertIsNone(route)
        else:
            assert route is not None
            self.assertEqual(route.value, max(matching, key=len))


class DomainConfigTests(unittest.TestCase):
    def test_subdomain(self) -> None:
        self.assertEqual(subdomain_domain("app", "frps.example.com"), "app.frps.example.com")

    def test_subdomain_errors_are_frps_texts(self) -> None:
        cases = [
            ("app", "", "subdomain is not supported because this feature is not enabled in server"),
            ("a.b", "example.com", "'.' and '*' are not supported in subdomain"),
            ("*", "example.com", "'.' and '*' are not supported in subdomain"),
        ]
        for sub, host, text in cases:
            with self.assertRaises(DomainConfigError) as cm:
                subdomain_domain(sub, host)
            self.assertEqual(str(cm.exception), text)

    def test_custom_domain_under_subdomain_host(self) -> None:
        with self.assertRaises(DomainConfigError) as cm:
            check_custom_domain("x.example.com", "example.com")
        self.assertEqual(str(cm.exception),
                         "custom domain [x.example.com] should not belong to subdomain host [example.com]")
        check_custom_domain("example.com", "example.com")   # same label count: allowed, as in frp
        check_custom_domain("x.other.com", "example.com")
        check_custom_domain("x.example.com", "")
        with self.assertRaises(DomainConfigError):           # frp's substring test, quirks included
            check_custom_domain("a.b.myexample.com", "example.com")

    def test_proxy_domains_order_and_skips(self) -> None:
        self.assertEqual(proxy_domains(["a.test", "", "b.test"], "web", "example.com"),
                         ["a.test", "b.test", "web.example.com"])
        self.assertEqual(proxy_domains(["a.test"], "", ""), ["a.test"])
        with self.assertRaises(DomainConfigError):
            proxy_domains(["a.test"], "web", "")

    def test_client_side_check(self) -> None:
        with self.assertRaises(DomainConfigError) as cm:
            validate_domain_config_for_client([], "")
        self.assertEqual(str(cm.exception), "subdomain and custom domains should not be both empty")
        validate_domain_config_for_client([], "x")
        validate_domain_config_for_client(["a"], "")

    def test_locations_default(self) -> None:
        self.assertEqual(proxy_locations([]), [""])
        self.assertEqual(proxy_locations(["/a", "/"]), ["/a", "/"])


class FrpsObservationTests(unittest.TestCase):
    """1272 requests sent to a real frps 0.65.0 with 14 http proxies, replayed here.

    The capture (``data/captures/vhost-http-routing-frps-0.65.0.json``) records,
    for each request, which proxy served it (each proxy set its own X-Route
    header) or the status frps answered.  Exact names, wildcards at every
    depth (and the ``*.com`` route frps never picks), ``*``, locations,
    routeByHTTPUser with its fallback, httpUser/httpPassword, Host case, port
    and trailing dot, percent-encoded paths, and absolute-form targets with
    Proxy-Authorization are all in it.
    """

    def test_route_table_agrees_with_frps(self) -> None:
        import base64
        import json
        import os

        from frptx.test.support import captures_dir
        from frptx.vhost.http1 import RequestHead, RequestParser
        from frptx.vhost.rewrite import request_route_info, route_http_request

        with open(os.path.join(captures_dir(), "vhost-http-routing-frps-0.65.0.json")) as f:
            capture = json.load(f)
        t: RouteTable[tuple[str, str, str]] = RouteTable()
        for name, domains, locations, route_user, user, password in capture["routes"]:
            for domain in domains:
                for location in proxy_locations(locations):
                    t.add(domain, location, route_user, (name, user, password))

        def basic(creds: list[str]) -> bytes:
            return base64.b64encode(f"{creds[0]}:{creds[1]}".encode())

        observations = capture["observations"]
        self.assertEqual(len(observations), 1272)
        for host, path, auth, proxy_auth, absolute, want in observations:
            target = f"http://{host}{path}" if absolute else path
            wire = f"GET {target} HTTP/1.1\r\nHost: {'ignored.test' if absolute else host}\r\n".encode()
            if auth:
                wire += b"Authorization: Basic " + basic(auth) + b"\r\n"
            if proxy_auth:
                wire += b"Proxy-Authorization: Basic " + basic(proxy_auth) + b"\r\n"
            head = RequestParser().feed(wire + b"\r\n")[0]
            assert isinstance(head, RequestHead)
            decision = route_http_request(t, request_route_info(head), lambda v: (v[1], v[2]))
            if not decision.authorized:
                got = "401"
            else:
                got = decision.route.value[0] if decision.route else "404"
            self.assertEqual(got, want, (host, path, auth, proxy_auth, absolute))


class _Member:
    """A stand-in proxy (only identity matters to the route groups)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class GroupedRoutesTests(unittest.TestCase):
    """Load-balancing groups on the route table: frps's HTTPGroup / TCPMuxGroup rules."""

    def setUp(self) -> None:
        self.a, self.b, self.c = _Member("a"), _Member("b"), _Member("c")

    def picks(self, routes: GroupedRoutes[_Member], n: int, host: str = "example.com", path: str = "/",
              user: str = "") -> list[str]:
        out = []
        for _ in range(n):
            group = routes.lookup(host, path, user)
            assert group is not None
            member = group.pick()
            out.append(member.name if member is not None else "-")
        return out

    def test_members_share_one_route(self) -> None:
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "", "web", "k")
        routes.add(self.b, "example.com", "/", "", "web", "k")
        self.assertEqual(len(routes.table), 1)
        group = routes.lookup("example.com", "/x")
        assert group is not None
        self.assertEqual((group.name, group.founder, group.members), ("web", self.a, [self.a, self.b]))

    def test_round_robin_first_member_first(self) -> None:
        """https/tcpmux: connections go round the members in joining order, the first one first."""
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        for m in (self.a, self.b, self.c):
            routes.add(m, "example.com", "", "", "g", "k")
        self.assertEqual(self.picks(routes, 7), ["a", "b", "c", "a", "b", "c", "a"])

    def test_http_round_robin_starts_at_the_second(self) -> None:
        """frps's HTTPGroup increments its counter before use: the first request goes to index 1."""
        routes: GroupedRoutes[_Member] = GroupedRoutes(offset=1)
        for m in (self.a, self.b, self.c):
            routes.add(m, "example.com", "/", "", "g", "k")
        self.assertEqual(self.picks(routes, 7), ["b", "c", "a", "b", "c", "a", "b"])

    def test_counter_survives_membership_changes(self) -> None:
        """frps keeps one counter per group and takes it modulo the members of the moment."""
        routes: GroupedRoutes[_Member] = GroupedRoutes(offset=1)
        routes.add(self.a, "example.com", "/", "", "g", "k")
        self.assertEqual(self.picks(routes, 2), ["a", "a"])
        routes.add(self.b, "example.com", "/", "", "g", "k")  # counter 2: next index (2+1) % 2
        self.assertEqual(self.picks(routes, 4), ["b", "a", "b", "a"])

    def test_key_mismatch(self) -> None:
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "", "web", "k")
        with self.assertRaises(RouteGroupRefused) as e:
            routes.add(self.b, "example.com", "/", "", "web", "other")
        self.assertEqual(str(e.exception), GROUP_AUTH_FAILED)
        self.assertEqual(str(e.exception), "group auth failed")
        group = routes.lookup("example.com", "/")
        assert group is not None
        self.assertEqual(group.members, [self.a])

    def test_params_checked_before_key(self) -> None:
        """Another domain, location, user (or kind's extras) in the same group: "group params invalid"."""
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "u", "web", "k", extra=("user", "pwd"))
        for args, extra in [(("other.com", "/", "u"), ("user", "pwd")),
                            (("example.com", "/api", "u"), ("user", "pwd")),
                            (("example.com", "/", ""), ("user", "pwd")),
                            (("example.com", "/", "u"), ("user", "other"))]:
            with self.assertRaises(RouteGroupRefused) as e:
                routes.add(self.b, *args, "web", "wrong key", extra=extra)
            self.assertEqual(str(e.exception), GROUP_PARAMS_INVALID, args)
        self.assertEqual(GROUP_PARAMS_INVALID, "group params invalid")
        self.assertEqual(len(routes.table), 1)

    def test_same_member_twice(self) -> None:
        """A grouped proxy naming one domain twice: frps's "group proxy repeated"."""
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "", "web", "k")
        with self.assertRaises(RouteGroupRefused) as e:
            routes.add(self.a, "example.com", "/", "", "web", "k")
        self.assertEqual(str(e.exception), GROUP_PROXY_REPEATED)

    def test_conflicts_with_plain_routes_and_other_groups(self) -> None:
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "")
        with self.assertRaises(RouteConflict):
            routes.add(self.b, "example.com", "/", "", "web", "k")
        self.assertEqual(routes.groups, {})
        routes.add(self.b, "other.com", "/", "", "web", "k")
        with self.assertRaises(RouteConflict):
            routes.add(self.c, "other.com", "/", "", "another", "k")
        with self.assertRaises(RouteConflict):
            routes.add(self.c, "other.com", "/", "")

    def test_member_leaving(self) -> None:
        """A member leaving is no longer picked; the route and its first member's settings stay."""
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        for m in (self.a, self.b, self.c):
            routes.add(m, "example.com", "", "", "g", "k")
        routes.remove(self.a)
        group = routes.lookup("example.com")
        assert group is not None
        self.assertIs(group.founder, self.a)
        self.assertEqual(sorted(self.picks(routes, 4)), ["b", "b", "c", "c"])
        routes.remove(self.b)
        self.assertEqual(self.picks(routes, 3), ["c", "c", "c"])
        with self.assertRaises(RouteGroupRefused):  # the group (and its key) lives on with c
            routes.add(self.a, "example.com", "", "", "g", "wrong")

    def test_last_member_removes_the_route(self) -> None:
        routes: GroupedRoutes[_Member] = GroupedRoutes()
        routes.add(self.a, "example.com", "/", "", "g", "k")
        routes.add(self.b, "example.com", "/", "", "g", "k")
        routes.remove(self.a)
        routes.remove(self.b)
        self.assertIsNone(routes.lookup("example.com", "/"))
        self.assertEqual((len(routes.table), routes.groups), (0, {}))
        # the name is free again: a new group with another key and route
        routes.add(self.c, "new.example.com", "/", "", "g", "new key")
        group = routes.lookup("new.example.com", "/")
        assert group is not None
        self.assertEqual((group.key, group.members), ("new key", [self.c]))

    def test_plain_route_is_a_group_of_one(self) -> None:
        routes: GroupedRoutes[_Member] = GroupedRoutes(offset=1)
        routes.add(self.a, "example.com", "/", "")
        routes.add(self.b, "example.com", "/b", "")
        self.assertEqual(self.picks(routes, 2, path="/x") + self.picks(routes, 2, path="/b"), ["a", "a", "b", "b"])
        routes.remove(self.a)
        self.assertIsNone(routes.lookup("example.com", "/x"))
        self.assertEqual(len(routes.table), 1)
