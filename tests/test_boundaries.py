"""The dependency rule of the design card, checked three ways.

1. Statically: each folder imports only what the layout table allows.
2. At run time: each role's entry point, imported in a clean interpreter, loads
   none of the heavy or foreign modules that role must not need.
3. In packaging: the ``runtime`` extra (what a scoring image installs) lists no
   training framework, Docker or Kubernetes client.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> the amlpkg subpackages it may import (besides itself and amlpkg.errors)
ALLOWED: dict[str, set[str]] = {
    "trainer": set(),
    "runtime": set(),
    "edge-agent": {"runtime"},
    "packager": {"trainer", "runtime"},
}
SUBPACKAGE_OF_FOLDER = {
    "trainer": "trainer",
    "runtime": "runtime",
    "edge-agent": "edge_agent",
    "packager": "packager",
}

TRAINING_AND_INFRA = ["sklearn", "skl2onnx", "torch", "tensorflow", "docker", "kubernetes"]


def _amlpkg_imports(path: Path) -> set[str]:
    """The second component of every ``amlpkg.X`` import in a file (``errors`` included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "amlpkg" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folders_import_only_what_the_layout_allows(folder: str) -> None:
    own = SUBPACKAGE_OF_FOLDER[folder]
    allowed = ALLOWED[folder] | {own, "errors"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_amlpkg_imports(path) - allowed)
        for path in (ROOT / folder).rglob("*.py")
        if _amlpkg_imports(path) - allowed
    }
    assert offenders == {}, f"{folder}/ may import only {sorted(allowed)}"


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])} | set(
        json.loads(out.splitlines()[-1])
    )


def test_import_amlpkg_is_light() -> None:
    loaded = _modules_loaded_by("import amlpkg")
    heavy = ["numpy", "onnx", "onnxruntime", "pydantic", "rich", "typer", *TRAINING_AND_INFRA]
    assert sorted(set(heavy) & loaded) == []


def test_training_api_pulls_in_no_framework() -> None:
    """What a training script loads when it logs a metric."""
    loaded = _modules_loaded_by("import amlpkg; amlpkg.log_param")
    assert sorted(set([*TRAINING_AND_INFRA, "onnxruntime", "onnx"]) & loaded) == []


def test_scoring_runtime_loads_no_training_or_cli_code() -> None:
    loaded = _modules_loaded_by("import amlpkg.runtime.server")
    forbidden = [*TRAINING_AND_INFRA, "typer", "amlpkg.trainer", "amlpkg.packager"]
    assert sorted(set(forbidden) & loaded) == []


def test_runtime_extra_installs_no_training_or_infra_client() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirement_names = {
        req.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for req in [*project["dependencies"], *project["optional-dependencies"]["runtime"]]
    }
    forbidden = {"scikit-learn", "skl2onnx", "torch", "tensorflow", "docker", "kubernetes", "onnx"}
    assert sorted(requirement_names & forbidden) == []


# folder -> the extras whose requirements its code may import (the base install always)
EXTRAS_OF_FOLDER: dict[str, tuple[str, ...]] = {
    "runtime": ("runtime",),
    "trainer": ("train", "torch"),
    "edge-agent": ("runtime", "edge"),
    "packager": ("runtime", "train", "optimize", "deploy"),
}
# Imported only on purpose by tools that run in the dev environment.
DEV_ONLY_IMPORTS = {"grpc_tools"}


def _provided_by(requirements: list[str]) -> set[str]:
    """Normalized names of the declared distributions and what they install with them."""
    import importlib.metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    provided: set[str] = set()
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == "amlpkg":
            continue
        provided.add(canonicalize_name(requirement.name))
        for sub in importlib.metadata.requires(requirement.name) or []:
            sub_requirement = Requirement(sub)
            marker = sub_requirement.marker
            wanted = [{"extra": e} for e in requirement.extras] or [{"extra": ""}]
            if marker is None or any(marker.evaluate(env) for env in wanted):
                provided.add(canonicalize_name(sub_requirement.name))
    return provided


def _top_level_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("folder", sorted(EXTRAS_OF_FOLDER))
def test_every_third_party_import_is_declared_in_the_roles_extras(folder: str) -> None:
    """A module a role imports must come with that role's install, not only with [dev]."""
    import importlib.metadata

    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    provided = _provided_by(
        [*project["dependencies"], *(r for e in EXTRAS_OF_FOLDER[folder] for r in extras[e])]
    )
    distributions = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing: dict[str, list[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        for module in _top_level_imports(path) - stdlib - DEV_ONLY_IMPORTS - {"amlpkg"}:
            dists = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not dists & provided:
                missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert missing == {}, (
        f"declare these in the extras {EXTRAS_OF_FOLDER[folder]} of pyproject.toml"
    )
