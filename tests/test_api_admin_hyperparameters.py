"""PutPolicy over gRPC: Struct numbers are doubles, integer hyperparameters still validate."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from banditroute.v1 import admin_pb2, admin_pb2_grpc
from tests.helpers import InProcessServer


def test_admin_put_policy_gives_integral_hyperparameters_their_int_type(
    grpc_server: InProcessServer,
) -> None:
    hp = struct_pb2.Struct()
    hp.update({"alpha": 0.5, "refresh_every": 500, "scale_freeze_after": 1000})
    with grpc.insecure_channel(grpc_server.address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        policy = admin.PutPolicy(
            admin_pb2.PutPolicyRequest(name="ints", algorithm="linucb", hyperparameters=hp),
            metadata=grpc_server.admin_metadata,
        )
    assert dict(policy.hyperparameters) == {
        "alpha": 0.5,
        "refresh_every": 500.0,
        "scale_freeze_after": 1000.0,
    }
