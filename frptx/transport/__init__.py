"""frptx.transport"""
