"""core.common: results, ids, clocks, pagination tokens, the permission machinery."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.common import access, pagination
from core.common.access import Reach
from core.common.actor import Actor, Role, system_actor
from core.common.clock import FakeClock, SystemClock
from core.common.errors import ConcurrencyError, StaleVersionError, StorageUnavailableError, guarded
from core.common.ids import new_id, parse_id
from core.common.result import ErrorCode, FieldViolation, OperationResult, ResultError


class TestOperationResult:
    def test_success_carries_its_value(self) -> None:
        result = OperationResult.success(41)
        assert (result.ok, result.value, result.code, result.error) == (True, 41, None, None)

    def test_asking_a_failure_for_its_value_raises(self) -> None:
        result = OperationResult.not_found("job", "j1")
        with pytest.raises(ResultError, match="job j1 not found"):
            _ = result.value
        assert result.as_failure() == result
        with pytest.raises(ValueError, match="success"):
            OperationResult.success(1).as_failure()

    @pytest.mark.parametrize(
        ("result", "code"),
        [
            (OperationResult.invalid_argument("f", "bad"), ErrorCode.INVALID_ARGUMENT),
            (OperationResult.denied("start", "job", 1, "ann"), ErrorCode.PERMISSION_DENIED),
            (OperationResult.unauthenticated("who?"), ErrorCode.UNAUTHENTICATED),
            (OperationResult.illegal_transition("job", 1, "A", "B"), ErrorCode.FAILED_PRECONDITION),
            (OperationResult.failed_precondition("no"), ErrorCode.FAILED_PRECONDITION),
            (OperationResult.aborted("job", 1, 1, None), ErrorCode.ABORTED),
            (OperationResult.out_of_range("old"), ErrorCode.OUT_OF_RANGE),
            (OperationResult.resource_exhausted("full"), ErrorCode.RESOURCE_EXHAUSTED),
            (OperationResult.unavailable("down"), ErrorCode.UNAVAILABLE),
            (OperationResult.internal("bug"), ErrorCode.INTERNAL),
        ],
    )
    def test_each_constructor_sets_its_code(self, result: OperationResult[object], code: ErrorCode) -> None:
        assert result.code is code
        assert result.error is not None
        assert result.error.message

    def test_invalid_names_every_field(self) -> None:
        result = OperationResult.invalid(FieldViolation("a", "x"), FieldViolation("b", "y"))
        assert result.error is not None
        assert result.error.message == "invalid argument: a: x, b: y"
        assert [v.field for v in result.error.field_violations] == ["a", "b"]


class TestGuarded:
    @pytest.mark.parametrize(
        ("error", "code"),
        [
            (StaleVersionError("job", 1, 1, 2), ErrorCode.ABORTED),
            (ConcurrencyError("deadlock"), ErrorCode.ABORTED),
            (StorageUnavailableError("gone"), ErrorCode.UNAVAILABLE),
        ],
    )
    def test_storage_errors_become_results(self, error: Exception, code: ErrorCode) -> None:
        def fail() -> OperationResult[int]:
            raise error

        assert guarded("job", 1, fail).code is code
        assert guarded("job", 1, lambda: OperationResult.success(3)).value == 3

    def test_other_errors_pass_through(self) -> None:
        def bug() -> OperationResult[int]:
            raise KeyError("bug")

        with pytest.raises(KeyError):
            guarded("job", 1, bug)


class TestIds:
    def test_ids_are_version_7_and_increasing(self) -> None:
        ids = [new_id() for _ in range(5000)]
        assert all(i.version == 7 for i in ids)
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)

    def test_the_timestamp_is_the_current_millisecond(self) -> None:
        before = int(datetime.now(UTC).timestamp() * 1000)
        stamp = new_id().int >> 80
        assert before <= stamp <= before + 1000

    def test_parse(self) -> None:
        value = new_id()
        assert parse_id(str(value)) == value
        assert parse_id("nope") is None


class TestClocks:
    def test_the_fake_clock_moves_only_when_told(self) -> None:
        clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
        assert clock.now() == clock.now()
        assert clock.advance(timedelta(seconds=5)) == datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC)
        clock.set(datetime(2031, 1, 1, tzinfo=UTC))
        assert clock.now().year == 2031
        with pytest.raises(ValueError, match="timezone-aware"):
            clock.set(datetime(2031, 1, 1))

    def test_the_system_clock_is_utc(self) -> None:
        assert SystemClock().now().tzinfo is UTC


class TestPagination:
    def test_tokens_round_trip_and_bind_to_the_filter(self) -> None:
        key = uuid.uuid4()
        token = pagination.encode_token(key, "f1")
        assert pagination.page_request(10, token, "f1") == pagination.PageRequest(size=10, after=key)
        with pytest.raises(pagination.InvalidPageRequest, match="different filter"):
            pagination.page_request(10, token, "f2")

    @pytest.mark.parametrize(
        "token",
        [
            base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode(),  # nests past the parser
            base64.urlsafe_b64encode(b'{"k": "' + b"0" * 2000 + b'"}').decode(),
            "not base64 at all!",
            base64.urlsafe_b64encode(b'{"k": 1, "f": "f"}').decode(),
        ],
        ids=["deeply-nested", "oversized", "garbage", "wrong-types"],
    )
    def test_a_forged_token_is_refused_by_name(self, token: str) -> None:
        with pytest.raises(pagination.InvalidPageRequest) as refused:
            pagination.page_request(10, token, "f")
        assert refused.value.field == "page_token"

    def test_sizes_default_and_cap(self) -> None:
        assert pagination.page_request(0, "", "f").size == pagination.DEFAULT_PAGE_SIZE
        assert pagination.page_request(10**6, "", "f").size == pagination.MAX_PAGE_SIZE


class TestAccess:
    RULES: access.Rules = {
        "read": {Role.MEMBER: Reach.OWN | Reach.ASSIGNED, Role.VIEWER: Reach.ANY},
        "write": {Role.MEMBER: Reach.OWN},
    }

    def test_reach_is_the_union_of_roles_and_unknown_roles_grant_nothing(self) -> None:
        actor = Actor(id="a", tenant="t", roles=frozenset({"member", "viewer", "wizard"}))
        assert access.reach(self.RULES, actor, "read") == Reach.OWN | Reach.ASSIGNED | Reach.ANY
        nobody = Actor(id="a", tenant="t", roles=frozenset({"wizard"}))
        assert not access.permits_any(self.RULES, nobody, "read")

    def test_allows_by_ownership_assignment_and_tenant(self) -> None:
        ann = Actor(id="ann", tenant="t", roles=frozenset({"member"}))
        assert access.allows(self.RULES, ann, "read", tenant="t", owner="ann")
        assert access.allows(self.RULES, ann, "read", tenant="t", owner="bob", assignee="ann")
        assert not access.allows(self.RULES, ann, "read", tenant="t", owner="bob", assignee="carl")
        assert not access.allows(self.RULES, ann, "write", tenant="t", owner="bob", assignee="ann")
        assert not access.allows(self.RULES, ann, "read", tenant="other", owner="ann")

    def test_the_system_actor(self) -> None:
        actor = system_actor("t")
        assert actor.roles == {Role.SYSTEM.value}


def test_the_reason_of_a_failure_and_not_of_a_success() -> None:
    refused = OperationResult.invalid_argument("name", "is required")
    assert refused.reason.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(ValueError, match="reason of a success"):
        _ = OperationResult.success(1).reason
