"""The console over HTTP (no browser), in front of a real server: sign-in rules, CSRF,
refusals in words, the live parts' digests, and how things are said."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from jobtask.v1 import events_pb2, jobs_pb2, tasks_pb2
from starlette.requests import Request
from starlette.testclient import TestClient

from server.auth import AuthMode
from server.config import Settings
from server.console import words
from server.console.app import ConsoleSettings, create_app, is_loopback
from server.console.events import _resume_point, frame
from tests.console.conftest import address, identity
from tests.e2e.conftest import SECRET, ServerThread, mint

LOOPBACK = ("127.0.0.1", 50000)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def client_for(target: str, client: tuple[str, int] = LOOPBACK, **settings: Any) -> TestClient:
    """The console as a browser on ``client`` reaches it at http://127.0.0.1."""
    app = create_app(ConsoleSettings(server=target, development_identity=True, **settings))
    return TestClient(app, base_url="http://127.0.0.1", client=client, follow_redirects=False)


@pytest.fixture
def web(jobtask: ServerThread) -> Iterator[TestClient]:
    with client_for(address(jobtask)) as client:
        yield client


def sign_in(web: TestClient, actor: str, roles: str, tenant: str = "acme") -> None:
    token = csrf_of(web.get("/signin").text)
    answer = web.post(
        "/signin",
        data={"csrf": token, "actor": actor, "tenant": tenant, "roles": roles.split(","), "next": "/jobs"},
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/jobs"


class TestSignIn:
    def test_pages_need_an_identity_and_fragments_say_so(self, web: TestClient) -> None:
        page = web.get("/jobs?status=RUNNING&kind=k")
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Fjobs%3Fstatus%3DRUNNING%26kind%3Dk"
        form = web.get(page.headers["location"]).text
        assert 'name="next" value="/jobs?status=RUNNING&amp;kind=k"' in form
        fragment = web.get("/jobs/table", headers={"hx-request": "true"})
        assert (fragment.status_code, fragment.headers["hx-redirect"]) == (401, "/signin")
        assert web.get("/events/stream").status_code == 401

    def test_the_development_identity_is_offered_on_loopback_only(self, jobtask: ServerThread) -> None:
        with client_for(address(jobtask), client=("192.0.2.10", 50000)) as remote:
            page = remote.get("/signin").text
            assert 'name="token"' in page and 'name="actor"' not in page
            refused = remote.post("/signin", data={"csrf": csrf_of(page), "actor": "ann", "tenant": "acme"})
            assert refused.status_code == 400
            assert (
                "paste a token" in refused.text and "actor" not in refused.text.split("paste a token")[1][:40]
            )
            assert "identity" not in remote.cookies.get("jobtask_console", "")
        with client_for(address(jobtask)) as local:
            assert 'name="actor"' in local.get("/signin").text

    def test_a_form_without_the_session_token_is_refused(self, web: TestClient) -> None:
        sign_in(web, "olga", "operator")
        refused = web.post("/jobs", data={"name": "x", "kind": "k"})
        assert refused.status_code == 403
        assert "stale" in refused.text
        forged = web.post("/jobs", data={"name": "x", "kind": "k", "csrf": "forged"})
        assert forged.status_code == 403

    def test_an_identity_the_server_refuses_is_not_signed_in(self, web: TestClient) -> None:
        page = web.get("/signin").text
        refused = web.post("/signin", data={"csrf": csrf_of(page), "actor": "system:x", "tenant": "acme"})
        assert refused.status_code == 401
        assert "Unauthenticated" in refused.text and "actor id is not acceptable" in refused.text
        assert web.get("/jobs").status_code == 303

    def test_signing_out_forgets_the_identity(self, web: TestClient) -> None:
        sign_in(web, "olga", "operator")
        page = web.get("/jobs").text
        assert web.post("/signout", data={"csrf": csrf_of(page)}).status_code == 303
        assert web.get("/jobs").status_code == 303

    def test_a_next_page_elsewhere_is_not_followed(self, web: TestClient) -> None:
        page = web.get("/signin").text
        answer = web.post(
            "/signin",
            data={
                "csrf": csrf_of(page),
                "actor": "ann",
                "tenant": "acme",
                "roles": ["member"],
                "next": "//evil.test/",
            },
        )
        assert answer.headers["location"] == "/"


def test_a_pasted_token_signs_in_against_a_server_in_jwt_mode(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'jwt.db'}",
        auth_mode=AuthMode.JWT,
        jwt_secret=SECRET,
        log_format="text",
    )
    server = ServerThread(settings)
    server.start()
    try:
        with client_for(address(server)) as web:
            page = web.get("/signin").text
            malformed = web.post("/signin", data={"csrf": csrf_of(page), "token": "not-a-token"})
            assert malformed.status_code == 400 and "is not a JWT" in malformed.text
            forged = jwt.encode(
                {"sub": "ann", "tenant": "acme", "exp": 2_000_000_000}, "another-secret-0123456789abcdef-0123"
            )
            bad = web.post("/signin", data={"csrf": csrf_of(page), "token": forged})
            assert bad.status_code == 401 and "the token is not valid" in bad.text
            headers_only = web.post("/signin", data={"csrf": csrf_of(page), "actor": "ann", "tenant": "acme"})
            assert headers_only.status_code == 401  # the server takes no identity headers in JWT mode
            token = mint("ann", roles=("member",))
            wrapped = "Bearer " + "\n".join(token[i : i + 40] for i in range(0, len(token), 40))
            good = web.post(
                "/signin",
                data={"csrf": csrf_of(page), "token": wrapped},  # pasted across lines
            )
            assert good.status_code == 303
            listed = web.get("/jobs")
            assert listed.status_code == 200 and "ann @ acme · member" in listed.text
    finally:
        server.stop()


