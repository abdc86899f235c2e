"""frptx: frp (fast reverse proxy) rebuilt on Twisted, wire-compatible with Go frp."""

__version__ = "0.1.0"

#: The frp release whose v1 wire protocol frptx speaks; sent as Login.version and
#: LoginResp.version.  frp servers only require X.Y.Z >= 0.18.0.
FRP_PROTOCOL_VERSION = "0.61.0"
