"""twistd plugins ``frps`` and ``frpc``.

Kept import-light: twistd imports every plugin for ``--help``, so frptx itself is
imported only when one of these is actually run.
"""
from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IServiceMaker, IPlugin)
class FrpServiceMaker:
    """Builds frps or frpc (``frptx.tap``) from ``--config``."""

    def __init__(self, tapname: str, description: str) -> None:
        self.tapname = tapname
        self.description = description
        self.name = f"frptx {tapname}"

    @property
    def options(self):  # type: ignore[no-untyped-def]
        from frptx.tap import Options

        return Options

    def makeService(self, options):  # type: ignore[no-untyped-def]
        from frptx.tap import makeService

        return makeService(options, self.tapname)


frps = FrpServiceMaker("frps", "frp server (frps): expose services behind NAT, wire-compatible with frp")
frpc = FrpServiceMaker("frpc", "frp client (frpc): tunnel local services through an frp server")
