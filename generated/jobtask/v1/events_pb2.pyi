import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobtask.v1 import jobs_pb2 as _jobs_pb2
from jobtask.v1 import tasks_pb2 as _tasks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("types", "resource_ids", "job_id", "after_sequence", "heartbeat_interval")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    resource_ids: _containers.RepeatedScalarFieldContainer[str]
    job_id: str
    after_sequence: int
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, types: _Optional[_Iterable[str]] = ..., resource_ids: _Optional[_Iterable[str]] = ..., job_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "heartbeat")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence", "time")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "sequence", "type", "occur_time", "tenant", "actor_id", "resource_id", "job_id", "correlation_id", "job_event", "job_status_event", "job_schedule_event", "job_result_event", "job_error_event", "job_progress_event", "task_event", "task_status_event", "task_assign_event", "task_link_event")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCUR_TIME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_EVENT_FIELD_NUMBER: _ClassVar[int]
    JOB_STATUS_EVENT_FIELD_NUMBER: _ClassVar[int]
    JOB_SCHEDULE_EVENT_FIELD_NUMBER: _ClassVar[int]
    JOB_RESULT_EVENT_FIELD_NUMBER: _ClassVar[int]
    JOB_ERROR_EVENT_FIELD_NUMBER: _ClassVar[int]
    JOB_PROGRESS_EVENT_FIELD_NUMBER: _ClassVar[int]
    TASK_EVENT_FIELD_NUMBER: _ClassVar[int]
    TASK_STATUS_EVENT_FIELD_NUMBER: _ClassVar[int]
    TASK_ASSIGN_EVENT_FIELD_NUMBER: _ClassVar[int]
    TASK_LINK_EVENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    sequence: int
    type: str
    occur_time: _timestamp_pb2.Timestamp
    tenant: str
    actor_id: str
    resource_id: str
    job_id: str
    correlation_id: str
    job_event: JobEvent
    job_status_event: JobStatusEvent
    job_schedule_event: JobScheduleEvent
    job_result_event: JobResultEvent
    job_error_event: JobErrorEvent
    job_progress_event: JobProgressEvent
    task_event: TaskEvent
    task_status_event: TaskStatusEvent
    task_assign_event: TaskAssignEvent
    task_link_event: TaskLinkEvent
    def __init__(self, id: _Optional[str] = ..., sequence: _Optional[int] = ..., type: _Optional[str] = ..., occur_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ..., actor_id: _Optional[str] = ..., resource_id: _Optional[str] = ..., job_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., job_event: _Optional[_Union[JobEvent, _Mapping]] = ..., job_status_event: _Optional[_Union[JobStatusEvent, _Mapping]] = ..., job_schedule_event: _Optional[_Union[JobScheduleEvent, _Mapping]] = ..., job_result_event: _Optional[_Union[JobResultEvent, _Mapping]] = ..., job_error_event: _Optional[_Union[JobErrorEvent, _Mapping]] = ..., job_progress_event: _Optional[_Union[JobProgressEvent, _Mapping]] = ..., task_event: _Optional[_Union[TaskEvent, _Mapping]] = ..., task_status_event: _Optional[_Union[TaskStatusEvent, _Mapping]] = ..., task_assign_event: _Optional[_Union[TaskAssignEvent, _Mapping]] = ..., task_link_event: _Optional[_Union[TaskLinkEvent, _Mapping]] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "name", "kind", "owner", "status", "etag", "changed_fields", "task_total", "task_done")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TASK_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TASK_DONE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    kind: str
    owner: str
    status: _jobs_pb2.JobStatus
    etag: str
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    task_total: int
    task_done: int
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., owner: _Optional[str] = ..., status: _Optional[_Union[_jobs_pb2.JobStatus, str]] = ..., etag: _Optional[str] = ..., changed_fields: _Optional[_Iterable[str]] = ..., task_total: _Optional[int] = ..., task_done: _Optional[int] = ...) -> None: ...

