"""frptx: frp (fast reverse proxy) rebuilt on Twisted."""
from setuptools import setup

setup(
    name="frptx",
    version="0.1.0",
    description="frp (fast reverse proxy) rebuilt in Python on Twisted, wire-compatible with Go frp",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["frptx", "frptx.config", "frptx.wire", "frptx.mux", "frptx.protocols", "frptx.factories",
              "frptx.server", "frptx.client", "frptx.transport", "frptx.test", "twisted.plugins"],
    package_data={"frptx": ["py.typed"], "twisted": ["plugins/frp_plugin.py"]},
    install_requires=[
        "twisted>=23.8",
        "pyopenssl>=23.2",
        "service-identity>=23.1",
        "pyyaml>=6.0",
        "cryptography>=41",
        "cramjam>=2.7",
        "tomli>=2.0; python_version<'3.11'",
    ],
    extras_require={"test": ["hypothesis>=6.80", "psutil>=5.9"]},
)
