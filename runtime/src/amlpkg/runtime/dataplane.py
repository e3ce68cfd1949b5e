"""The transport-free data plane: every V2 operation, once, for REST and gRPC alike.

CONTRACT (the REST and gRPC adapters are written against exactly these methods):
all methods are coroutines; failures raise :mod:`amlpkg.runtime.errors` classes,
which the adapters map to HTTP statuses / gRPC codes. Dict answers are in the
proto-JSON form of Triton's messages (snake_case proto field names), so the REST
adapter returns them as JSON and the gRPC adapter fills the proto with
``google.protobuf.json_format.ParseDict``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from amlpkg.runtime.codecs.shm_tensors import SHM_REGION, write_shm_output
from amlpkg.runtime.errors import (
    InvalidInputError,
    ModelControlDisabledError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    UnavailableError,
)
from amlpkg.runtime.faults import Redactor
from amlpkg.runtime.floors import Floors
from amlpkg.runtime.limits import DEFAULT_LIMITS, RequestLimits, check_depth
from amlpkg.runtime.load_params import (
    check_sequence_parameters,
    override_files,
    without_triton_keys,
)
from amlpkg.runtime.metrics import RuntimeMetrics
from amlpkg.runtime.model import PLATFORM, LoadedModel
from amlpkg.runtime.model_config import parse_model_config
from amlpkg.runtime.repository import ModelRepository, check_model_name
from amlpkg.runtime.shm import SharedMemoryRegistry
from amlpkg.runtime.signing import Trust
from amlpkg.runtime.stats_peers import StatsPeers
from amlpkg.runtime.stats_peers import merge as merge_statistics
from amlpkg.runtime.summaries import OutputSummaries
from amlpkg.runtime.tracing import InferTracer, tracer_from_env
from amlpkg.runtime.types import (
    InferOutput,
    InferRequest,
    InferResponse,
    ModelMetadata,
    RepositoryModel,
    ServerMetadata,
)
from amlpkg.runtime.validation import validate_request

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)


def _server_version() -> str:
    try:
        return importlib.metadata.version("amlpkg")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


SERVER_NAME = "amlpkg"
# Only what is really implemented end to end by the data plane and both transports.
EXTENSIONS = (
    "model_repository",
    "model_configuration",
    "statistics",
    "binary_tensor_data",
    "system_shared_memory",
)
# A load config is a few kB of YAML; this bounds what the YAML parser is given.
MAX_CONFIG_TEXT = 1024 * 1024


class DataPlane:
    """Every V2 operation over one model repository, for any transport.

    Usage (transports, benchmarks, tests)::

        dp = DataPlane.from_repository("path/to/repo")  # cheap: nothing loaded yet
        await dp.start()            # loads every model (a failed model -> UNAVAILABLE row)
        response = await dp.infer(request, trace_context={"traceparent": "00-..."})
        registry = dp.metrics_registry  # prometheus_client CollectorRegistry for /metrics
        await dp.stop(drain_timeout=30.0)  # refuse new work, drain, release sessions

    ``from_repository(path, *, models=None, environ=None, drain_timeout_s=30.0,
    override_dir=None)``:
    ``models`` limits which models load at start (None = all, ``[]`` = none: explicit
    model control); ``environ`` (default ``os.environ``) is where the ``OTEL_*``
    variables are read from; ``drain_timeout_s`` bounds how long an unload/reload
    waits for the old version's requests; ``override_dir`` is where load-time file
    overrides go. All methods must be called on the one event loop
    that ran ``start()``; inference itself runs in per-model thread pools.

    ``trace_context``: the W3C trace headers the transport received (``traceparent``,
    optionally ``tracestate``; HTTP headers or gRPC metadata, lower-case keys), so the
    ``infer`` span joins the caller's trace. May also be passed in
    ``request.parameters["trace_context"]``. Ignored when tracing is off.
    """

    def __init__(
        self,
        repository: ModelRepository,
        metrics: RuntimeMetrics,
        *,
        tracer: InferTracer | None = None,
        models: Sequence[str] | None = None,
        limits: RequestLimits = DEFAULT_LIMITS,
        strict_readiness: bool = True,
        workers: int = 1,
        shared_memory_book: Path | None = None,
        stats_peers: StatsPeers | None = None,
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._tracer = tracer
        self._startup_models = None if models is None else list(models)
        self.limits = limits
        self.strict_readiness = strict_readiness
        # Models the server was asked to serve: strict readiness waits for all of them.
        self._expected: set[str] = set()
        # One of ``workers`` server processes: models load at start only (API loads
        # would change this worker alone), shared memory is registered in the shared book.
        self.workers = workers
        self.shared_memory = SharedMemoryRegistry(book=shared_memory_book)
        # Statistics summed over the sibling worker processes (None: one process).
        self._stats_peers = stats_peers
        self.redact = Redactor([(repository.root, "<repository>")])
        self._started = False
        self._stopping = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.output_summaries: OutputSummaries | None = None  # opt-in: see .summaries

    @classmethod
    def from_repository(
        cls,
        path: str | os.PathLike[str],
        *,
        models: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        drain_timeout_s: float = 30.0,
        override_dir: str | os.PathLike[str] | None = None,
        limits: RequestLimits = DEFAULT_LIMITS,
        strict_readiness: bool = True,
        trust: Trust | None = None,
        workers: int = 1,
        shared_memory_book: Path | None = None,
        state_dir: Path | None = None,
        output_summaries: bool = False,
        stats_peers: StatsPeers | None = None,
    ) -> DataPlane:
        """A data plane over ``path``; call :meth:`start` on the event loop to load models.

        ``override_dir``: where load-time file overrides are written (default: a temp
        folder made on first use and removed at :meth:`stop`); never inside ``path``.
        ``trust``: when given, only versions whose signature verifies against it load.
        ``output_summaries``: count each response's output summaries (and export them by
        OTLP when the ``OTEL_*`` variables name an endpoint), see :mod:`.summaries`.
        """
        root = Path(path)
        if not root.is_dir():
            raise ModelNotFoundError(
                f"model repository {root} is not a directory",
                hint="pass a folder laid out as <repo>/<model>/<version>/model.onnx",
            )
        metrics = RuntimeMetrics()
        tracer = tracer_from_env(os.environ if environ is None else environ)
        overrides = None if override_dir is None else Path(override_dir)
        if overrides is not None and overrides.resolve().is_relative_to(root.resolve()):
            raise InvalidInputError(
                f"override folder {overrides} is inside the model repository {root}",
                hint="file overrides must not be written into the user's repository",
            )
        repository = ModelRepository(
            root,
            metrics,
            drain_timeout_s,
            override_root=overrides,
            trust=trust,
            floors=Floors(state_dir) if trust is not None else None,
        )
        plane = cls(
            repository,
            metrics,
            tracer=tracer,
            models=models,
            limits=limits,
            strict_readiness=strict_readiness,
            workers=workers,
            shared_memory_book=shared_memory_book,
            stats_peers=stats_peers,
        )
        if overrides is not None:
            plane.redact.add(overrides, "<overrides>")
        if output_summaries:
            env = os.environ if environ is None else environ
            plane.output_summaries = OutputSummaries.from_env(metrics.registry, env)
        return plane

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus registry of this data plane (serve it on ``/metrics``); with
        worker processes, one that collects the values of all of them."""
        return self._metrics.exposition()

    @property
    def tracer(self) -> InferTracer | None:
        """The OTLP tracer, or None when tracing is off."""
        return self._tracer

    async def start(self) -> None:
        """Load the startup models; one that fails is logged and reported in the index."""
        names = self._startup_models
        if names is None:
            names = self._repository.model_names()
        self._expected = set(names)
        for name in names:
            try:
                await self._repository.load(name)
            except (ModelLoadError, ModelNotFoundError) as exc:
                logger.error("%s", exc)
        if self._stats_peers is not None:
            await self._stats_peers.start(self._local_statistics)
        self._started = True

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Refuse new requests, wait (bounded) for those in flight, then release sessions."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        if self._stats_peers is not None:
            await self._stats_peers.close()
        await self._repository.close()
        self.shared_memory.close()
        if self._tracer is not None:
            await asyncio.to_thread(self._tracer.shutdown)
        if self.output_summaries is not None:
            await asyncio.to_thread(self.output_summaries.close)
        self._started = False

    async def live(self) -> bool:
        """Server liveness: the process serves the API (also while it drains)."""
        return True

    async def ready(self) -> bool:
        """Server readiness: started, and (strict readiness) every model it was asked to
        serve has a ready version; not strict: every such model has been tried."""
        if not self._started or self._stopping:
            return False
        if not self.strict_readiness:
            return True
        return all(self._repository.ready_versions(name) for name in self._expected)

    async def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether a model (or one version of it) is loaded and can infer."""
        try:
            check_model_name(name)
            self._repository.get(name, version)
        except (ModelNotFoundError, ModelNotReadyError):
            return False
        return not self._stopping

    async def server_metadata(self) -> ServerMetadata:
        """``GET /v2``."""
        return ServerMetadata(SERVER_NAME, _server_version(), EXTENSIONS)

    async def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """``GET /v2/models/{name}[/versions/{version}]``."""
        model = self._repository.get(name, version)
        versions = tuple(m.version_str for m in self._repository.ready_versions(name))
        return ModelMetadata(
            name=name,
            versions=versions,
            platform=PLATFORM,
            inputs=model.input_specs(),
            outputs=model.output_specs(),
            parameters=model.parameters,
        )

    async def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Triton ``ModelConfig`` as a dict (``GET /v2/models/{name}/config``)."""
        return self._repository.get(name, version).triton_config()

    async def model_statistics(
        self, name: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """Triton ``ModelStatisticsResponse`` as a dict: ``{"model_stats": [...]}``.

        With worker processes, the counters of every worker, added up.
        """
        own = await self._local_statistics(name, version)
        if self._stats_peers is None:
            return own
        return merge_statistics(own, await self._stats_peers.siblings(name, version))

    async def _local_statistics(self, name: str | None, version: str | None) -> dict[str, Any]:
        """This process's counters (what a sibling worker asks for)."""
        if name is None or name == "":
            models = self._repository.loaded()
        elif version:
            models = [self._repository.get(name, version)]
        else:
            self._repository.get(name)  # unknown / not ready -> the usual errors
            models = self._repository.ready_versions(name)
        return {"model_stats": [m.stats.to_dict(m.name, m.version_str) for m in models]}

    async def repository_index(self, ready_only: bool = False) -> list[RepositoryModel]:
        """Every model version the repository holds, with its state (paths redacted)."""
        return [
            RepositoryModel(r.name, r.version, r.state, self.redact(r.reason))
            for r in self._repository.index(ready_only)
        ]

    async def load_model(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        """Load (or reload) a model from the repository.

        ``parameters["config"]`` (a JSON/YAML string or a mapping in the ``config.yaml``
        schema) replaces the model's ``config.yaml`` for this load, as Triton's
        ``config`` load parameter does. ``parameters["file:<version>/model.onnx"]``
        (bytes, or base64 text as Triton's HTTP API sends it) are Triton's file
        overrides: the model loads from a runtime-owned folder holding those files
        (the model need not exist in the repository); when the new model fails to
        load, the version already serving keeps serving.
        """
        if self._stopping:
            raise UnavailableError("the server is shutting down")
        check_model_name(name)
        self._check_model_control("load")
        params = parameters or {}
        config = None
        raw = params.get("config")
        if raw is not None:
            if isinstance(raw, str | bytes):
                if len(raw) > MAX_CONFIG_TEXT:
                    raise InvalidInputError(
                        f"load parameter 'config' is over {MAX_CONFIG_TEXT} bytes"
                    )
                try:
                    raw = yaml.safe_load(raw)
                except (yaml.YAMLError, RecursionError) as exc:
                    reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
                    raise InvalidInputError(
                        f"load parameter 'config' is not JSON/YAML: {reason}"
                    ) from None
            check_depth(raw, self.limits.max_json_depth, "load parameter 'config'")
            try:
                config = parse_model_config(
                    without_triton_keys(raw, name), "load parameter 'config'"
                )
            except ModelLoadError as exc:
                raise InvalidInputError(exc.message, hint=exc.hint) from None
        files = override_files(params)
        await self._repository.load(name, config, files or None)
        self._expected.add(name)

    async def unload_model(self, name: str, unload_dependents: bool = False) -> None:
        """Unload every version of a model after its in-flight requests finish."""
        check_model_name(name)
        self._check_model_control("unload")
        await self._repository.unload(name)
        self._expected.discard(name)

    def _check_model_control(self, action: str) -> None:
        if self.workers > 1:
            raise ModelControlDisabledError(
                f"explicit model {action} is not allowed: this server runs {self.workers} "
                f"worker processes and a {action} through the API would reach only one",
                hint="serve with --workers 1 to load and unload models through the API, or "
                "change the repository and restart the server",
            )

    async def infer(
        self, request: InferRequest, *, trace_context: Mapping[str, str] | None = None
    ) -> InferResponse:
        """Validate, queue (dynamic batching) and run one request.

        ``trace_context``: W3C ``traceparent``/``tracestate`` from the transport, so the
        ``infer`` span joins the caller's trace (or ``request.parameters["trace_context"]``).
        """
        if self._stopping:
            raise UnavailableError("the server is shutting down", hint="retry on another replica")
        check_sequence_parameters(request.parameters)
        model = self._repository.get(request.model_name, request.model_version)
        start = time.time_ns()
        self._begin(model)
        result = None
        error: BaseException | None = None
        try:
            session = model.session
            feeds, names, batch = validate_request(
                request, model.name, session.inputs, session.outputs, model.config.max_batch_size
            )
            result = await model.scheduler.submit(feeds, names, batch)
        except BaseException as exc:
            error = exc
            end = time.time_ns()
            model.stats.record_failure(end - start, end)
            model.metrics.failure.inc()
            raise
        finally:
            self._end(model)
            if self._tracer is not None:
                self._trace(
                    request=request,
                    model=model,
                    start=start,
                    result=result,
                    error=error,
                    trace_context=trace_context,
                )
        end = time.time_ns()
        record = result.batch
        model.stats.record_success(batch, end - start, result.queue_ns, record, end)
        metrics = model.metrics
        metrics.success.inc()
        metrics.queue.observe(result.queue_ns / 1e9)
        metrics.compute.observe((record.end_ns - record.start_ns) / 1e9)
        specs = session.outputs
        outputs = [
            InferOutput(n, specs[n].datatype.v2, result.outputs[n].shape, result.outputs[n])
            for n in names
        ]
        if request.outputs:
            self._write_shared_memory(request, outputs)
        response = InferResponse(request.model_name, model.version_str, outputs, id=request.id)
        if self.output_summaries is not None:
            self.output_summaries.count(request.id, response)
        return response

    def _write_shared_memory(self, request: InferRequest, outputs: list[InferOutput]) -> None:
        """Put the outputs the client asked for in shared memory there; the encoders then
        send only their parameters."""
        for asked in request.outputs or ():
            if SHM_REGION in asked.parameters:
                break
        else:
            return  # the common case: no output in shared memory, nothing built
        wanted = {o.name: o.parameters for o in request.outputs or () if SHM_REGION in o.parameters}
        for out in outputs:
            params = wanted.get(out.name)
            if params is not None:
                out.parameters = write_shm_output(
                    self.shared_memory, params, out.data, out.datatype, out.name
                )

    def _begin(self, model: LoadedModel) -> None:
        self._in_flight += 1
        self._idle.clear()
        model.begin()

    def _end(self, model: LoadedModel) -> None:
        model.end()
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def _trace(
        self,
        *,
        request: InferRequest,
        model: LoadedModel,
        start: int,
        result: Any,
        error: BaseException | None,
        trace_context: Mapping[str, str] | None,
    ) -> None:
        assert self._tracer is not None
        context = trace_context or request.parameters.get("trace_context")
        try:
            self._tracer.record(
                model=model.name,
                version=model.version_str,
                start_ns=start,
                end_ns=time.time_ns(),
                trace_context=context if isinstance(context, Mapping) else None,
                result=result,
                error=error,
                request_id=request.id,
            )
        except Exception:  # tracing must never fail a request
            logger.exception("could not record the trace of a request")
