"""The error table and the OperationResult carried in status details."""

from __future__ import annotations

import grpc
import pytest
from jobtask.v1 import common_pb2

from core.common.result import ErrorCode, FieldViolation, OperationResult
from server import errors
from server.conversions.common import InvalidRequest, etag, parse_etag


def test_the_table_covers_every_code_with_the_status_of_the_same_name() -> None:
    assert set(errors.STATUS_BY_CODE) == set(ErrorCode)
    for code, status in errors.STATUS_BY_CODE.items():
        assert status.name == code.name


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_a_proto_value(code: ErrorCode) -> None:
    error = OperationResult.failure(code, "m").error
    assert error is not None
    assert common_pb2.ErrorCode.Name(errors.error_to_proto(error).code) == "ERROR_CODE_" + code.name


def test_the_status_carries_the_whole_operation_result() -> None:
    error = OperationResult.invalid(FieldViolation("name", "must not be empty")).error
    assert error is not None
    status = errors.rich_status(error)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    ((key, value),) = status.trailing_metadata
    assert key == errors.STATUS_DETAILS_KEY
    assert isinstance(value, bytes)


def test_details_become_a_struct() -> None:
    error = OperationResult.illegal_transition("job", "j1", "SUCCEEDED", "RUNNING").error
    assert error is not None
    message = errors.error_to_proto(error)
    assert dict(message.details) == {"current_state": "SUCCEEDED", "attempted_state": "RUNNING"}


@pytest.mark.parametrize("text", ["²", "1²", "١٢", "9" * 5000, "-1", "1.0", " 1"])
def test_an_etag_that_is_not_a_version_is_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_etag(text)
    assert refused.value.violation.field == "etag"


def test_etags_round_trip() -> None:
    assert parse_etag("") is None
    assert parse_etag(etag(9_000_000_000)) == 9_000_000_000
