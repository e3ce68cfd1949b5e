"""Request and response bodies of the runs, experiments and registry routes.

Strings are bounded here so no body can grow the store without limit; what the
store itself checks (key rules, model names) it keeps checking.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(min_length=1, max_length=250)]
Text = Annotated[str, StringConstraints(max_length=6000)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=250)]


class Body(BaseModel):
    """A request body: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ExperimentIn(Body):
    """A new experiment."""

    name: Name


class ExperimentOut(BaseModel):
    """An experiment and how many runs it has."""

    name: str
    created: float
    runs: int


class RunIn(Body):
    """A new run (its experiment is made if it does not exist), with where it runs: the
    client's command, git commit, Python and host (the user is the token's name)."""

    experiment: Name | None = None
    name: Name | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=100)
    command: Text | None = None
    git_commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,64}$")] | None = None
    git_dirty: bool | None = None
    python_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    host: Annotated[str, StringConstraints(max_length=255)] | None = None


class RunOut(BaseModel):
    """A run with its params, final metric values and tags."""

    id: str
    experiment: str
    name: str | None
    status: str
    start_time: float
    end_time: float | None
    exit_code: int | None
    command: str | None
    git_commit: str | None
    git_dirty: bool | None
    python_version: str | None
    host: str | None
    user: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


class MetricIn(Body):
    """One metric value; without a step it continues the key's last step + 1."""

    key: Key
    value: float = Field(allow_inf_nan=False)
    step: int | None = Field(default=None, ge=0, le=2**62)


class LogBatchIn(Body):
    """Params, metrics and tags logged in one call."""

    params: dict[Key, Text] = Field(default_factory=dict, max_length=1000)
    metrics: list[MetricIn] = Field(default_factory=list, max_length=10000)
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=1000)


class LogBatchOut(BaseModel):
    """How much of the batch was stored."""

    params: int
    metrics: int
    tags: int


class RunEndIn(Body):
    """The final status of a run."""

    status: Literal["completed", "failed", "killed"] = "completed"
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)


class MetricPoint(BaseModel):
    """One logged value of a metric."""

    step: int
    value: float
    timestamp: float


class MetricHistoryOut(BaseModel):
    """Every value of one metric of a run, in step order."""

    run_id: str
    key: str
    points: list[MetricPoint]
    logged: int | None = Field(default=None, description="values logged (points may be fewer)")


class ArtifactOut(BaseModel):
    """A stored artifact of a run."""

    path: str
    sha256: str
    size: int


class ModelOut(BaseModel):
    """One registered model: latest version, how many, its aliases."""

    name: str
    latest_version: int
    versions: int
    aliases: dict[str, int]
    created: float


class VersionOut(BaseModel):
    """One registered version of a model.

    ``source`` is ``runs:/RUN/PATH``, or the file name an upload or a local
    registration came from (never a path on the server).
    """

    name: str
    version: int
    ref: str
    sha256: str
    size: int
    opset: int | None
    signature: dict[str, Any]
    run_id: str | None
    source: str
    description: str | None
    created: float
    tags: dict[str, str]
    aliases: list[str]


class VersionIn(Body):
    """Register a version from an ONNX artifact a run logged."""

    source: Annotated[
        str, StringConstraints(pattern=r"^runs:/[0-9a-f]{4,32}/[^\x00]{1,1024}$", max_length=1100)
    ] = Field(description="runs:/<run id>/<artifact path>; files on the server are not taken")
    description: Text | None = None
    tags: dict[Key, Text] = Field(default_factory=dict, max_length=100)
    aliases: list[Name] = Field(
        default_factory=list, max_length=20, description="aliases to point at the new version"
    )


class AliasIn(Body):
    """Point an alias at a version."""

    version: int = Field(ge=1, le=2**31)
