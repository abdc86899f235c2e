# -*- test-case-name: frptx.test.test_protocols_client -*-
"""Readable one-line reasons for failed connections to frps."""
from __future__ import annotations

import sys

from twisted.python.failure import Failure


def describe_failure(reason: Failure | None) -> str:
    """A one-line reason for a failed connection, with TLS errors made readable."""
    if reason is None:
        return "connection closed"
    if "frptx.transport.tls_context" not in sys.modules:
        # no TLS in this process, so no TLS error: a plain frpc does not load pyOpenSSL for this
        return reason.getErrorMessage()
    from OpenSSL.SSL import Error as SSLError

    from frptx.transport.tls_context import TLSVerificationError, describe_tls_error

    if reason.check(SSLError, TLSVerificationError):
        return describe_tls_error(reason)
    return reason.getErrorMessage()
