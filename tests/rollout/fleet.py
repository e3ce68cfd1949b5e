"""A fleet of real edge agent processes for the rollout tests, and the load that drives them.

Each device is ``python -m amlpkg.edge_agent --standalone URL`` with its own device id,
state dir and ports, polling its own desired-state document (served by
:func:`amlpkg.packager.rollout.desired_http.serving_desired`) and posting telemetry to
a real collector. The standalone link is used, not IoT Hub over mosquitto:
azure-iot-device always dials port 8883 and ``$iothub`` topics are shared by every
client of one broker, so the hub path carries one device per broker; 30 devices on
one machine are realistic only through per-device desired-state URLs.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.services import free_port


def good_model(offset: float) -> bytes:
    """Y = X + offset over FP32 [batch, n]: any width works."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "B"], ["Y"])],
        f"good_{offset}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", "n"])],
        [numpy_helper.from_array(np.array(offset, dtype=np.float32), "B")],
    )
    return _serialize(graph)


def bad_model(offset: float) -> bytes:
    """Width fixed at 4 (width-5 inputs fail), plus extra work (384x384 MatMuls, ~10 ms)."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.random((384, 384), dtype=np.float32) / 384, "W")
    # W scaled by the input's sum: computed per request, so ONNX Runtime cannot fold it away
    nodes = [
        helper.make_node("ReduceSum", ["X"], ["XS"], keepdims=0),
        helper.make_node("Mul", ["W", "XS"], ["W0"]),
        helper.make_node("MatMul", ["W0", "W"], ["W1"]),
    ]
    for i in range(1, 12):
        nodes.append(helper.make_node("MatMul", [f"W{i}", "W"], [f"W{i + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", ["W12"], ["S"], keepdims=0),
        helper.make_node("Mul", ["S", "Z"], ["S0"]),  # x0: the work counts, not its value
        helper.make_node("Add", ["X", "B"], ["X1"]),
        helper.make_node("Add", ["X1", "S0"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        f"bad_{offset}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 4])],
        [
            weights,
            numpy_helper.from_array(np.array(offset, dtype=np.float32), "B"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "Z"),
        ],
    )
    return _serialize(graph)


def _serialize(graph: Any) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@dataclass
class Agent:
    """One device: its agent process (None while stopped), ports and state dir."""

    device_id: str
    state_dir: Path
    http_port: int
    grpc_port: int
    proc: subprocess.Popen[bytes] | None = None

    def reported(self) -> dict[str, Any]:
        """The agent's reported state (``reported.json``), or {} before the first report."""
        try:
            return dict(json.loads((self.state_dir / "reported.json").read_text()))
        except (OSError, ValueError):
            return {}

    def reported_version(self) -> str | None:
        """The model version the agent reports serving."""
        model = self.reported().get("model") or {}
        return model.get("version")

    def swap_state(self) -> dict[str, Any]:
        """What the swapper persisted: current and previous model."""
        try:
            return dict(json.loads((self.state_dir / "swap-state.json").read_text()))
        except (OSError, ValueError):
            return {}


@dataclass
class Fleet:
    """Agents started against one desired-state server and one collector."""

    root: Path
    desired_url: str
    telemetry_url: str
    agents: dict[str, Agent] = field(default_factory=dict)

    def _ports(self) -> tuple[int, int]:
        # free_port() may hand out a port twice once its probe socket closed: keep them unique.
        used = {p for a in self.agents.values() for p in (a.http_port, a.grpc_port)}
        ports: list[int] = []
        while len(ports) < 2:
            port = free_port()
            if port not in used and port not in ports:
                ports.append(port)
        return ports[0], ports[1]

    def add(self, device_id: str) -> Agent:
        """Allocate a device (ports and state dir) without starting it."""
        agent = Agent(device_id, self.root / device_id, 0, 0)
        agent.http_port, agent.grpc_port = self._ports()
        self.agents[device_id] = agent
        return agent

    def restart_exited(self) -> int:
        """Restart, on new ports, agents that exited by themselves (a port taken meanwhile
        by another process on this shared machine); returns how many."""
        exited = [
            a for a in self.agents.values() if a.proc is not None and a.proc.poll() is not None
        ]
        for agent in exited:
            agent.http_port, agent.grpc_port = self._ports()
            self.start(agent)
        return len(exited)

    def start(self, agent: Agent) -> None:
        """Start (or restart) the device's agent process, logging to its state dir."""
        agent.state_dir.mkdir(parents=True, exist_ok=True)
        log = (agent.state_dir / "agent.log").open("ab")
        cmd = [
            sys.executable, "-m", "amlpkg.edge_agent",
            "--standalone", f"{self.desired_url}/devices/{agent.device_id}.json",
            "--state-dir", str(agent.state_dir), "--device-id", agent.device_id,
            "--deployment-id", "fleet:1", "--host", "127.0.0.1",
            "--http-port", str(agent.http_port), "--grpc-port", str(agent.grpc_port),
            "--telemetry-url", self.telemetry_url, "--poll-interval", "0.5",
            "--telemetry-interval", "0.5", "--log-level", "warning",
        ]  # fmt: skip
        with log:
            agent.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, agent: Agent, timeout: float = 30) -> None:
        """SIGTERM the agent and wait (SIGKILL if it does not exit in time)."""
        proc, agent.proc = agent.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop_all(self) -> None:
        """Stop every agent (in parallel: each takes a moment to shut down)."""
        threads = [threading.Thread(target=self.stop, args=(a,)) for a in self.agents.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)


class Load:
    """A few inference requests per second to each running agent; 1 in 5 has width 5."""

    def __init__(self, fleet: Fleet, rps_per_device: float = 2.0, threads: int = 3) -> None:
        self.fleet = fleet
        self.period = 1.0 / rps_per_device
        self.threads = [
            threading.Thread(target=self._run, args=(i, threads), daemon=True)
            for i in range(threads)
        ]
        self.stopped = threading.Event()
        self.sent = 0

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self, index: int, count: int) -> None:
        rng = random.Random(index)
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                started = time.monotonic()
                agents = sorted(self.fleet.agents.values(), key=lambda a: a.device_id)
                for agent in agents[index::count]:
                    if agent.proc is None:
                        continue
                    width = 5 if rng.random() < 0.2 else 4
                    body = {"inputs": [{"name": "X", "shape": [1, width], "datatype": "FP32",
                                        "data": [1.0] * width}]}  # fmt: skip
                    try:
                        client.post(
                            f"http://127.0.0.1:{agent.http_port}/v2/models/m/infer", json=body
                        )
                        self.sent += 1
                    except httpx.HTTPError:
                        pass  # a stopped or restarting device
                self.stopped.wait(max(0.0, self.period - (time.monotonic() - started)))
