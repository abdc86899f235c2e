"""frptx.client"""
