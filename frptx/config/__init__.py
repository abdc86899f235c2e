# -*- test-case-name: frptx.test.test_config -*-
"""
frps/frpc configuration: frp's v0.52+ file format (YAML, TOML or JSON with
camelCase keys) loaded into frozen, validated dataclasses.

Typical use::

    from frptx.config import load_client_config, ConfigError
    try:
        config = load_client_config("frpc.yaml")
    except ConfigError as e:
        print(e)        # one "path: reason" per line

The key schema and the table of frp features frptx does not run yet live in
L{frptx.config.schema} (C{UNSUPPORTED_FEATURES}).
"""

from __future__ import annotations

from .loader import (
    load_client_config,
    load_server_config,
    parse_client_config,
    parse_server_config,
    read_config_file,
    render_template,
)
from .model import (
    PROXY_CONFIG_TYPES,
    AuthConfig,
    ClientConfig,
    ClientTLSConfig,
    ClientTransportConfig,
    ConfigError,
    FrozenMap,
    HealthCheckConfig,
    HTTPPluginConfig,
    HttpProxyConfig,
    HttpsProxyConfig,
    LoadBalancerConfig,
    LogConfig,
    PluginConfig,
    PortRange,
    ProxyConfig,
    ProxyTransportConfig,
    ServerConfig,
    ServerTLSConfig,
    ServerTransportConfig,
    StcpProxyConfig,
    SudpProxyConfig,
    TcpmuxProxyConfig,
    TcpProxyConfig,
    UdpProxyConfig,
    VisitorConfig,
    VisitorTransportConfig,
    WebServerConfig,
    XtcpProxyConfig,
)
from .schema import UNSUPPORTED_FEATURES

__all__ = [
    "ConfigError",
    "FrozenMap",
    "PortRange",
    "AuthConfig",
    "LogConfig",
    "WebServerConfig",
    "ServerTLSConfig",
    "ServerTransportConfig",
    "ServerConfig",
    "ClientTLSConfig",
    "ClientTransportConfig",
    "ProxyTransportConfig",
    "LoadBalancerConfig",
    "HealthCheckConfig",
    "PluginConfig",
    "HTTPPluginConfig",
    "ProxyConfig",
    "TcpProxyConfig",
    "UdpProxyConfig",
    "StcpProxyConfig",
    "SudpProxyConfig",
    "XtcpProxyConfig",
    "HttpProxyConfig",
    "HttpsProxyConfig",
    "TcpmuxProxyConfig",
    "PROXY_CONFIG_TYPES",
    "VisitorTransportConfig",
    "VisitorConfig",
    "ClientConfig",
    "UNSUPPORTED_FEATURES",
    "load_server_config",
    "load_client_config",
    "parse_server_config",
    "parse_client_config",
    "read_config_file",
    "render_template",
]
