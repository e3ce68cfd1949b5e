"""`amlpkg build` and `amlpkg package`: scoring images, package folders, Triton repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from amlpkg.cli.output import console, error_console, print_json
from amlpkg.cli.runs import HomeOption, JsonOption, TrackingUriOption
from amlpkg.trainer.remote.config import tracking_server

RefArgument = Annotated[str, typer.Argument(help="NAME:VERSION, NAME@ALIAS or NAME (latest).")]
FlavorOption = Annotated[
    str, typer.Option("--flavor", help="cpu, cuda, tensorrt or openvino: which ONNX Runtime.")
]
PlatformOption = Annotated[
    str | None, typer.Option("--platform", help="linux/amd64 or linux/arm64 (default: this host).")
]
PythonOption = Annotated[
    str | None,
    typer.Option("--python-version", help="MAJOR.MINOR of the base's python3 (wheels target it)."),
]
BatchOption = Annotated[
    int,
    typer.Option("--max-batch-size", help="Enable dynamic batching up to N samples (0: off)."),
]
NoVariantOption = Annotated[
    bool,
    typer.Option("--original", help="Ship the model version itself, not its chosen variant."),
]
RequireSignatureOption = Annotated[
    bool,
    typer.Option(
        "--require-signature",
        help="The image's runtime loads only models signed by --trust (installs [signing]).",
    ),
]
TrustOption = Annotated[
    Path | None,
    typer.Option("--trust", help="The signer's PEM public key (or root chain) the image keeps."),
]


@contextmanager
def _progress(
    quiet: bool,
) -> Iterator[tuple[Callable[[str], None], Callable[[int, int, str], None]]]:
    """Status lines and a bar over Dockerfile steps (on stderr, so --json stays clean)."""
    bar = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console,
        transient=True,
        disable=quiet,
    )
    task = bar.add_task("preparing", total=None)

    def on_status(message: str) -> None:
        if not quiet:
            bar.console.print(f"[green]•[/] {message}")

    def on_step(done: int, total: int, text: str) -> None:
        bar.update(task, completed=done - 1, total=total, description=text[:60])

    with bar:
        yield on_status, on_step


def _report(package: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(package)
        return
    size = package.get("size_bytes")
    shown = f"{int(size) / 1e6:.1f} MB" if isinstance(size, int) else "?"
    where = package.get("repo_digest") or package.get("image_ref") or package.get("path")
    if "model_ref" not in package:  # the edge agent's image: no package row
        console.print(
            f"[green]✓[/] edge agent image [bold]{where}[/] ({shown}, {package['platform']},"
            f" {package['build_seconds']} s)"
        )
        if not package.get("repo_digest"):
            console.print("[yellow]not pushed:[/] --target iotedge pins a pushed one (--push)")
        return
    console.print(
        f"[green]✓[/] {package['format']} [bold]{where}[/] ({shown},"
        f" {package['build_seconds']} s) recorded as package {package['id']}"
        f" of {package['model_ref']}"
    )


def _build_oci(
    ref: str,
    home: Path | None,
    tracking_uri: str | None,
    as_json: bool,
    *,
    tag: str | None,
    flavor: str,
    platforms: str | None,
    base_image: str | None,
    base_image_arm64: str | None,
    python_version: str | None,
    max_batch_size: int,
    original: bool,
    wheel: Path | None,
    require_signature: bool = False,
    trust: Path | None = None,
) -> None:
    """``amlpkg build --builder oci``: parse, then delegate to the library."""
    from amlpkg.packager.build.oci_builder.build import OciOptions, build_oci_image
    from amlpkg.packager.build.options import BuildOptions, Hooks
    from amlpkg.packager.build.remote import build_on_server
    from amlpkg.store.workspace import open_workspace

    chosen = tuple(p.strip() for p in (platforms or "").split(",") if p.strip())
    options = BuildOptions(
        flavor=flavor,
        tag=tag,
        push=True,
        python_version=python_version,
        max_batch_size=max_batch_size,
        use_variant=not original,
        amlpkg_wheel=wheel,
        require_signature=require_signature,
        trust=trust,
    )
    oci = OciOptions(platforms=chosen, base_image=base_image, base_image_arm64=base_image_arm64)
    server = tracking_server(home, tracking_uri)
    with _progress(as_json) as (on_status, on_step):
        hooks = Hooks(on_status, on_step)
        if server is not None:
            package = build_on_server(server, ref, options, hooks, oci)
        else:
            with open_workspace(home) as ws:
                package = build_oci_image(ws, ref, options, oci, hooks)
    _report(package.to_dict(), as_json)


def _build_oci_agent(
    home: Path | None,
    tracking_uri: str | None,
    as_json: bool,
    *,
    tag: str | None,
    platforms: str | None,
    base_image: str | None,
    base_image_arm64: str | None,
    python_version: str | None,
    wheel: Path | None,
) -> None:
    """``amlpkg build --flavor edge-agent --builder oci``: parse, then delegate."""
    from amlpkg.packager.build.oci_builder.agent import build_oci_agent_image
    from amlpkg.packager.build.oci_builder.build import OciOptions
    from amlpkg.packager.build.options import BuildOptions, Hooks
    from amlpkg.packager.build.remote import build_agent_on_server
    from amlpkg.store.workspace import open_workspace

    chosen = tuple(p.strip() for p in (platforms or "").split(",") if p.strip())
    options = BuildOptions(
        flavor="edge-agent", tag=tag, push=True, python_version=python_version, amlpkg_wheel=wheel
    )
    oci = OciOptions(platforms=chosen, base_image=base_image, base_image_arm64=base_image_arm64)
    server = tracking_server(home, tracking_uri)
    with _progress(as_json) as (on_status, on_step):
        hooks = Hooks(on_status, on_step)
        if server is not None:
            built = build_agent_on_server(server, options, hooks, oci)
        else:
            with open_workspace(home) as ws:
                built = build_oci_agent_image(ws, options, oci, hooks)
    _report(built.to_dict(), as_json)


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``package`` to the root app."""

    @app.command("build")
    def build_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
        ref: Annotated[
            str | None,
            typer.Argument(
                help="NAME:VERSION, NAME@ALIAS or NAME (latest); none for --flavor edge-agent."
            ),
        ] = None,
        flavor: Annotated[
            str,
            typer.Option(
                "--flavor",
                help="cpu, cuda, tensorrt or openvino: which ONNX Runtime; edge-agent: the"
                " IoT Edge agent's own image (runtime + agent, no model).",
            ),
        ] = "cpu",
        base_image: Annotated[
            str | None,
            typer.Option("--base-image", help="Base image (default: the flavor's)."),
        ] = None,
        local_base: Annotated[
            bool,
            typer.Option(
                "--local-base",
                help="Use (making it once, about a minute) a Debian base made here with"
                " debootstrap, for machines that cannot pull public images.",
            ),
        ] = False,
        tag: Annotated[str | None, typer.Option("--tag", help="IMAGE:TAG to build.")] = None,
        push: Annotated[bool, typer.Option("--push", help="Push to the tag's registry.")] = False,
        platform: PlatformOption = None,
        output_format: Annotated[
            str, typer.Option("--format", help="image, dir, tar or triton.")
        ] = "image",
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                help="Folder/file to write (dir, tar, triton); for image,"
                " keep the build context there.",
            ),
        ] = None,
        python_version: PythonOption = None,
        max_batch_size: BatchOption = 0,
        original: NoVariantOption = False,
        wheel: Annotated[
            Path | None,
            typer.Option(
                "--amlpkg-wheel",
                help="Ship these amlpkg-core and amlpkg-runtime wheels (a folder), not ones"
                " built from the checkout.",
            ),
        ] = None,
        builder: Annotated[
            str,
            typer.Option(
                "--builder",
                help="docker: the Docker engine builds (default). oci: no daemon; layers"
                " written here, reproducibly, and pushed to --tag's registry; --platform may"
                " list several (linux/amd64,linux/arm64) for a multi-arch index.",
            ),
        ] = "docker",
        base_image_arm64: Annotated[
            str | None,
            typer.Option(
                "--base-image-arm64",
                help="--builder oci: the linux/arm64 base (REGISTRY/NAME:TAG; default: a"
                " Debian Python base made in the tag's registry).",
            ),
        ] = None,
        require_signature: RequireSignatureOption = False,
        trust: TrustOption = None,
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Build a scoring image (or a folder, tarball or Triton repository) of a model.

        With a team server the build runs here and is recorded on the server.
        """
        from amlpkg.errors import InvalidArgumentError
        from amlpkg.packager.build.api import build_image
        from amlpkg.packager.build.options import BuildOptions, Hooks
        from amlpkg.packager.build.package_dir import make_package
        from amlpkg.packager.build.remote import build_agent_on_server, build_on_server
        from amlpkg.store.workspace import open_workspace

        if builder not in ("docker", "oci"):
            raise InvalidArgumentError(
                f"unknown builder {builder!r}", hint="use --builder docker or --builder oci"
            )
        if builder == "oci":
            if flavor == "edge-agent" and ref is None and not local_base:
                _build_oci_agent(home, tracking_uri, as_json, tag=tag, platforms=platform,
                                 base_image=base_image, base_image_arm64=base_image_arm64,
                                 python_version=python_version, wheel=wheel)  # fmt: skip
                return
            if local_base or output_format != "image" or ref is None:
                raise InvalidArgumentError(
                    "--builder oci builds a model's image on a base in a registry",
                    hint="amlpkg build NAME:VERSION --builder oci --tag REGISTRY/NAME:TAG"
                    " [--platform linux/amd64,linux/arm64] [--base-image REF]",
                )
            _build_oci(ref, home, tracking_uri, as_json, tag=tag, flavor=flavor, platforms=platform,
                       base_image=base_image, base_image_arm64=base_image_arm64,
                       python_version=python_version, max_batch_size=max_batch_size,
                       original=original, wheel=wheel, require_signature=require_signature,
                       trust=trust)  # fmt: skip
            return
        with _progress(as_json) as (on_status, on_step):
            hooks = Hooks(on_status=on_status, on_step=on_step)
            if local_base:
                from amlpkg.packager.build.base_image import LOCAL_BASE_TAG, ensure_local_base

                if base_image is not None:
                    error_console.print("[yellow]--local-base replaces --base-image[/]")
                ensure_local_base(on_status=hooks.on_status)
                base_image = LOCAL_BASE_TAG
            options = BuildOptions(
                flavor=flavor,
                format=output_format,
                base_image=base_image,
                tag=tag,
                push=push,
                platform=platform,
                python_version=python_version,
                output=output,
                max_batch_size=max_batch_size,
                use_variant=not original,
                amlpkg_wheel=wheel,
                require_signature=require_signature,
                trust=trust,
            )
            agent = flavor == "edge-agent"
            if agent == (ref is not None):
                raise InvalidArgumentError(
                    "--flavor edge-agent builds without a model; every other flavor needs one",
                    hint="amlpkg build NAME:VERSION [--flavor cpu|...], or amlpkg build"
                    " --flavor edge-agent",
                )
            if (server := tracking_server(home, tracking_uri)) is not None:
                if ref is None:  # the edge agent (checked above)
                    _report(build_agent_on_server(server, options, hooks).to_dict(), as_json)
                else:
                    _report(build_on_server(server, ref, options, hooks).to_dict(), as_json)
                return
            with open_workspace(home) as ws:
                if agent:
                    from amlpkg.packager.build.agent_image import build_agent_image

                    _report(build_agent_image(ws, options, hooks).to_dict(), as_json)
                    return
                if output_format == "image":
                    assert ref is not None
                    package = build_image(ws, ref, options, hooks)
                else:
                    assert ref is not None
                    package = make_package(ws, ref, options, hooks)
        _report(package.to_dict(), as_json)

    @app.command("package")
    def package_command(  # noqa: PLR0917 - Typer maps parameters to CLI options
        ref: RefArgument,
        output: Annotated[Path, typer.Option("--output", help="Folder (or .tar.gz) to write.")],
        flavor: FlavorOption = "cpu",
        tar: Annotated[bool, typer.Option("--tar", help="Write a .tar.gz, not a folder.")] = False,
        platform: PlatformOption = None,
        python_version: PythonOption = None,
        max_batch_size: BatchOption = 0,
        original: NoVariantOption = False,
        home: HomeOption = None,
        tracking_uri: TrackingUriOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write a model's server as a folder (or tarball) with run.sh, for hosts without Docker."""
        from amlpkg.packager.build.options import BuildOptions, Hooks
        from amlpkg.packager.build.package_dir import make_package
        from amlpkg.packager.build.remote import build_on_server
        from amlpkg.store.workspace import open_workspace

        server = tracking_server(home, tracking_uri)
        with _progress(as_json) as (on_status, on_step):
            hooks = Hooks(on_status=on_status, on_step=on_step)
            options = BuildOptions(
                flavor=flavor,
                format="tar" if tar else "dir",
                platform=platform,
                python_version=python_version,
                output=output,
                max_batch_size=max_batch_size,
                use_variant=not original,
            )
            if server is not None:
                package = build_on_server(server, ref, options, hooks)
            else:
                with open_workspace(home) as ws:
                    package = make_package(ws, ref, options, hooks)
        _report(package.to_dict(), as_json)
        if not as_json and not tar:
            console.print(f"start it with: [bold]{package.path}/run.sh --http-port 8000[/]")
