"""Tracked runs, ONNX export with parity checks, and the workspace store.

Imports nothing else of amlpkg but :mod:`amlpkg.errors`.
"""
