"""The client side of the team server (``amlpkg server``).

- :mod:`.config`: where the tracking server comes from (``amlpkg login``'s
  credentials file, ``AMLPKG_TRACKING_URI``/``AMLPKG_TRACKING_TOKEN``) and which
  backend a call uses, embedded workspace or server.
- :mod:`.client`: a thin typed HTTP client over ``/api/v1`` whose failures are
  errors of :mod:`amlpkg.errors`.
- :mod:`.spool` and :mod:`.run`: the script API's runs on a server, with params,
  metrics and tags spooled to disk and sent from a background thread.
- :mod:`.runner`: ``amlpkg run`` against a server.
- :mod:`.backend`: the one read/write interface the CLI's ``runs``, ``models`` and
  ``lineage`` commands call, embedded or remote.

Nothing here is imported by ``import amlpkg``; ``httpx`` loads only when a server is used.
"""
