"""frptx.test"""
