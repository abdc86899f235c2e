# -*- test-case-name: frptx.test.test_web_server -*-
"""
The web layer: frps' dashboard, REST API and Prometheus endpoint, and frpc's
admin API, compatible with frp's.  It reads only the protocols of
L{frptx.web.state}, never the server's or client's objects.
"""