class TestJobs:
    def test_bad_input_is_shown_with_the_field_it_is_about(self, web: TestClient) -> None:
        sign_in(web, "olga", "operator")
        form = {"csrf": csrf_of(web.get("/jobs/new").text), "name": "n", "kind": "k"}
        bad_cron = web.post("/jobs", data={**form, "cron": "61 * * * *"})
        assert bad_cron.status_code == 400
        assert "Invalid argument" in bad_cron.text and "job.schedule.cron.expression" in bad_cron.text
        bad_payload = web.post("/jobs", data={**form, "payload": "[1, 2]"})
        assert bad_payload.status_code == 400 and "payload must be a JSON object" in bad_payload.text
        assert 'value="61 * * * *"' in bad_cron.text  # what was typed stays in the form

    def test_a_form_creates_once_whatever_the_clicks(self, web: TestClient, stubs: tuple[Any, Any]) -> None:
        sign_in(web, "olga", "operator")
        form_page = web.get("/jobs/new").text
        request_id = re.search(r'name="request_id" value="([^"]+)"', form_page)
        assert request_id is not None
        form = {"csrf": csrf_of(form_page), "name": "once", "kind": "k", "request_id": request_id.group(1)}
        first, second = web.post("/jobs", data=form), web.post("/jobs", data=form)
        assert first.headers["location"] == second.headers["location"]
        jobs, _ = stubs
        listed = jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=identity("olga", "operator")).jobs
        assert [j.name for j in listed] == ["once"]

    def test_another_members_job_is_not_found(self, web: TestClient, stubs: tuple[Any, Any]) -> None:
        jobs, _ = stubs
        theirs = jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="bob's", kind="k")),
            metadata=identity("bob", "member"),
        ).job
        sign_in(web, "ann", "member")
        page = web.get(f"/jobs/{theirs.id}")
        assert page.status_code == 404 and "Not found" in page.text
        assert "bob&#39;s" not in web.get("/jobs").text

    def test_an_action_answers_its_outcome_and_the_panel_reloads_only_when_changed(
        self, web: TestClient, stubs: tuple[Any, Any]
    ) -> None:
        jobs, _ = stubs
        job = jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="j", kind="k")),
            metadata=identity("ann", "member"),
        ).job
        sign_in(web, "olga", "operator")
        page = web.get(f"/jobs/{job.id}").text
        digest = re.search(r'id="panel" data-digest="([0-9a-f]+)"', page)
        assert digest is not None
        same = web.get(
            f"/jobs/{job.id}/panel", headers={"hx-request": "true", "x-seen-digest": digest.group(1)}
        )
        assert same.status_code == 204

        started = web.post(
            f"/jobs/{job.id}/start", data={"csrf": csrf_of(page)}, headers={"hx-request": "true"}
        )
        assert "the job is now RUNNING" in started.text and started.headers["hx-trigger"] == "changed"
        changed = web.get(
            f"/jobs/{job.id}/panel", headers={"hx-request": "true", "x-seen-digest": digest.group(1)}
        )
        assert changed.status_code == 200 and changed.headers["x-digest"] != digest.group(1)
        assert 'id="job-status">RUNNING' in changed.text

        again = web.post(
            f"/jobs/{job.id}/start", data={"csrf": csrf_of(page)}
        )  # without htmx: the whole page
        assert again.status_code == 200 and "<html" in again.text
        assert "Failed precondition" in again.text and "RUNNING" in again.text
        assert web.post(f"/jobs/{job.id}/explode", data={"csrf": csrf_of(page)}).status_code == 404

    def test_a_stale_etag_is_refused_in_words(self, web: TestClient, stubs: tuple[Any, Any]) -> None:
        jobs, _ = stubs
        job = jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="j", kind="k")),
            metadata=identity("olga", "operator"),
        ).job
        sign_in(web, "olga", "operator")
        edit = web.get(f"/jobs/{job.id}/edit").text
        jobs.UpdateJob(
            jobs_pb2.UpdateJobRequest(
                job=jobs_pb2.Job(id=job.id, priority=3), update_mask={"paths": ["priority"]}
            ),
            metadata=identity("olga", "operator"),
        )
        etag = re.search(r'name="etag" value="([^"]+)"', edit)
        assert etag is not None
        saved = web.post(
            f"/jobs/{job.id}/edit",
            data={
                "csrf": csrf_of(edit),
                "etag": etag.group(1),
                "name": "renamed",
                "priority": "1",
                "labels": "",
            },
        )
        assert saved.status_code == 400 and "Aborted" in saved.text
        fresh = web.get(f"/jobs/{job.id}/edit").text
        etag = re.search(r'name="etag" value="([^"]+)"', fresh)
        assert etag is not None
        data = {
            "csrf": csrf_of(fresh),
            "etag": etag.group(1),
            "name": "renamed",
            "priority": "1",
            "labels": "a=b",
        }
        assert web.post(f"/jobs/{job.id}/edit", data=data).status_code == 303
        assert "renamed" in web.get(f"/jobs/{job.id}").text

    def test_the_list_filters_and_pages(self, web: TestClient, stubs: tuple[Any, Any]) -> None:
        jobs, _ = stubs
        for n in range(12):
            jobs.CreateJob(
                jobs_pb2.CreateJobRequest(
                    job=jobs_pb2.Job(
                        name=f"job-{n:02}", kind="even" if n % 2 == 0 else "odd", labels={"n": str(n)}
                    )
                ),
                metadata=identity("olga", "operator"),
            )
        sign_in(web, "olga", "operator")
        first = web.get("/jobs?kind=even&page_size=10").text
        assert first.count("data-job-id=") == 6 and "job-01" not in first
        page = web.get("/jobs?page_size=10").text
        assert page.count("data-job-id=") == 10
        following = re.search(r'href="/jobs\?([^"]+)" rel="next"', page)
        assert following is not None
        rest = web.get("/jobs?" + following.group(1).replace("&amp;", "&")).text
        assert rest.count("data-job-id=") == 2 and "First page" in rest
        assert web.get("/jobs?label=n%3D3").text.count("data-job-id=") == 1
        assert web.get("/jobs?created_after=2000-01-01T00:00").text.count("data-job-id=") == 12
        assert web.get("/jobs?created_before=2000-01-01T00:00").text.count("data-job-id=") == 0
        bad = web.get("/jobs?created_after=yesterday").text
        assert "created_after is not a date and time" in bad


