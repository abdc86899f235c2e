# -*- test-case-name: frptx.test.test_vhost_routing -*-
"""frptx.vhost: the sans-IO core of frp's HTTP/HTTPS virtual hosts and tcpmux.

Pure modules, no sockets, reactors or clocks (a bottom layer like
:mod:`frptx.wire`): the frps listeners feed them bytes and act on what they
return, so every rule can be tested with plain byte strings.

* :mod:`frptx.vhost.routing` - the (domain, location, HTTP user) route table.
* :mod:`frptx.vhost.sni` - the server name from a TLS ClientHello.
* :mod:`frptx.vhost.http1` - HTTP/1.1 head parsing, body framing, serialising.
* :mod:`frptx.vhost.rewrite` - frp's header rules, basic auth, canned responses.
* :mod:`frptx.vhost.httpconnect` - tcpmux's ``CONNECT host:port`` handshake.
"""
from __future__ import annotations
