"""frptx: frp (fast reverse proxy) rebuilt on Twisted.

The metadata lives in ``pyproject.toml``; this file is kept for tools that still
look for it.
"""
from setuptools import setup

setup()
