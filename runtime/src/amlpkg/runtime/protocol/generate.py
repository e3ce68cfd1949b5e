"""Regenerate the committed protobuf/gRPC Python code from the .proto files.

Run ``python -m amlpkg.runtime.protocol.generate`` after editing a .proto file
(needs ``grpcio-tools``, a dev dependency). The drift test calls :func:`generate`
into a temporary folder and compares with the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from amlpkg.errors import InternalError

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("grpc_service.proto", "model_config.proto")
GENERATED_FILES = ("grpc_service_pb2.py", "grpc_service_pb2_grpc.py", "model_config_pb2.py")
PACKAGE = "amlpkg.runtime.protocol"

# protoc writes top-level imports ("import model_config_pb2 as ..."); inside our
# package they must be absolute so the code imports as amlpkg.runtime.protocol.*.
_TOP_LEVEL_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _fix_imports(source: str) -> str:
    return _TOP_LEVEL_IMPORT.sub(rf"from {PACKAGE} import \1 as \2", source)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on the .proto files, fix imports, write the modules to ``out_dir``."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # dev-only, imported on use

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={raw}",
            f"--grpc_python_out={raw}",
            *(str(PROTO_DIR / name) for name in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise InternalError(
                "protoc failed on " + ", ".join(PROTO_FILES),
                hint="run it by hand to see the error: python -m grpc_tools.protoc ...",
            )
        written = []
        for name in GENERATED_FILES:
            target = out_dir / name
            target.write_text(_fix_imports((Path(raw) / name).read_text()))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: regenerate into this package (or ``--out DIR``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_DIR, help="output folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    main()
