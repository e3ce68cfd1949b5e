"""Our .proto files against the published wire format (tritonclient's descriptors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

# Dev dependencies: a missing one is an error here, never a skip.
from grpc_tools import protoc  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2 as their_config
from tritonclient.grpc import service_pb2 as their_service

from amlpkg.runtime.protocol import generate


@pytest.fixture(scope="module")
def our_files(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Compile our .proto text with protoc and parse the descriptor set it writes."""
    out = tmp_path_factory.mktemp("descriptors") / "set.pb"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{generate.PROTO_DIR}",
            f"--descriptor_set_out={out}",
            *(str(generate.PROTO_DIR / name) for name in generate.PROTO_FILES),
        ]
    )
    assert rc == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.name: f for f in files}


def _theirs(module: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)  # type: ignore[attr-defined]
    return proto


def _walk(
    messages: list[descriptor_pb2.DescriptorProto], prefix: str = ""
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}
    for message in messages:
        name = prefix + message.name
        found[name] = message
        found.update(_walk(list(message.nested_type), name + "."))
    return found


def _fields(message: descriptor_pb2.DescriptorProto) -> dict[str, tuple[object, ...]]:
    return {
        f.name: (
            f.number,
            f.type,
            f.label,
            f.type_name,
            message.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None,
            f.proto3_optional,
        )
        for f in message.field
    }


@pytest.mark.parametrize(
    ("name", "module"),
    [("grpc_service.proto", their_service), ("model_config.proto", their_config)],
)
def test_every_message_matches_the_published_wire_format(
    our_files: dict[str, descriptor_pb2.FileDescriptorProto], name: str, module: object
) -> None:
    ours, theirs = our_files[name], _theirs(module)
    assert ours.package == theirs.package == "inference"
    our_messages, their_messages = _walk(list(ours.message_type)), _walk(list(theirs.message_type))
    assert sorted(our_messages) == sorted(their_messages)
    for message_name, message in our_messages.items():
        assert _fields(message) == _fields(their_messages[message_name]), message_name
        assert message.options.map_entry == their_messages[message_name].options.map_entry
    our_enums = {e.name: [(v.name, v.number) for v in e.value] for e in ours.enum_type}
    their_enums = {e.name: [(v.name, v.number) for v in e.value] for e in theirs.enum_type}
    assert our_enums == their_enums
    for message_name, message in our_messages.items():
        nested = {e.name: [(v.name, v.number) for v in e.value] for e in message.enum_type}
        their_nested = {
            e.name: [(v.name, v.number) for v in e.value]
            for e in their_messages[message_name].enum_type
        }
        assert nested == their_nested, message_name


def test_every_rpc_exists_with_the_same_types(
    our_files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    ours = our_files["grpc_service.proto"].service
    theirs = _theirs(their_service).service
    assert [s.name for s in ours] == [s.name for s in theirs] == ["GRPCInferenceService"]

    def rpcs(service: descriptor_pb2.ServiceDescriptorProto) -> dict[str, tuple[object, ...]]:
        return {
            m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
            for m in service.method
        }

    assert rpcs(ours[0]) == rpcs(theirs[0])
    assert "ModelInfer" in rpcs(ours[0]) and "ModelConfig" in rpcs(ours[0])


def test_committed_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    """Drift check: the committed *_pb2*.py are exactly what the .proto files generate."""
    written = generate.generate(tmp_path)
    assert [p.name for p in written] == list(generate.GENERATED_FILES)
    for path in written:
        committed = generate.PROTO_DIR / path.name
        assert committed.read_text() == path.read_text(), (
            f"{path.name} drifted from the .proto: run python -m amlpkg.runtime.protocol.generate"
        )


def test_generated_code_imports_inside_the_package() -> None:
    from amlpkg.runtime.protocol import grpc_service_pb2, grpc_service_pb2_grpc

    assert grpc_service_pb2.DESCRIPTOR.package == "inference"
    assert hasattr(grpc_service_pb2_grpc, "GRPCInferenceServiceServicer")
    source = (generate.PROTO_DIR / "grpc_service_pb2.py").read_text()
    assert "from amlpkg.runtime.protocol import model_config_pb2" in source
    assert "\nimport model_config_pb2" not in source
