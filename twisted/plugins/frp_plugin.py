"""twistd plugins ``frps`` and ``frpc``.

Kept import-light: twistd imports every plugin for ``--help``, so frptx itself is
imported only when one of these is actually run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer

if TYPE_CHECKING:
    from frptx.tap import Options


@implementer(IServiceMaker, IPlugin)
class FrpServiceMaker:
    """Builds frps or frpc (``frptx.tap``) from ``--config``."""

    def __init__(self, tapname: str, description: str) -> None:
        self.tapname = tapname
        self.description = description
        self.name = f"frptx {tapname}"

    @property
    def options(self) -> type[Options]:
        from frptx.tap import Options

        return Options

    def makeService(self, options: Options) -> IService:
        from frptx.tap import makeService

        return makeService(options, self.tapname)


frps = FrpServiceMaker("frps", "frp server (frps): expose services behind NAT, wire-compatible with frp")
frpc = FrpServiceMaker("frpc", "frp client (frpc): tunnel local services through an frp server")
