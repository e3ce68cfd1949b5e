#!/usr/bin/env bash
# Start the services the tests use, if they are not running yet (idempotent):
#   dockerd (overlay2) and a local OCI registry on 127.0.0.1:5000 without auth.
# mosquitto and sshd are started by the test fixtures that need them.
set -euo pipefail
state=${AMLPKG_SERVICES_DIR:-/tmp/amlpkg-services}
mkdir -p "$state"

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