def test_the_overview_counts_by_status(web: TestClient, stubs: tuple[Any, Any]) -> None:
    jobs, _ = stubs
    operator = identity("olga", "operator")
    for _ in range(2):
        job = jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="j", kind="k")), metadata=operator
        ).job
        jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=operator)
        jobs.FailJob(jobs_pb2.FailJobRequest(id=job.id, error="no", permanent=True), metadata=operator)
    sign_in(web, "olga", "operator")
    page = web.get("/overview").text
    assert re.search(r'data-status="FAILED">2<', page)
    assert 'id="failure-rate">100.0%' in page
    assert page.count('class="failed"') == 1  # one stacked bar segment, in the current minute


def test_the_task_tree_nests_subtasks(web: TestClient) -> None:
    sign_in(web, "ann", "member")
    page = web.get("/tasks").text
    made = web.post("/tasks", data={"csrf": csrf_of(page), "title": "Parent", "priority": "HIGH"})
    parent = made.headers["location"]
    for title in ("Child A", "Child B"):
        web.post(
            f"{parent}/subtask", data={"csrf": csrf_of(page), "title": title}, headers={"hx-request": "true"}
        )
    tree = web.get("/tasks").text
    assert re.search(r"Parent</a>.*?<ul>.*?Child A.*?Child B", tree, re.S)
    refused = web.post(f"{parent}/complete", data={"csrf": csrf_of(page)}, headers={"hx-request": "true"})
    assert "2 open subtask(s)" in refused.text and "Child A" in refused.text and "Child B" in refused.text
    blank = web.post("/tasks", data={"csrf": csrf_of(page), "title": ""})
    assert blank.status_code == 400, (blank.headers, blank.text[:300])
    assert "task.title" in blank.text


