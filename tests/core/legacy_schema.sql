-- The workspace schema as the hand-written migration runner (before Alembic) left it:
-- each block is one version recorded in table schema_migrations.

-- version 0
CREATE TABLE IF NOT EXISTS lineage_edges (
    id INTEGER PRIMARY KEY,
    src_kind TEXT NOT NULL,
    src_id TEXT NOT NULL,
    dst_kind TEXT NOT NULL,
    dst_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (src_kind, src_id, dst_kind, dst_id, relation)
);
CREATE INDEX IF NOT EXISTS lineage_by_src ON lineage_edges(src_kind, src_id);
CREATE INDEX IF NOT EXISTS lineage_by_dst ON lineage_edges(dst_kind, dst_id);

-- version 1
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    name TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'killed')),
    start_time REAL NOT NULL,
    end_time REAL,
    exit_code INTEGER,
    command TEXT,
    git_commit TEXT,
    git_dirty INTEGER,
    python_version TEXT,
    host TEXT,
    user TEXT
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, start_time);
CREATE TABLE params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    step INTEGER NOT NULL,
    timestamp REAL NOT NULL
);
CREATE INDEX metrics_by_run ON metrics(run_id, key, step);
CREATE TABLE tags (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE model_versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL CHECK (version >= 1),
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    opset INTEGER,
    signature TEXT NOT NULL,
    run_id TEXT REFERENCES runs(id),
    source TEXT NOT NULL,
    description TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE model_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version)
);
CREATE TABLE aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version)
);

-- version 2
CREATE TABLE variants (
    id TEXT PRIMARY KEY,
    parent_name TEXT NOT NULL,
    parent_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    precision TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    providers TEXT NOT NULL,
    recipe TEXT NOT NULL,
    measurements TEXT NOT NULL,
    accuracy TEXT NOT NULL,
    accepted INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    reason TEXT NOT NULL,
    chosen INTEGER NOT NULL DEFAULT 0 CHECK (chosen IN (0, 1)),
    created REAL NOT NULL,
    FOREIGN KEY (parent_name, parent_version) REFERENCES model_versions(name, version)
);
CREATE INDEX variants_by_parent ON variants(parent_name, parent_version, target, created);

-- version 3
CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    variant_id TEXT,
    flavor TEXT NOT NULL,
    platform TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('image', 'dir', 'tar', 'triton')),
    image_ref TEXT,
    image_id TEXT,
    repo_digest TEXT,
    path TEXT,
    size_bytes INTEGER,
    labels TEXT NOT NULL DEFAULT '{}',
    build_seconds REAL,
    created REAL NOT NULL,
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions(name, version)
);
CREATE INDEX packages_by_model ON packages(model_name, model_version, created);

-- version 4
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision >= 1),
    target TEXT NOT NULL,
    model TEXT,
    package TEXT,
    image TEXT,
    image_digest TEXT,
    endpoint_http TEXT,
    endpoint_grpc TEXT,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed', 'stopped')),
    reason TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (name, revision)
);
CREATE INDEX deployments_by_name ON deployments(name, revision);

-- version 5
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
CREATE INDEX telemetry_by_received ON telemetry(received);

-- version 6
ALTER TABLE devices ADD COLUMN desired_model TEXT;
ALTER TABLE devices ADD COLUMN desired_sha256 TEXT;
ALTER TABLE devices ADD COLUMN desired_deployment_id TEXT;
ALTER TABLE devices ADD COLUMN desired_set DOUBLE PRECISION;
ALTER TABLE devices ADD COLUMN last_telemetry DOUBLE PRECISION;
UPDATE devices SET last_telemetry = last_seen;

-- version 7
CREATE TABLE server_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('reader', 'contributor', 'owner')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL,
    expires DOUBLE PRECISION,
    revoked DOUBLE PRECISION
);
CREATE TABLE server_audit (
    id INTEGER PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX server_audit_by_time ON server_audit(time);
