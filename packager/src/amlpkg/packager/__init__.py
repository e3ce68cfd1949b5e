"""Optimize, build and deploy; home of the ``amlpkg`` command line."""