class TestWords:
    def test_durations(self) -> None:
        assert words.duration(timedelta(milliseconds=4.4)) == "4 ms"
        assert words.duration(timedelta(seconds=2.5)) == "2.50 s"
        assert words.duration(timedelta(seconds=3)) == "3 s"
        assert words.duration(timedelta(seconds=42)) == "42 s"
        assert words.duration(timedelta(minutes=3, seconds=4)) == "3 min 4 s"
        assert words.duration(timedelta(hours=1, minutes=2)) == "1 h 2 min"
        assert words.duration(timedelta(days=3, hours=1)) == "3 days 1 h"
        assert words.duration(None) == "—"

    def test_schedules(self) -> None:
        assert words.schedule(jobs_pb2.Job()) == "no schedule: runs when started"
        every = jobs_pb2.Job(schedule=jobs_pb2.Schedule(interval=duration_pb2.Duration(seconds=300)))
        assert words.schedule(every) == "every 5 min"
        once = jobs_pb2.Job(schedule=jobs_pb2.Schedule(run_at=timestamp_pb2.Timestamp(seconds=1_900_000_000)))
        assert words.schedule(once) == "once, at 2030-03-17 17:46:40 UTC"
        cron = jobs_pb2.Job(
            schedule=jobs_pb2.Schedule(
                cron=jobs_pb2.CronSchedule(expression="0 9 * * 1-5", time_zone="Asia/Tokyo")
            ),
            next_run_at=timestamp_pb2.Timestamp(seconds=1_900_000_000),
        )
        assert words.schedule(cron) == "At 09:00, Monday through Friday (Asia/Tokyo; cron “0 9 * * 1-5”)"
        assert words.next_run(cron) == "2030-03-18 02:46:40 JST (2030-03-17 17:46:40 UTC)"

    def test_event_summaries(self) -> None:
        moved = events_pb2.Event(
            job_status_event=events_pb2.JobStatusEvent(
                old_status=jobs_pb2.JOB_STATUS_PENDING,
                new_status=jobs_pb2.JOB_STATUS_RUNNING,
                reason="claimed by w",
            )
        )
        assert words.event_summary(moved) == "PENDING → RUNNING (claimed by w)"
        failed = events_pb2.Event(job_error_event=events_pb2.JobErrorEvent(error="boom", will_retry=True))
        assert words.event_summary(failed) == "boom (will retry)"
        assigned = events_pb2.Event(task_assign_event=events_pb2.TaskAssignEvent(new_assignee="bob"))
        assert words.event_summary(assigned) == "— → bob"
        assert words.event_summary(events_pb2.Event()) == ""


