"""The proto is KEDA's, verbatim, and the committed stubs agree with it."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from scaler._generated import externalscaler_pb2, externalscaler_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto" / "externalscaler.proto"
# Git blob id of the upstream file at kedacore/keda 8b4f083ca8c8c2baf8477e322bd4d16ac4dfa09a.
UPSTREAM_BLOB_SHA1 = "31a4b3744a20e3907f0bf5bc44f94f3cd54e1341"


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_proto_is_upstream_verbatim() -> None:
    assert _git_blob_sha1(PROTO.read_bytes()) == UPSTREAM_BLOB_SHA1


def _fresh_descriptor(tmp_path: Path) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path / "set.pb"
    code = protoc.main(["protoc", f"-I{PROTO.parent}", f"--descriptor_set_out={out}", str(PROTO)])
    assert code == 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    fresh = fds.file[0]
    # --descriptor_set_out fills json_name; the descriptor embedded in *_pb2.py leaves it out.
    for message in [*fresh.message_type, *(n for m in fresh.message_type for n in m.nested_type)]:
        for f in message.field:
            f.ClearField("json_name")
    return fresh


def test_committed_messages_match_a_fresh_compile(tmp_path: Path) -> None:
    committed = descriptor_pb2.FileDescriptorProto.FromString(externalscaler_pb2.DESCRIPTOR.serialized_pb)
    assert committed == _fresh_descriptor(tmp_path), "scaler/_generated is stale: run `make proto`"


def test_committed_grpc_stubs_cover_exactly_the_proto_service(tmp_path: Path) -> None:
    (service,) = _fresh_descriptor(tmp_path).service
    in_proto = {m.name for m in service.method}
    servicer = externalscaler_pb2_grpc.ExternalScalerServicer
    in_stubs = {name for name, _ in inspect.getmembers(servicer, inspect.isfunction)}
    assert in_stubs == in_proto
    assert service.name == "ExternalScaler" and in_proto >= {
        "IsActive",
        "StreamIsActive",
        "GetMetricSpec",
        "GetMetrics",
    }
