"""An edge device installs runtime + edge only: the agent must not load training or CLI code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agent_loads_no_training_infra_or_cli_code() -> None:
    code = (
        "import json, sys\n"
        "import amlpkg.edge_agent.__main__, amlpkg.edge_agent.agent, amlpkg.edge_agent.hub\n"
        "import amlpkg.edge_agent.standalone\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    roots = {name.split(".")[0] for name in loaded}
    forbidden = {"sklearn", "skl2onnx", "torch", "onnx", "docker", "kubernetes", "typer", "rich"}
    assert sorted(forbidden & roots) == []
    assert sorted(n for n in loaded if n.startswith(("amlpkg.trainer", "amlpkg.packager"))) == []
