"""Shared test helpers for real services: skip on a laptop, fail in CI.

A test that needs a service (Docker engine, the local registry, PostgreSQL, S3, mosquitto, sshd)
or a binary calls :func:`require`. Without it the test is skipped, except when
``CI=true``: there ``.ci/run`` has started the service, so its absence is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REGISTRY = "127.0.0.1:5000"


def require(condition: bool, reason: str) -> None:
    """Continue when ``condition``; else skip (laptop) or fail (CI), naming ``reason``."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_available() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` at ``DOCKER_HOST`` or the default socket.

    A plain socket in a ``with`` block, not the docker SDK: the SDK's version probe leaves
    its unix socket open when no engine answers, and the ``ResourceWarning`` then fails an
    unrelated test under ``-W error``.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    ping = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(host[len("unix://") :])
                sock.sendall(ping)
                return sock.recv(64).split(b" ")[1:2] == [b"200"]
        if host.startswith("tcp://"):
            url = "http://" + host[len("tcp://") :] + "/_ping"
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status) == 200
    except OSError:
        return False
    return False


def registry_available(address: str = REGISTRY) -> bool:
    """Whether the local OCI registry answers ``/v2/``."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as response:
            return int(response.status) == 200
    except OSError:
        return False


def service_env() -> dict[str, str]:
    """What ``.ci/services.sh`` wrote to ``$AMLPKG_SERVICES_DIR/env.*``, under the environment.

    Keys: ``AMLPKG_TEST_DATABASE_URL`` (PostgreSQL, a role that may create databases),
    ``AMLPKG_TEST_S3_ENDPOINT``, ``AMLPKG_TEST_S3_ACCESS_KEY``, ``AMLPKG_TEST_S3_SECRET_KEY``.
    """
    found: dict[str, str] = {}
    folder = Path(os.environ.get("AMLPKG_SERVICES_DIR", "/tmp/amlpkg-services"))
    for path in sorted(folder.glob("env.*")) if folder.is_dir() else []:
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("AMLPKG_TEST_"):
                found[key.strip()] = value.strip()
    found.update({k: v for k, v in os.environ.items() if k.startswith("AMLPKG_TEST_")})
    return found


def postgres_url() -> str | None:
    """The test PostgreSQL's URL when it accepts a connection now, else None."""
    url = service_env().get("AMLPKG_TEST_DATABASE_URL")
    if not url:
        return None
    try:
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3):
            return url
    except Exception:
        return None


def s3_settings() -> dict[str, str] | None:
    """``endpoint``, ``access_key``, ``secret_key`` of the test S3 server when it answers."""
    env = service_env()
    settings = {
        "endpoint": env.get("AMLPKG_TEST_S3_ENDPOINT", ""),
        "access_key": env.get("AMLPKG_TEST_S3_ACCESS_KEY", ""),
        "secret_key": env.get("AMLPKG_TEST_S3_SECRET_KEY", ""),
    }
    if not all(settings.values()):
        return None
    try:
        with urllib.request.urlopen(settings["endpoint"], timeout=3):
            pass
    except urllib.error.HTTPError:
        pass  # 403 to an anonymous GET: the server is up
    except OSError:
        return None
    return settings


@contextlib.contextmanager
def sshd_server(folder: Path) -> Iterator[tuple[int, Path]]:
    """A real OpenSSH server on a free 127.0.0.1 port with keys made under ``folder``.

    Yields ``(port, home)``: ``home/.ssh`` trusts the host key and names the client key,
    so a process with ``HOME=home`` (paramiko, the docker SDK's ``ssh://``) logs in as
    the current user. Skips (fails in CI) without sshd, ssh-keygen or the docker CLI
    (the server side of ``docker system dial-stdio``).
    """
    require(Path("/usr/sbin/sshd").exists(), "openssh-server is needed")
    require(shutil.which("ssh-keygen") is not None, "ssh-keygen is needed")
    require(shutil.which("docker") is not None, "the docker CLI is needed on the ssh side")
    keys = folder / "keys"
    keys.mkdir(parents=True)
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"HostKey {keys / 'host'}\nAuthorizedKeysFile {keys / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {folder / 'sshd.pid'}\nListenAddress 127.0.0.1\n"
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    with (folder / "sshd.log").open("w") as log:
        process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        home = folder / "userhome"
        (home / ".ssh").mkdir(parents=True)
        host_key = (keys / "host.pub").read_text().split()
        (home / ".ssh" / "known_hosts").write_text(
            f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n"
        )
        (home / ".ssh" / "config").write_text(f"Host 127.0.0.1\n  IdentityFile {keys / 'client'}\n")
        yield port, home
    finally:
        process.terminate()
        process.wait(10)
