"""ELF headers: which machine a binary is built for, read from its first 20 bytes."""

from __future__ import annotations

import os
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 0x3E
EM_AARCH64 = 0xB7
MACHINE = {"linux/amd64": EM_X86_64, "linux/arm64": EM_AARCH64}


def elf_machine(header: bytes) -> int | None:
    """``e_machine`` of an ELF header (None when ``header`` is not one)."""
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    if header[5] == 1:
        return int.from_bytes(header[18:20], "little")
    return int.from_bytes(header[18:20], "big")


def foreign_binaries(root: Path, platform: str) -> list[str]:
    """Paths (relative to ``root``) of ELF files not built for ``platform``."""
    want = MACHINE[platform]
    wrong: list[str] = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            with path.open("rb") as handle:
                machine = elf_machine(handle.read(20))
            if machine is not None and machine != want:
                wrong.append(str(path.relative_to(root)))
    return sorted(wrong)
