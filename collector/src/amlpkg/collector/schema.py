"""Migration 5: devices and telemetry rows (issue 6).

Plain types only (TEXT, BIGINT, DOUBLE PRECISION), so the same DDL runs on
PostgreSQL. ``telemetry.message_id`` is the primary key: a message delivered twice
(at-least-once from devices, retried OTLP exports) is stored once. Each row names
its device and/or deployment and model version, which the lineage links as
model version -> deployment -> device.
"""

from __future__ import annotations

SQL = """
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    module TEXT,
    deployment_id TEXT,
    model_ref TEXT,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL
);
CREATE TABLE telemetry (
    message_id TEXT PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('device', 'otlp_metrics', 'otlp_traces')),
    device_id TEXT,
    deployment_id TEXT,
    model_name TEXT,
    model_version TEXT,
    seq BIGINT,
    produced DOUBLE PRECISION,
    received DOUBLE PRECISION NOT NULL,
    window_s DOUBLE PRECISION,
    requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    latency_avg_ms DOUBLE PRECISION,
    latency_p50_ms DOUBLE PRECISION,
    latency_p95_ms DOUBLE PRECISION,
    latency_p99_ms DOUBLE PRECISION,
    body TEXT NOT NULL
);
CREATE INDEX telemetry_by_device ON telemetry(device_id, received);
CREATE INDEX telemetry_by_deployment ON telemetry(deployment_id, received);
CREATE INDEX telemetry_by_received ON telemetry(received)
"""

# Migration 6: devices as first-class records (issue 10). ``first_seen``/``last_seen``
# are when amlpkg first and last heard of the device (a deploy naming it, or its
# telemetry); ``last_telemetry`` only the latter. ``model_ref`` is the model the
# device reports serving; ``desired_*`` what a deploy (or a library call) asked for.
DEVICES_SQL = """
ALTER TABLE devices ADD COLUMN desired_model TEXT;
ALTER TABLE devices ADD COLUMN desired_sha256 TEXT;
ALTER TABLE devices ADD COLUMN desired_deployment_id TEXT;
ALTER TABLE devices ADD COLUMN desired_set DOUBLE PRECISION;
ALTER TABLE devices ADD COLUMN last_telemetry DOUBLE PRECISION;
UPDATE devices SET last_telemetry = last_seen
"""

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = ((5, SQL), (6, DEVICES_SQL))
