# -*- test-case-name: frptx.test.test_e2e_visitors -*-
"""stcp proxies on frpc: registered with the visitors' secret; work connections relay like tcp."""
from __future__ import annotations

from typing import Any

from frptx.client.kinds.registry import ClientKind, register
from frptx.client.kinds.tcp import relay_to_local


def secret_fields(proxy: Any) -> dict[str, Any]:
    """stcp and sudp proxies carry the visitors' shared secret and who may visit."""
    return {"sk": proxy.secret_key, "allow_users": tuple(proxy.allow_users)}


KIND = register(ClientKind("stcp", secret_fields, relay_to_local))
