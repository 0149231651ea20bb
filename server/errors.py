"""From OperationResult failures to gRPC statuses with rich details."""

from __future__ import annotations

from typing import Any, Final

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status
from jobtask.v1 import common_pb2

from core.common.jsonable import jsonable
from core.common.result import ErrorCode, OperationError
from server.conversions.common import to_struct

# One row per ErrorCode; a test checks that every code has one.
STATUS_BY_CODE: Final[dict[ErrorCode, grpc.StatusCode]] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.ABORTED: grpc.StatusCode.ABORTED,
    ErrorCode.OUT_OF_RANGE: grpc.StatusCode.OUT_OF_RANGE,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def error_to_proto(error: OperationError) -> common_pb2.OperationResult:
    """The OperationResult message of a failure."""
    message = common_pb2.OperationResult(
        code=common_pb2.ErrorCode.Value("ERROR_CODE_" + error.code.value),  # type: ignore[arg-type]
        message=error.message,
        field_violations=[
            common_pb2.FieldViolation(field=v.field, description=v.description)
            for v in error.field_violations
        ],
    )
    if error.details:
        message.details.CopyFrom(to_struct(jsonable(error.details)))
    return message


def rich_status(error: OperationError) -> Any:
    """A grpc.Status whose trailing metadata carries google.rpc.Status with the OperationResult."""
    code = STATUS_BY_CODE[error.code]
    detail = any_pb2.Any()
    detail.Pack(error_to_proto(error))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


def set_failure(context: Any, error: OperationError) -> None:
    """Make the call end with the status of ``error`` (works on aio and testing contexts)."""
    status = rich_status(error)
    context.set_code(status.code)
    context.set_details(status.details)
    context.set_trailing_metadata(status.trailing_metadata)


def operation_result_of(rpc_error: grpc.RpcError) -> common_pb2.OperationResult | None:
    """The OperationResult in a failed call's status details, if any (for clients and tests)."""
    status = rpc_status.from_call(rpc_error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(common_pb2.OperationResult.DESCRIPTOR):
            result = common_pb2.OperationResult()
            detail.Unpack(result)
            return result
    return None
