"""The IoT Edge module that runs beside the scoring runtime on a device (or hosts it).

Pieces, one job each:

- :mod:`.desired`: the module twin's desired properties (pydantic) the agent acts on.
- :mod:`.download`: fetch with resume (HTTP ``Range``, ``file://``, OCI layer), verify
  sha256 and an optional Ed25519 signature over the digest.
- :mod:`.swap`: load the candidate beside the serving model, smoke-test it, switch with
  no failed request, keep the old model on any failed check; rollback and reload.
- :mod:`.backend` / :mod:`.remote`: where models are served: the runtime in this
  process, or a separate scoring module the agent pushes models to (Triton load call).
- :mod:`.outbox`: the bounded on-disk store-and-forward queue (SQLite WAL) of telemetry.
- :mod:`.sampler`: telemetry records from the runtime's Prometheus registry.
- :mod:`.hub` / :mod:`.standalone`: the control links (IoT Hub module client, or a
  polled desired-state file/URL); :mod:`.agent` ties it all to one asyncio loop;
  :mod:`.__main__` is ``amlpkg-edge-agent``.
"""
