"""frptx.server"""
