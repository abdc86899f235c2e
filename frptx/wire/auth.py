# -*- test-case-name: frptx.test.test_wire_crypto -*-
"""Token authentication keys (frp-protocol.md §3.1).

frp never sends the token itself: Login (and, with auth scopes, Ping and
NewWorkConn) carry ``md5hex(token || decimal(timestamp))``.  The server
recomputes it with the timestamp the client sent; there is no freshness check
in any frp version, so neither is there one here.
"""
from __future__ import annotations

import hashlib
import hmac

__all__ = ["privilege_key", "verify_privilege_key", "sign_key"]


def privilege_key(token: str, timestamp: int) -> str:
    """Return the lowercase hex MD5 of ``token`` followed by the decimal ``timestamp``.

    This is the ``privilege_key`` of Login/Ping/NewWorkConn.
    """
    return hashlib.md5(token.encode("utf-8") + str(int(timestamp)).encode("ascii")).hexdigest()


def verify_privilege_key(token: str, timestamp: int, key: str) -> bool:
    """Check a received ``privilege_key`` in constant time (as HEAD frps does).

    A non-ASCII ``key`` can never be a valid hex digest; it is rejected
    instead of letting :func:`hmac.compare_digest` raise ``TypeError``.
    """
    if not key.isascii():
        return False
    return hmac.compare_digest(privilege_key(token, timestamp), key)


def sign_key(secret_key: str, timestamp: int) -> str:
    """Return the ``sign_key`` of a NewVisitorConn: ``md5hex(sk || decimal(timestamp))``.

    Same formula as :func:`privilege_key`, but the secret is the proxy's
    ``sk``/``secretKey`` (stcp/sudp/xtcp), not the server token; it has its own
    name so call sites say which secret they mean.
    """
    return privilege_key(secret_key, timestamp)
