"""Options of a build, checked once, and the progress callbacks a caller may pass."""

from __future__ import annotations

import platform as host_platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.base_image import LOCAL_BASE_PYTHON, LOCAL_BASE_TAG
from amlpkg.packager.build.flavors import (
    Flavor,
    check_platform,
    check_python_version,
    get_flavor,
)

FORMATS = ("image", "dir", "tar", "triton")
_HOST_ARCH = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64",
              "arm64": "linux/arm64"}  # fmt: skip
# glibc of the locally made base (Debian bookworm).
LOCAL_BASE_GLIBC = (2, 36)


def _quiet(message: str) -> None:
    """Default status callback: say nothing."""


def _no_step(done: int, total: int, text: str) -> None:
    """Default step callback: say nothing."""


@dataclass(frozen=True)
class Hooks:
    """Progress callbacks: a line per phase, and ``(done, total, text)`` per build step."""

    on_status: Callable[[str], None] = _quiet
    on_step: Callable[[int, int, str], None] = _no_step

    def counted(self, total: int) -> Callable[[str], None]:
        """A ``step(text)`` that reports each call as the next of ``total`` steps, and says it."""
        done = 0

        def step(text: str) -> None:
            nonlocal done
            done += 1
            self.on_step(done, total, text)
            self.on_status(text)

        return step


def host_platform_name() -> str:
    """``linux/amd64`` or ``linux/arm64`` for this machine."""
    machine = host_platform.machine().lower()
    if machine not in _HOST_ARCH:
        raise InvalidArgumentError(f"unsupported host architecture {machine!r}")
    return _HOST_ARCH[machine]


def host_glibc() -> tuple[int, int]:
    """This machine's glibc version (for a package folder run on this host)."""
    name, version = host_platform.libc_ver()
    if name != "glibc" or not version:
        return (2, 17)  # the oldest manylinux: safe everywhere
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how; :meth:`resolved` fills in the flavor's defaults."""

    flavor: str = "cpu"
    format: str = "image"
    base_image: str | None = None
    tag: str | None = None
    push: bool = False
    platform: str | None = None
    python_version: str | None = None
    output: Path | None = None
    max_batch_size: int = 0
    use_variant: bool = True
    glibc: tuple[int, int] | None = None
    no_cache: bool = False
    """Build every layer anew (measuring a cold build, or distrusting the cache)."""
    amlpkg_wheel: Path | None = None
    """An amlpkg wheel to ship instead of one built from the checkout (pinned builds,
    or amlpkg installed without its sources)."""
    require_signature: bool = False
    """The image's runtime loads only models signed by ``trust`` (``[signing]`` installed)."""
    trust: Path | None = None
    """The signer's PEM public key (or PEM root chain) shipped for ``require_signature``."""

    def flavor_spec(self) -> Flavor:
        """The flavor, or a clear error."""
        return get_flavor(self.flavor)

    def resolved(self) -> BuildOptions:
        """A copy with the flavor's defaults filled in, every value checked."""
        flavor = self.flavor_spec()
        if self.format not in FORMATS:
            raise InvalidArgumentError(
                f"unknown format {self.format!r}", hint=f"use one of: {', '.join(FORMATS)}"
            )
        if self.max_batch_size < 0:
            raise InvalidArgumentError("--max-batch-size must be 0 (no batching) or more")
        on_host = self.format in ("dir", "tar")
        platform = self.platform or host_platform_name()
        check_platform(flavor, platform)
        base = self.base_image or flavor.base_image
        if on_host:
            # A package folder runs on a host: its Python decides the wheels.
            import sys

            python = self.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
            glibc = self.glibc or host_glibc()
        elif base == LOCAL_BASE_TAG:
            python = self.python_version or LOCAL_BASE_PYTHON
            glibc = self.glibc or LOCAL_BASE_GLIBC
        else:
            python = self.python_version or flavor.python_version
            glibc = self.glibc or flavor.glibc
        if self.push and self.format != "image":
            raise InvalidArgumentError("--push needs --format image")
        self._check_signature()
        return BuildOptions(
            flavor=flavor.name,
            format=self.format,
            base_image=base,
            tag=self.tag,
            push=self.push,
            platform=platform,
            python_version=check_python_version(python),
            output=self.output,
            max_batch_size=self.max_batch_size,
            use_variant=self.use_variant,
            glibc=glibc,
            no_cache=self.no_cache,
            amlpkg_wheel=self.amlpkg_wheel,
            require_signature=self.require_signature,
            trust=self.trust,
        )

    def _check_signature(self) -> None:
        """``require_signature`` and ``trust`` come together, for an image, with a real key."""
        if self.trust is not None and not self.require_signature:
            raise InvalidArgumentError(
                "--trust is the key of --require-signature", hint="add --require-signature"
            )
        if not self.require_signature:
            return
        if self.trust is None:
            raise InvalidArgumentError(
                "--require-signature needs --trust: the signer's PEM public key",
                hint="export it with: openssl ec -in key.pem -pubout -out key.pub",
            )
        if self.format != "image":
            raise InvalidArgumentError(
                "--require-signature makes an image whose runtime verifies models",
                hint="use --format image (a package folder: run.sh --require-signature --trust)",
            )
        from amlpkg.runtime.signing import Trust

        Trust(self.trust)  # a clear error now for a file that is no key, not at the start