class JobStatusEvent(_message.Message):
    __slots__ = ("job_id", "owner", "old_status", "new_status", "etag", "run_id", "attempt", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OLD_STATUS_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    old_status: _jobs_pb2.JobStatus
    new_status: _jobs_pb2.JobStatus
    etag: str
    run_id: str
    attempt: int
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ..., old_status: _Optional[_Union[_jobs_pb2.JobStatus, str]] = ..., new_status: _Optional[_Union[_jobs_pb2.JobStatus, str]] = ..., etag: _Optional[str] = ..., run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class JobScheduleEvent(_message.Message):
    __slots__ = ("job_id", "owner", "next_run_time", "etag")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    next_run_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class JobResultEvent(_message.Message):
    __slots__ = ("job_id", "owner", "run_id", "attempt", "result", "message", "etag", "next_run_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    run_id: str
    attempt: int
    result: _struct_pb2.Struct
    message: str
    etag: str
    next_run_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ..., run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobErrorEvent(_message.Message):
    __slots__ = ("job_id", "owner", "run_id", "attempt", "error", "will_retry", "etag", "next_attempt_time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WILL_RETRY_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    run_id: str
    attempt: int
    error: str
    will_retry: bool
    etag: str
    next_attempt_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ..., run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., will_retry: _Optional[bool] = ..., etag: _Optional[str] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobProgressEvent(_message.Message):
    __slots__ = ("job_id", "owner", "run_id", "progress", "message", "etag")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    owner: str
    run_id: str
    progress: float
    message: str
    etag: str
    def __init__(self, job_id: _Optional[str] = ..., owner: _Optional[str] = ..., run_id: _Optional[str] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "title", "owner", "assignee", "status", "priority", "parent_id", "job_id", "etag", "changed_fields")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    title: str
    owner: str
    assignee: str
    status: _tasks_pb2.TaskStatus
    priority: _tasks_pb2.TaskPriority
    parent_id: str
    job_id: str
    etag: str
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_id: _Optional[str] = ..., title: _Optional[str] = ..., owner: _Optional[str] = ..., assignee: _Optional[str] = ..., status: _Optional[_Union[_tasks_pb2.TaskStatus, str]] = ..., priority: _Optional[_Union[_tasks_pb2.TaskPriority, str]] = ..., parent_id: _Optional[str] = ..., job_id: _Optional[str] = ..., etag: _Optional[str] = ..., changed_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskStatusEvent(_message.Message):
    __slots__ = ("task_id", "owner", "assignee", "old_status", "new_status", "parent_id", "job_id", "etag", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    OLD_STATUS_FIELD_NUMBER: _ClassVar[int]
    NEW_STATUS_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    owner: str
    assignee: str
    old_status: _tasks_pb2.TaskStatus
    new_status: _tasks_pb2.TaskStatus
    parent_id: str
    job_id: str
    etag: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., owner: _Optional[str] = ..., assignee: _Optional[str] = ..., old_status: _Optional[_Union[_tasks_pb2.TaskStatus, str]] = ..., new_status: _Optional[_Union[_tasks_pb2.TaskStatus, str]] = ..., parent_id: _Optional[str] = ..., job_id: _Optional[str] = ..., etag: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskAssignEvent(_message.Message):
    __slots__ = ("task_id", "owner", "old_assignee", "new_assignee", "job_id", "etag")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OLD_ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    NEW_ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    owner: str
    old_assignee: str
    new_assignee: str
    job_id: str
    etag: str
    def __init__(self, task_id: _Optional[str] = ..., owner: _Optional[str] = ..., old_assignee: _Optional[str] = ..., new_assignee: _Optional[str] = ..., job_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class TaskLinkEvent(_message.Message):
    __slots__ = ("task_id", "owner", "assignee", "status", "job_id", "etag")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    owner: str
    assignee: str
    status: _tasks_pb2.TaskStatus
    job_id: str
    etag: str
    def __init__(self, task_id: _Optional[str] = ..., owner: _Optional[str] = ..., assignee: _Optional[str] = ..., status: _Optional[_Union[_tasks_pb2.TaskStatus, str]] = ..., job_id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...
