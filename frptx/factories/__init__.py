"""frptx.factories"""
