"""A KEDA-side gRPC client generated at test time from KEDA's upstream proto.

Generated from ../shared/upstream/keda/externalscaler.proto when present (else proto/, which a test
proves identical), into a temporary directory, so the tests do not talk to the scaler through the
scaler's own committed stubs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_PROTO = ROOT.parent / "shared" / "upstream" / "keda" / "externalscaler.proto"
PROJECT_PROTO = ROOT / "proto" / "externalscaler.proto"


def upstream_proto() -> Path:
    return UPSTREAM_PROTO if UPSTREAM_PROTO.exists() else PROJECT_PROTO


def generate_client(out_dir: Path) -> tuple[ModuleType, ModuleType]:
    """(pb2, pb2_grpc) modules compiled from KEDA's proto into ``out_dir``."""
    from grpc_tools import protoc

    proto = upstream_proto()
    out_dir.mkdir(parents=True, exist_ok=True)
    pkg = out_dir / "kedaclient"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    code = protoc.main(
        ["protoc", f"-I{proto.parent}", f"--python_out={pkg}", f"--grpc_python_out={pkg}", str(proto)]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {proto} with exit code {code}")
    grpc_file = pkg / "externalscaler_pb2_grpc.py"
    grpc_file.write_text(
        grpc_file.read_text().replace(
            "import externalscaler_pb2 as", "from kedaclient import externalscaler_pb2 as"
        )
    )
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    pb2 = importlib.import_module("kedaclient.externalscaler_pb2")
    pb2_grpc = importlib.import_module("kedaclient.externalscaler_pb2_grpc")
    return pb2, pb2_grpc
