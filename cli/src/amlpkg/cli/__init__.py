"""The ``amlpkg`` command line: one module per command group.

Commands only parse their arguments and delegate to library functions.
"""
