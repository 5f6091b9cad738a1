#!/bin/sh
# Regenerate introspection_pb2.py, .pyi and _grpc.py from introspection.proto (from anywhere).
#
# The committed stubs were made with grpcio-tools 1.66.2 (protoc gencode 5.27.2), on purpose
# older than the newest: gencode only demands a runtime at least as new as itself, so this keeps
# the floors of pyproject.toml low (grpcio >= 1.66, protobuf >= 5.27.2). Newer grpcio-tools work
# too but raise both floors to their own versions.
#
#   python3 -m venv /tmp/criproto-venv && /tmp/criproto-venv/bin/pip install grpcio-tools==1.66.2
#   PYTHON=/tmp/criproto-venv/bin/python nodegc/runtime/cri_proto/generate.sh
set -eu
cd "$(dirname "$0")/../../.."
"${PYTHON:-python3}" -m grpc_tools.protoc \
    --proto_path=. \
    --python_out=. \
    --pyi_out=. \
    --grpc_python_out=. \
    nodegc/runtime/introspection_proto/introspection.proto
