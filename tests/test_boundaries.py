"""The layout's dependency rules, checked against what each distribution declares.

Each role folder is its own distribution (``<folder>/pyproject.toml``) providing one
subpackage of the ``amlpkg`` namespace from ``<folder>/src/amlpkg/``. So:

1. The tree is what it looks like: no symbolic links, and every module's import
   name is its path under a role's ``src/``.
2. Statically: every ``amlpkg.X`` a role imports belongs to itself or to a role its
   pyproject declares (base or extra), and every third-party module it imports is
   declared there too. A missing declaration fails here, not on a user's machine.
3. At run time: each role's entry point, imported in a clean interpreter, loads none
   of the heavy or foreign modules that role must not need.
4. For real: ``tests/test_distributions.py`` installs the runtime (and the edge
   agent) alone into clean virtual environments and serves a model.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _core_modules() -> set[str]:
    """The core provides ``amlpkg`` itself and every module beside its ``__init__``."""
    folder = ROOT / "core" / "src" / "amlpkg"
    names = {p.name.removesuffix(".py") for p in folder.iterdir() if p.name != "__pycache__"}
    return ({""} | names) - {"__init__", "py.typed"}


# role folder -> the subpackages of ``amlpkg`` it provides
ROLES: dict[str, set[str]] = {
    "core": _core_modules(),
    "trainer": {"trainer"},
    "runtime": {"runtime"},
    "packager": {"packager"},
    "collector": {"collector"},
    "cli": {"cli"},
    "server": {"server"},
    "edge-agent": {"edge_agent"},
    "batch": {"batch", "spark"},
}
TRAINING_AND_INFRA = ["sklearn", "skl2onnx", "torch", "tensorflow", "docker", "kubernetes"]
# Imported only on purpose by tools that run in the dev environment.
DEV_ONLY_IMPORTS = {"grpc_tools"}


def _project(folder: str) -> dict[str, object]:
    return tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _requirements(folder: str) -> list[Requirement]:
    project = _project(folder)
    texts = list(project.get("dependencies", []))  # type: ignore[call-overload]
    for extra in dict(project.get("optional-dependencies", {})).values():  # type: ignore[call-overload]
        texts += extra
    return [Requirement(t) for t in texts]


def _role_of(distribution: str) -> str | None:
    name = canonicalize_name(distribution)
    for folder in ROLES:
        if canonicalize_name(f"amlpkg-{folder}") == name:
            return folder
    return None


def _runtime_imports(path: Path) -> list[str]:
    """Every absolute import of a file, except those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder / "src").rglob("*.py"))


def test_no_symbolic_links_are_tracked() -> None:
    out = subprocess.run(
        ["git", "ls-files", "-s"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert [line for line in out.splitlines() if line.startswith("120000")] == []


@pytest.mark.parametrize("folder", sorted(ROLES))
def test_each_role_folder_is_a_distribution_of_its_own_subpackages(folder: str) -> None:
    assert _role_of(str(_project(folder)["name"])) == folder
    namespace = ROLES[folder] - {""}
    found = {
        p.name for p in (ROOT / folder / "src" / "amlpkg").iterdir() if p.name != "__pycache__"
    }
    provided = {name.removesuffix(".py") for name in found} - {"__init__", "py.typed"}
    assert provided == namespace
    # Only the core owns amlpkg/__init__.py; the others are portions of the namespace.
    assert ((ROOT / folder / "src" / "amlpkg" / "__init__.py").is_file()) == (folder == "core")


@pytest.mark.parametrize("folder", sorted(ROLES))
def test_every_module_imports_under_the_name_its_path_gives(folder: str) -> None:
    """The path in a traceback, in ``git log`` and the import name agree."""
    import importlib.util

    for path in _sources(folder)[:40]:
        relative = path.relative_to(ROOT / folder / "src").with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        if "protocol" in relative.parts and path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        assert Path(spec.origin).resolve() == path.resolve(), name


@pytest.mark.parametrize("folder", sorted(ROLES))
def test_a_role_imports_only_itself_and_the_roles_it_declares(folder: str) -> None:
    declared = {_role_of(r.name) for r in _requirements(folder)} - {None}
    allowed = {sub for role in {folder, *declared} for sub in ROLES[str(role)]}
    offenders: dict[str, list[str]] = {}
    for path in _sources(folder):
        for name in _runtime_imports(path):
            parts = name.split(".")
            if parts[0] == "amlpkg" and (parts[1] if len(parts) > 1 else "") not in allowed:
                offenders.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert offenders == {}, f"{folder}/ may import only amlpkg.{sorted(allowed)}"


def test_the_runtime_uses_only_the_cores_errors_datatypes_and_validation() -> None:
    used = {
        name.split(".")[1]
        for path in _sources("runtime")
        for name in _runtime_imports(path)
        if name.startswith("amlpkg.") and not name.startswith("amlpkg.runtime")
    }
    # release: the signed release document, written by the trainer and read by the
    # runtime and the agent (standard library only, like datatypes).
    assert used <= {"errors", "datatypes", "validation", "release"}


def _provided_by(requirements: list[Requirement]) -> set[str]:
    """Normalized names of the declared distributions and what they install with them."""
    provided: set[str] = set()
    pending = list(requirements)
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        key = f"{canonicalize_name(requirement.name)}{sorted(requirement.extras)}"
        if key in seen:
            continue
        seen.add(key)
        provided.add(canonicalize_name(requirement.name))
        try:
            subs = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        wanted = [{"extra": e} for e in requirement.extras] or [{"extra": ""}]
        for sub in map(Requirement, subs):
            if sub.marker is None or any(sub.marker.evaluate(env) for env in wanted):
                # Our own roles' dependencies are theirs, not this role's.
                if _role_of(requirement.name) is None or _role_of(sub.name) is None:
                    provided.add(canonicalize_name(sub.name))
                if _role_of(requirement.name) is None:
                    pending.append(sub)
    return provided


@pytest.mark.parametrize("folder", sorted(ROLES))
def test_every_third_party_import_is_declared_by_the_role(folder: str) -> None:
    """A module a role imports must come with that role's install, not only with [dev]."""
    provided = _provided_by(_requirements(folder))
    distributions = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing: dict[str, list[str]] = {}
    for path in _sources(folder):
        tops = {name.split(".")[0] for name in _runtime_imports(path)}
        for module in tops - stdlib - DEV_ONLY_IMPORTS - {"amlpkg"}:
            dists = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not dists & provided:
                missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert missing == {}, f"declare these in {folder}/pyproject.toml"


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    names = json.loads(out.splitlines()[-1])
    return {name.split(".")[0] for name in names} | set(names)


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
    forbidden = [*TRAINING_AND_INFRA, "typer", "amlpkg.trainer", "amlpkg.packager", "amlpkg.cli"]
    assert sorted(set(forbidden) & loaded) == []


def test_the_runtime_distribution_requires_no_training_or_infra_client() -> None:
    names = {canonicalize_name(r.name) for r in _requirements("runtime")}
    forbidden = {"scikit-learn", "skl2onnx", "torch", "tensorflow", "docker", "kubernetes", "onnx"}
    assert sorted(names & forbidden) == []
    assert {n for n in names if n.startswith("amlpkg")} == {"amlpkg-core"}