def test_frames_and_resume_points() -> None:
    assert (
        frame("job", "<tr>\n<td>1</td></tr>", 7) == "event: job\nid: 7\ndata: <tr>\ndata: <td>1</td></tr>\n\n"
    )
    assert frame("status", "live") == "event: status\ndata: live\n\n"

    def request(query: str, last: str | None = None) -> Request:
        headers = [(b"last-event-id", last.encode())] if last is not None else []
        return Request({"type": "http", "query_string": query.encode(), "headers": headers})

    assert _resume_point(request("after=5")) == 5
    assert _resume_point(request("after=5", last="9")) == 9  # the browser's reconnect wins
    assert _resume_point(request("after=x")) is None
    assert _resume_point(request("")) is None
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "10.0.0.1", "", None)] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


class TestHardening:
    def test_a_request_for_another_host_name_is_refused(self, jobtask: ServerThread) -> None:
        app = create_app(ConsoleSettings(server=address(jobtask), development_identity=True))
        with TestClient(app, base_url="http://rebound.example:8080", client=LOOPBACK) as rebound:
            assert rebound.get("/signin").status_code == 400
        with TestClient(app, base_url="http://localhost:8080", client=LOOPBACK) as local:
            assert local.get("/signin").status_code == 200

    def test_every_answer_carries_the_security_headers(self, web: TestClient) -> None:
        page = web.get("/signin")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (page.headers["x-content-type-options"], page.headers["cache-control"]) == (
            "nosniff",
            "no-store",
        )
        script = web.get("/static/console.js")
        assert script.status_code == 200 and "cache-control" not in script.headers

    def test_signing_out_ends_the_session_for_a_copy_of_the_cookie_too(self, web: TestClient) -> None:
        sign_in(web, "ann", "member")
        copy = dict(web.cookies)
        page = web.get("/jobs").text
        assert web.get("/session").status_code == 204
        web.post("/signout", data={"csrf": csrf_of(page)})
        web.cookies.clear()
        web.cookies.update(copy)
        assert web.get("/jobs").status_code == 303
        assert web.get("/session").status_code == 401

    def test_the_cookie_does_not_show_the_token(self, jobtask: ServerThread) -> None:
        with client_for(address(jobtask)) as web:
            sign_in(web, "ann", "member")
            cookie = web.cookies["jobtask_console"]
        decoded = base64.b64decode(cookie.split(".")[0] + "==").decode(errors="replace")
        assert "ann" not in decoded and "acme" not in decoded

    @pytest.mark.parametrize(
        ("fields", "words"),
        [
            ({"actor": "Jürgen", "tenant": "acme"}, "actor"),
            ({"actor": "a\r\nb", "tenant": "acme"}, "actor"),
            ({"actor": "ann", "tenant": "ac me"}, "tenant"),
        ],
    )
    def test_an_identity_that_cannot_be_sent_is_refused_in_words(
        self, web: TestClient, fields: dict[str, str], words: str
    ) -> None:
        page = web.get("/signin").text
        refused = web.post("/signin", data={"csrf": csrf_of(page), **fields})
        assert refused.status_code == 400
        assert "this identity cannot be sent" in refused.text and f"<code>{words}</code>" in refused.text

    def test_input_that_cannot_be_sent_is_refused_not_an_error(self, web: TestClient) -> None:
        sign_in(web, "olga", "operator")
        form = {"csrf": csrf_of(web.get("/jobs/new").text), "name": "n", "kind": "k"}
        for payload in ('{"a":' + "[" * 5000 + "]" * 5000 + "}", '{"a":' + "[" * 200 + "]" * 200 + "}"):
            deep = web.post("/jobs", data={**form, "payload": payload})
            assert deep.status_code == 400, deep.text[:200]
            assert "Invalid argument" in deep.text
        huge = web.post("/jobs", data={**form, "priority": "99999999999"})
        assert huge.status_code == 400 and "between -2147483648 and 2147483647" in huge.text
        missing = web.post(f"/jobs/{uuid.uuid4()}/edit", data={**form, "etag": "1"})
        assert missing.status_code == 404 and "Not found" in missing.text

    def test_a_stale_edit_can_be_saved_once_seen(self, web: TestClient, stubs: tuple[Any, Any]) -> None:
        jobs, _ = stubs
        job = jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="j", kind="k")),
            metadata=identity("olga", "operator"),
        ).job
        sign_in(web, "olga", "operator")
        edit = web.get(f"/jobs/{job.id}/edit").text
        jobs.UpdateJob(
            jobs_pb2.UpdateJobRequest(
                job=jobs_pb2.Job(id=job.id, name="theirs"), update_mask={"paths": ["name"]}
            ),
            metadata=identity("olga", "operator"),
        )
        etag = re.search(r'name="etag" value="([^"]+)"', edit)
        assert etag is not None
        mine = {"csrf": csrf_of(edit), "etag": etag.group(1), "name": "mine", "priority": "0", "labels": ""}
        refused = web.post(f"/jobs/{job.id}/edit", data=mine)
        assert refused.status_code == 400 and "Aborted" in refused.text
        assert 'value="mine"' in refused.text and "<pre>theirs</pre>" in refused.text
        current = re.search(r'name="etag" value="([^"]+)"', refused.text)
        assert current is not None and current.group(1) != etag.group(1)
        assert web.post(f"/jobs/{job.id}/edit", data={**mine, "etag": current.group(1)}).status_code == 303
        assert "<h1>mine" in web.get(f"/jobs/{job.id}").text

    def test_a_refused_live_part_carries_a_digest_so_it_is_reloaded_later(self, web: TestClient) -> None:
        sign_in(web, "olga", "operator")
        refused = web.get(f"/jobs/{uuid.uuid4()}/panel", headers={"hx-request": "true", "x-seen-digest": "x"})
        assert refused.status_code == 200 and "Not found" in refused.text
        assert refused.headers["x-digest"]

    def test_a_subtask_listed_without_its_parent_says_so(
        self, web: TestClient, stubs: tuple[Any, Any]
    ) -> None:
        _, tasks = stubs
        ann = identity("ann", "member")
        parent = tasks.CreateTask(
            tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="Parent")), metadata=ann
        ).task
        tasks.CreateSubtask(
            tasks_pb2.CreateSubtaskRequest(
                parent_id=parent.id, task=tasks_pb2.Task(title="Child", assignee="bob")
            ),
            metadata=ann,
        )
        sign_in(web, "ann", "member")
        everything = web.get("/tasks").text
        assert "Child" in everything and "subtask of another task" not in everything
        bobs = web.get("/tasks?assignee=bob").text  # the parent is not bob's: the child stands alone
        assert "Child" in bobs and "Parent" not in bobs
        assert f'href="/tasks/{parent.id}">subtask of another task</a>' in bobs


def test_the_console_command_refuses_a_development_identity_off_loopback() -> None:
    from click.testing import CliRunner

    from server.cli.main import cli

    refused = CliRunner().invoke(cli, ["console", "--listen", "0.0.0.0:8080", "--development-identity"])
    assert refused.exit_code == 2 and "only by a console listening on loopback" in refused.output
    bad = CliRunner().invoke(cli, ["console", "--listen", "8080"])
    assert bad.exit_code == 2 and "is not host:port" in bad.output
