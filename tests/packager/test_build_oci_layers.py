"""The reproducible layer writer, the ELF reader and the OCI builder's references (no services)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from amlpkg.errors import InvalidArgumentError
from amlpkg.packager.build.oci_builder.build import source_date_epoch
from amlpkg.packager.build.oci_builder.elf import (
    EM_AARCH64,
    EM_X86_64,
    elf_machine,
    foreign_binaries,
)
from amlpkg.packager.build.oci_builder.layers import write_layer
from amlpkg.packager.build.oci_builder.registry_io import ImageRef

EPOCH = 1_700_000_000


def _tree(root: Path, mtime: int, mode: int) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "b.py").write_text("b = 2\n")
    (root / "pkg" / "a.py").write_text("a = 1\n")
    tool = root / "pkg" / "sub" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(mode)
    (root / "pkg" / "link").symlink_to("a.py")
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_the_same_files_give_the_same_layer_bytes(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one", mtime=1_000, mode=0o700)
    second = _tree(tmp_path / "two", mtime=2_000_000_000, mode=0o755)
    a = write_layer({"/opt/app": first}, tmp_path / "a.tar.gz", EPOCH)
    b = write_layer({"/opt/app": second}, tmp_path / "b.tar.gz", EPOCH)
    assert a.digest == b.digest and a.diff_id == b.diff_id
    assert a.path.read_bytes() == b.path.read_bytes()
    later = write_layer({"/opt/app": first}, tmp_path / "c.tar.gz", EPOCH + 1)
    assert later.digest != a.digest  # the epoch is every entry's mtime


def test_layer_entries_are_sorted_root_owned_and_normalized(tmp_path: Path) -> None:
    layer = write_layer({"/opt/app": _tree(tmp_path / "t", 5, 0o700)}, tmp_path / "l.tgz", EPOCH)
    raw = layer.path.read_bytes()
    # gzip header: no FNAME flag (byte 3), mtime 0 (bytes 4-7).
    assert raw[:3] == b"\x1f\x8b\x08" and raw[3] & 0x08 == 0 and raw[4:8] == b"\0\0\0\0"
    with tarfile.open(layer.path) as archive:
        members = archive.getmembers()
    names = [m.name for m in members]
    assert names == [
        "opt",
        "opt/app",
        "opt/app/pkg",
        "opt/app/pkg/a.py",
        "opt/app/pkg/b.py",
        "opt/app/pkg/link",
        "opt/app/pkg/sub",
        "opt/app/pkg/sub/tool",
    ]
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    assert all(m.mtime == EPOCH for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["opt/app/pkg/sub/tool"] == 0o755
    assert modes["opt/app/pkg/a.py"] == 0o644
    assert modes["opt/app/pkg"] == 0o755
    link = next(m for m in members if m.name == "opt/app/pkg/link")
    assert link.issym() and link.linkname == "a.py"


def test_elf_machine_reads_the_header() -> None:
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 11
    assert elf_machine(header + EM_AARCH64.to_bytes(2, "little")) == EM_AARCH64
    assert elf_machine(header + EM_X86_64.to_bytes(2, "little")) == EM_X86_64
    assert elf_machine(b"#!/bin/sh\n" + b"\0" * 10) is None


def test_image_references_need_a_registry_host() -> None:
    ref = ImageRef.parse("127.0.0.1:5000/team/iris:1")
    assert (ref.host, ref.repository, ref.tag) == ("127.0.0.1:5000", "team/iris", "1")
    assert ImageRef.parse("registry.example.com/iris").tag == "latest"
    with pytest.raises(InvalidArgumentError, match="registry"):
        ImageRef.parse("iris:1")
    with pytest.raises(InvalidArgumentError):
        ImageRef.parse("127.0.0.1:5000/Iris:1")


def test_foreign_binaries_are_found_by_their_header(tmp_path: Path) -> None:
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 11
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x86.so").write_bytes(header + EM_X86_64.to_bytes(2, "little") + b"..")
    (tmp_path / "lib" / "arm.so").write_bytes(header + EM_AARCH64.to_bytes(2, "little") + b"..")
    (tmp_path / "lib" / "text.py").write_text("print('hi')\n")
    assert foreign_binaries(tmp_path, "linux/arm64") == ["lib/x86.so"]
    assert foreign_binaries(tmp_path, "linux/amd64") == ["lib/arm.so"]


def test_source_date_epoch_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    assert source_date_epoch(None) == 1234567890
    assert source_date_epoch(42) == 42
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InvalidArgumentError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch(None)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert source_date_epoch(None) > 315532800  # the checkout's last commit
