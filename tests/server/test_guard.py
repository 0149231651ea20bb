"""The call guard's tables cover the contract: every RPC has its early permission check."""

from __future__ import annotations

from jobtask.v1 import events_pb2, jobs_pb2, tasks_pb2

from server.guard import EARLY_CHECKS


def test_every_rpc_of_the_protos_has_an_early_check_and_no_row_is_stale() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (jobs_pb2, tasks_pb2, events_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(EARLY_CHECKS)
