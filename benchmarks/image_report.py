"""Scoring-image facts for RESULTS.md: size, cold build, model-only rebuild, start to ready.

Run: ``python -m benchmarks.image_report [--registry 127.0.0.1:5000] [--starts 3]``.
Needs a Docker engine; the base image is the locally made Debian one (made first if
missing, not timed). The model is the quickstart's iris classifier, trained in a
fresh workspace. "Cold" means a fresh workspace (wheelhouse gathered, pip's own
download cache may help) and no layer cache (``nocache``); the base is present.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from amlpkg.packager.build.api import build_image
from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base
from amlpkg.packager.build.image import remove_image, split_ref
from amlpkg.packager.build.options import BuildOptions
from amlpkg.store.workspace import open_workspace
from amlpkg.trainer.quickstart import run_quickstart
from amlpkg.trainer.registry import register
from benchmarks.servers import free_ports


def start_to_ready(ref: str, timeout_s: float = 120.0) -> float:
    """Seconds from ``docker run`` to the first 200 on ``/v2/health/ready``."""
    import docker

    client = docker.from_env()
    (port,) = free_ports(1)
    started = time.monotonic()
    container = client.containers.run(ref, detach=True, ports={"8000/tcp": ("127.0.0.1", port)})
    try:
        while time.monotonic() - started < timeout_s:
            try:
                url = f"http://127.0.0.1:{port}/v2/health/ready"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{ref} not ready after {timeout_s} s")
    finally:
        container.remove(force=True)
        client.close()


def compressed_size(repo_digest: str) -> int | None:
    """Sum of the pushed layers' (compressed) sizes from the registry's manifest."""
    repository, _, digest = repo_digest.partition("@")
    registry, _, name = repository.partition("/")
    request = urllib.request.Request(
        f"http://{registry}/v2/{name}/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            manifest = json.loads(response.read())
    except OSError:
        return None
    return sum(int(layer["size"]) for layer in manifest.get("layers", []))


def measure(registry: str | None = None, starts: int = 3) -> dict[str, Any]:
    """Build, rebuild and start the CPU image; return the measurements."""
    ensure_local_base()
    with tempfile.TemporaryDirectory(prefix="amlpkg-image-report-") as scratch:
        home = Path(scratch) / "home"
        ref = run_quickstart(home, folds=2).model_version.ref
        prefix = f"{registry}/" if registry else ""
        tag = f"{prefix}amlpkg-bench/iris:{uuid.uuid4().hex[:8]}"
        split_ref(tag)
        with open_workspace(home) as ws:
            cold = build_image(
                ws,
                ref,
                BuildOptions(
                    base_image=LOCAL_BASE_TAG, tag=tag, push=registry is not None, no_cache=True
                ),
            )
            import onnx

            model = onnx.load(
                str(ws.artifacts.verified_path(cold.labels["ai.amlpkg.model.sha256"]))
            )
            model.doc_string = f"retrained {uuid.uuid4()}"
            changed = Path(scratch) / "model.onnx"
            onnx.save(model, str(changed))
            second = register(ref.split(":")[0], changed, workspace=ws)
            tag2 = f"{tag}-rebuild"
            rebuilt = build_image(ws, second.ref, BuildOptions(base_image=LOCAL_BASE_TAG, tag=tag2))
        try:
            ready = [start_to_ready(tag) for _ in range(starts)]
        finally:
            remove_image(tag)
            remove_image(tag2)
    packed = compressed_size(cold.repo_digest) if cold.repo_digest else None
    return {
        "image": cold.repo_digest or tag,
        "size_mb": round((cold.size_bytes or 0) / 1e6, 1),
        "compressed_mb": round(packed / 1e6, 1) if packed is not None else None,
        "cold_build_s": cold.build_seconds,
        "model_only_rebuild_s": rebuilt.build_seconds,
        "start_to_ready_s": [round(s, 2) for s in ready],
        "start_to_ready_median_s": round(statistics.median(ready), 2),
    }


def table(result: dict[str, Any]) -> str:
    """The measurements as a Markdown table for RESULTS.md."""
    rows = [
        ("CPU image size (uncompressed, `docker image inspect`)", f"{result['size_mb']} MB",
         "< 250 MB"),
        ("CPU image size (compressed layers in the registry)",
         f"{result['compressed_mb']} MB" if result["compressed_mb"] else "not pushed", "-"),
        ("cold build (fresh workspace, no layer cache, base present)",
         f"{result['cold_build_s']:.1f} s", "-"),
        ("model-only rebuild", f"{result['model_only_rebuild_s']:.1f} s", "-"),
        ("container start to ready (median)",
         f"{result['start_to_ready_median_s']:.2f} s ({result['start_to_ready_s']})", "-"),
    ]  # fmt: skip
    lines = ["| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


def main() -> None:
    """Measure and print the table (and the JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", help="push to this registry (adds the compressed size)")
    parser.add_argument("--starts", type=int, default=3, help="container starts to time")
    parser.add_argument("--json", action="store_true", help="print JSON, not Markdown")
    args = parser.parse_args()
    result = measure(args.registry, args.starts)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
