"""frptx.protocols"""
