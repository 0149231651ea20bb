"""The job manager: the list with its filters, a job's page with its runs, tasks and
actions, and the forms that create and edit jobs."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from google.protobuf import field_mask_pb2, json_format, struct_pb2
from google.protobuf import message as protobuf_message
from jobtask.v1 import jobs_pb2, tasks_pb2
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.common import access
from core.services.jobs import permissions
from server.console import words
from server.console.api import Refusal
from server.console.app import (
    api_of,
    checked_form,
    identity_of,
    live_page,
    outcome,
    render,
    signed_in,
)

M = TypeVar("M", bound=protobuf_message.Message)
PAGE_SIZES = (10, 25, 50, 100)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RUNS_PAGE = 50
STATUSES = [name.removeprefix("JOB_STATUS_") for name in jobs_pb2.JobStatus.keys()[1:]]


# What each action needs: the permission it is checked against, the statuses it applies
# to, and the form fields it takes. The API decides; this only chooses what to offer.
ACTIONS: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {
    "start": (permissions.START, frozenset({"PENDING", "SCHEDULED"}), ()),
    "complete": (permissions.COMPLETE, frozenset({"RUNNING"}), ("message",)),
    "fail": (permissions.FAIL, frozenset({"RUNNING"}), ("error",)),
    "cancel": (permissions.CANCEL, frozenset({"PENDING", "SCHEDULED", "RUNNING"}), ("reason",)),
    "pause": (permissions.SCHEDULE, frozenset({"SCHEDULED"}), ()),
    "resume": (permissions.SCHEDULE, frozenset({"SCHEDULED"}), ()),
    "run-now": (permissions.SCHEDULE, frozenset({"SCHEDULED"}), ()),
}


def _filters(query: QueryParams) -> dict[str, Any]:
    size = query.get("page_size", "25")
    return {
        "status": [s for s in query.getlist("status") if s in STATUSES],
        "kind": query.get("kind", "").strip(),
        "owner": query.get("owner", "").strip(),
        "label": query.get("label", "").strip(),
        "created_after": query.get("created_after", "").strip(),
        "created_before": query.get("created_before", "").strip(),
        "page_size": int(size) if size.isdigit() and int(size) in PAGE_SIZES else 25,
        "page_token": query.get("page_token", ""),
    }


def _list_request(chosen: dict[str, Any]) -> jobs_pb2.ListJobsRequest:
    request = jobs_pb2.ListJobsRequest(
        page_size=chosen["page_size"],
        page_token=chosen["page_token"],
        statuses=["JOB_STATUS_" + s for s in chosen["status"]],
        owner=chosen["owner"],
        kinds=[chosen["kind"]] if chosen["kind"] else [],
    )
    for pair in filter(None, (p.strip() for p in chosen["label"].split(","))):
        key, _, value = pair.partition("=")
        request.labels[key.strip()] = value.strip()
    for field in ("created_after", "created_before"):
        if chosen[field]:
            getattr(request, field).FromDatetime(_utc(chosen[field], field))
    return request


def _utc(text: str, field: str) -> datetime:
    """A time typed in a form (``2030-01-01T09:30``), read as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Refusal(
            "INVALID_ARGUMENT", f"{field} is not a date and time", ((field, "not a time"),)
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _query(chosen: dict[str, Any], **changes: Any) -> str:
    merged = {**chosen, **changes}
    pairs = [("status", s) for s in merged["status"]]
    keys = ("kind", "owner", "label", "created_after", "created_before", "page_token")
    pairs += [(k, merged[k]) for k in keys if merged[k]]
    if merged["page_size"] != 25:
        pairs.append(("page_size", merged["page_size"]))
    return urlencode(pairs)


async def _table(request: Request) -> dict[str, Any]:
    chosen = _filters(request.query_params)
    context: dict[str, Any] = {"chosen": chosen, "jobs": [], "refusal": None, "query": _query(chosen)}
    try:
        listed = await api_of(request).call(
            identity_of(request), api_of(request).jobs.ListJobs, _list_request(chosen)
        )
    except Refusal as refused:
        context["refusal"] = refused
        return context
    context["jobs"] = listed.jobs
    if listed.next_page_token:
        context["next_query"] = _query(chosen, page_token=listed.next_page_token)
    if chosen["page_token"]:
        context["first_query"] = _query(chosen, page_token="")
    return context


job_list, job_table = live_page(
    "jobs.html", "_jobs_table.html", _table, statuses=STATUSES, page_sizes=PAGE_SIZES
)


def _struct(text: str, field: str) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    if text.strip():
        try:
            parsed = json.loads(text)
        except RecursionError:
            raise Refusal(
                "INVALID_ARGUMENT", f"{field} nests too deeply", ((field, "nests too deeply"),)
            ) from None
        except json.JSONDecodeError as exc:
            raise Refusal(
                "INVALID_ARGUMENT", f"{field} is not JSON: {exc.msg}", ((field, "is not JSON"),)
            ) from None
        if not isinstance(parsed, dict):
            raise Refusal(
                "INVALID_ARGUMENT", f"{field} must be a JSON object", ((field, "must be an object"),)
            )
        try:
            value.update(parsed)
        except (RecursionError, ValueError, protobuf_message.Error) as exc:
            raise Refusal(
                "INVALID_ARGUMENT", f"{field} cannot be sent: {exc}", ((field, "cannot be sent"),)
            ) from None
    return value


def _labels(text: str) -> dict[str, str]:
    pairs = (p.strip().partition("=") for p in text.replace("\n", ",").split(",") if p.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def _job_of_form(form: FormData) -> jobs_pb2.Job:
    job = jobs_pb2.Job(
        name=str(form.get("name", "")).strip(),
        kind=str(form.get("kind", "")).strip(),
        description=str(form.get("description", "")),
        labels=_labels(str(form.get("labels", ""))),
    )
    priority = str(form.get("priority", "")).strip()
    if priority:
        if not re.fullmatch(r"[-+]?\d{1,10}", priority) or not INT32_MIN <= int(priority) <= INT32_MAX:
            raise Refusal(
                "INVALID_ARGUMENT",
                "priority must be a whole number between -2147483648 and 2147483647",
                (("priority", "not a 32-bit whole number"),),
            )
        job.priority = int(priority)
    job.payload.CopyFrom(_struct(str(form.get("payload", "")), "payload"))
    cron = str(form.get("cron", "")).strip()
    if cron:
        job.schedule.cron.expression = cron
        job.schedule.cron.time_zone = str(form.get("time_zone", "")).strip()
    return job


@signed_in
async def new_job(request: Request) -> Response:
    # A request id per form: submitting it twice creates one job.
    return render(request, "job_form.html", job=None, form={"request_id": str(uuid.uuid4())})


def _built(message: type[M], **fields: Any) -> M:
    """``message(**fields)``; a Refusal naming the payload when protobuf cannot hold it (it
    nests deeper than protobuf parses)."""
    try:
        return message(**fields)
    except protobuf_message.Error as exc:
        raise Refusal(
            "INVALID_ARGUMENT", f"payload cannot be sent: {exc}", (("payload", "nests too deeply"),)
        ) from None


@signed_in
async def create_job(request: Request) -> Response:
    form = await checked_form(request)
    try:
        job = _job_of_form(form)
        created = await api_of(request).call(
            identity_of(request),
            api_of(request).jobs.CreateJob,
            _built(jobs_pb2.CreateJobRequest, job=job, request_id=str(form.get("request_id", ""))),
        )
    except Refusal as refused:
        return render(request, "job_form.html", status_code=400, job=None, form=form, refusal=refused)
    return RedirectResponse(f"/jobs/{created.job.id}", status_code=303)


async def _job_context(request: Request, job_id: str) -> dict[str, Any]:
    """A job's page: the job, a page of its runs (``runs`` names an older page), its tasks
    and the actions that apply."""
    api, identity = api_of(request), identity_of(request)
    job = await _get_job(request, job_id)
    older = request.query_params.get("runs", "")
    listed = await api.call(
        identity,
        api.jobs.ListJobRuns,
        jobs_pb2.ListJobRunsRequest(job_id=job_id, page_size=RUNS_PAGE, page_token=older),
    )
    runs = listed.runs
    try:
        linked: Sequence[tasks_pb2.Task] = (
            await api.call(identity, api.jobs.ListJobTasks, jobs_pb2.ListJobTasksRequest(job_id=job_id))
        ).tasks
    except Refusal:
        linked = []
    return {
        "job": job,
        "runs": _timeline(runs),
        "older_runs": listed.next_page_token,
        "newest_runs": bool(older),
        "tasks": linked,
        "actions": _actions(request, job),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class RunLine:
    """A run on the timeline: its times, how long it took, and its bar's width in percent
    of the longest run's (an open run draws full width)."""

    run: jobs_pb2.JobRun
    start: datetime | None
    end: datetime | None
    took: timedelta | None
    width: int


def _timeline(runs: Sequence[jobs_pb2.JobRun]) -> list[RunLine]:
    """Runs, newest first, as the timeline draws them."""
    times = [(run, words.moment(run, "start_time"), words.moment(run, "finish_time")) for run in runs]
    took = [(end - start) if start and end else None for _, start, end in times]
    longest = max((t.total_seconds() for t in took if t), default=0.0)

    def width(spent: timedelta | None) -> int:
        if not longest or spent is None:
            return 100
        return max(2, round(100 * spent.total_seconds() / longest))

    return [
        RunLine(run, start, end, spent, width(spent))
        for (run, start, end), spent in zip(times, took, strict=True)
    ]


def _actions(request: Request, job: jobs_pb2.Job) -> list[dict[str, Any]]:
    """The actions that apply to the job's status; ``allowed`` says whether the actor's roles
    grant it (an action they do not is still offered, and the server's refusal shown)."""
    actor = identity_of(request).as_actor()
    status = words.job_status(job.status)
    offered = []
    for name, (permission, statuses, fields) in ACTIONS.items():
        if status not in statuses:
            continue
        if (name == "pause" and job.paused) or (name == "resume" and not job.paused):
            continue
        allowed = access.allows(permissions.RULES, actor, permission, tenant=job.tenant, owner=job.owner)
        offered.append({"name": name, "fields": fields, "allowed": allowed})
    return offered


job_page, job_panel = live_page(
    "job.html", "_job_panel.html", lambda request: _job_context(request, request.path_params["job_id"])
)


def _action_request(name: str, job_id: str, etag: str, form: FormData) -> tuple[str, Any]:
    text = {field: str(form.get(field, "")).strip() for field in ("message", "error", "reason")}
    if name == "start":
        return "StartJob", jobs_pb2.StartJobRequest(id=job_id, etag=etag)
    if name == "complete":
        return "CompleteJob", jobs_pb2.CompleteJobRequest(
            id=job_id, etag=etag, result=jobs_pb2.JobResult(message=text["message"])
        )
    if name == "fail":
        return "FailJob", jobs_pb2.FailJobRequest(
            id=job_id, etag=etag, error=text["error"] or "failed from the console"
        )
    if name == "cancel":
        return "CancelJob", jobs_pb2.CancelJobRequest(id=job_id, etag=etag, reason=text["reason"])
    if name == "pause":
        return "PauseJob", jobs_pb2.PauseJobRequest(id=job_id, etag=etag)
    if name == "resume":
        return "ResumeJob", jobs_pb2.ResumeJobRequest(id=job_id, etag=etag)
    return "RunJobNow", jobs_pb2.RunJobNowRequest(id=job_id, etag=etag)


@signed_in
async def act(request: Request) -> Response:
    """Run an action; answer its outcome: what the job became, or the refusal in words."""
    form = await checked_form(request)
    job_id, name = request.path_params["job_id"], request.path_params["action"]
    if name not in ACTIONS:
        return Response("no such action", status_code=404)
    method, message = _action_request(name, job_id, str(form.get("etag", "")), form)
    refusal, done = None, ""
    try:
        answer = await api_of(request).call(
            identity_of(request), getattr(api_of(request).jobs, method), message
        )
        done = f"{name.replace('-', ' ').capitalize()}: the job is now {words.job_status(answer.job.status)}."
    except Refusal as refused:
        refusal = refused
    return await outcome(
        request, refusal=refusal, done=done, page="job.html", context=lambda r: _job_context(r, job_id)
    )


def _form_of_job(job: jobs_pb2.Job) -> dict[str, str]:
    """The edit form's fields, filled in from ``job``."""
    cron = job.schedule.cron if job.schedule.WhichOneof("spec") == "cron" else None
    return {
        "name": job.name,
        "description": job.description,
        "priority": str(job.priority),
        "labels": words.labels(job.labels),
        "payload": json.dumps(json_format.MessageToDict(job.payload), indent=2) if job.payload.fields else "",
        "cron": cron.expression if cron else "",
        "time_zone": cron.time_zone if cron else "",
        "etag": job.etag,
    }


async def _get_job(request: Request, job_id: str) -> jobs_pb2.Job:
    answer = await api_of(request).call(
        identity_of(request), api_of(request).jobs.GetJob, jobs_pb2.GetJobRequest(id=job_id)
    )
    job: jobs_pb2.Job = answer.job
    return job


@signed_in
async def edit_form(request: Request) -> Response:
    try:
        job = await _get_job(request, request.path_params["job_id"])
    except Refusal as refused:
        return render(request, "missing.html", status_code=404, refusal=refused)
    return render(request, "job_form.html", job=job, form=_form_of_job(job))


@signed_in
async def update_job(request: Request) -> Response:
    """Save the form: the fields it shows (a schedule only when one is given), at the etag
    the form was read at. When the job changed meanwhile, the form comes back with what was
    typed, the job as it now is, and its new etag: saving again replaces that."""
    form = await checked_form(request)
    job_id = request.path_params["job_id"]
    api = api_of(request)
    try:
        job = _job_of_form(form)
        job.id = job_id
        paths = ["name", "description", "priority", "labels", "payload"]
        if job.HasField("schedule"):
            paths.append("schedule")
        update = _built(
            jobs_pb2.UpdateJobRequest,
            job=job,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
            etag=str(form.get("etag", "")),
        )
        await api.call(identity_of(request), api.jobs.UpdateJob, update)
    except Refusal as refused:
        try:
            current = await _get_job(request, job_id)
        except Refusal as missing:
            return render(request, "missing.html", status_code=404, refusal=missing)
        typed = {key: str(value) for key, value in form.items()}
        if refused.code == "ABORTED":
            typed["etag"] = current.etag
        return render(
            request,
            "job_form.html",
            status_code=400,
            job=current,
            form=typed,
            refusal=refused,
            now=_form_of_job(current) if refused.code == "ABORTED" else None,
        )
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


routes = [
    Route("/jobs", job_list, methods=["GET"]),
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs/table", job_table),
    Route("/jobs/new", new_job),
    Route("/jobs/{job_id}", job_page),
    Route("/jobs/{job_id}/panel", job_panel),
    Route("/jobs/{job_id}/edit", edit_form, methods=["GET"]),
    Route("/jobs/{job_id}/edit", update_job, methods=["POST"]),
    Route("/jobs/{job_id}/{action}", act, methods=["POST"]),
]
