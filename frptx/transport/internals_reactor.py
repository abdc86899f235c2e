# -*- test-case-name: frptx.test.test_twisted_internals -*-
"""Import Twisted's reactor without importing pyOpenSSL.

Twisted's TCP module imports its ``startTLS`` layer (``twisted.internet._newtls``, so
``twisted.protocols.tls``, pyOpenSSL and cryptography's x509 bindings) and the POSIX
reactor base imports ``twisted.internet.ssl`` (``_sslverify``, service_identity, idna)
for ``listenSSL``/``connectSSL``, both at import time and both inside ``try: ...
except ImportError``.  A frps or frpc without TLS would carry them for nothing: with
twistd, 6 MiB of the 56 MiB an idle frps or frpc had (measured with ``bench/run.py
--only rss``).  frptx never uses those entry points: its TLS is a factory wrapped in
``TLSMemoryBIOFactory`` (``frptx.transport.tls_server``/``tls_client``, the client
plugins' and twisted.web's ``wrapClientTLS``), which imports pyOpenSSL when the first
TLS connection is made.

So L{import_reactor} imports the reactor while ``OpenSSL`` cannot be imported
(``sys.modules["OpenSSL"] = None``, the import system's documented way to make an
import fail) and makes it importable again right after.  The cost, for the whole
process: C{tcp.Connection} has no ``startTLS`` and the reactor no ``listenSSL`` /
``connectSSL`` (it does not provide C{IReactorSSL}); C{twisted.internet.endpoints},
C{twisted.internet.ssl} and C{twisted.protocols.tls} imported later are complete.

This relies on how Twisted lays out its modules (which of them import pyOpenSSL, and
that they tolerate its absence), hence it lives with the other Twisted internals,
with canaries in ``frptx.test.test_twisted_internals``.  It imports nothing from
Twisted at import time: it has to run before anything imports ``twisted.internet.tcp``.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["TLS_OPTIONAL_MODULES", "import_reactor"]

#: Twisted modules that import pyOpenSSL at import time if they can and work without it
TLS_OPTIONAL_MODULES = ("twisted.internet.tcp", "twisted.internet.posixbase")
_HIDDEN = "OpenSSL"


def import_reactor() -> Any:
    """Twisted's global reactor, installing the default one if none is installed yet.

    When nothing has imported pyOpenSSL or Twisted's TCP modules yet (a twistd process
    before frptx's ``makeService``), they are imported without pyOpenSSL; otherwise
    this is ``from twisted.internet import reactor``.  Should a Twisted release need
    pyOpenSSL to import the reactor after all, the reactor is imported the usual way.
    """
    if _HIDDEN in sys.modules or any(name in sys.modules for name in TLS_OPTIONAL_MODULES):
        from twisted.internet import reactor

        return reactor
    sys.modules[_HIDDEN] = None  # type: ignore[assignment]  # "import OpenSSL" now raises ImportError
    try:
        from twisted.internet import reactor as without_openssl

        return without_openssl
    except ImportError:
        pass  # this Twisted cannot do without pyOpenSSL: import the reactor the usual way, below
    finally:
        if _HIDDEN in sys.modules and sys.modules[_HIDDEN] is None:
            del sys.modules[_HIDDEN]
    from twisted.internet import reactor

    return reactor
