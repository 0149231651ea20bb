"""The console in a real headless Chromium: what an operator and a member see and do."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc, tasks_pb2
from playwright.sync_api import expect

from server.config import Settings
from tests.console.conftest import address, identity, screenshot, sign_in
from tests.e2e.conftest import ServerThread

OPERATOR = ("olga", ("operator",))
MEMBER = ("ann", ("member",))


def row(page: Any, job_id: str) -> Any:
    return page.locator(f"tr[data-job-id='{job_id}']")


def test_a_job_created_started_and_completed_through_the_console(
    page: Any, console: str, stubs: tuple[Any, Any]
) -> None:
    jobs, _ = stubs
    page.goto(console + "/overview")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Foverview$"))
    screenshot(page, "signin")
    sign_in(page, console, *OPERATOR)

    # Create a job with the form; its page says the schedule in words, in its zone.
    page.click("text=Jobs")
    page.click("text=New job")
    page.fill("#name", "nightly report")
    page.fill("#kind", "report.build")
    page.fill("#labels", "team=data, tier=1")
    page.fill("#payload", '{"day": "2030-01-01"}')
    page.fill("#cron", "30 2 * * *")
    page.fill("#time_zone", "Europe/Berlin")
    screenshot(page, "job-new")
    page.click("text=Create job")
    expect(page.locator("#job-status")).to_have_text("SCHEDULED")
    expect(page.locator("#schedule")).to_contain_text("At 02:30")
    expect(page.locator("#schedule")).to_contain_text("Europe/Berlin")

    # The list shows a job another client creates, within a second, without a reload.
    page.click("text=Jobs")
    expect(page.locator("table.list")).to_contain_text("nightly report")
    member_id, member_roles = MEMBER
    made = time.monotonic()
    created = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="from another client", kind="report.build")),
        metadata=identity(member_id, ",".join(member_roles)),
    ).job
    expect(row(page, created.id)).to_contain_text("PENDING", timeout=1_000)
    appeared = time.monotonic() - made
    assert appeared < 1.0, appeared
    screenshot(page, "jobs")

    # Start it and complete it from its page; the run appears on the timeline.
    row(page, created.id).get_by_role("link").click()
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#outcome")).to_contain_text("the job is now RUNNING")
    expect(page.locator("#job-status")).to_have_text("RUNNING")
    page.get_by_label("message for complete").fill("42 rows")
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#job-status")).to_have_text("SUCCEEDED")
    run = page.locator("li.run[data-attempt='1']")
    expect(run).to_contain_text("SUCCEEDED")
    expect(run).to_contain_text("42 rows")
    expect(run).to_contain_text("by olga")
    screenshot(page, "job")
    # The other client sees what the console did.
    assert jobs.GetJob(
        jobs_pb2.GetJobRequest(id=created.id), metadata=identity("olga", "operator")
    ).job.status == (jobs_pb2.JOB_STATUS_SUCCEEDED)

    # The overview counts it.
    page.click("text=Overview")
    expect(page.locator("[data-status=SUCCEEDED]")).to_have_text("1")
    expect(page.locator("#failure-rate")).to_have_text("0.0%")
    screenshot(page, "overview")


def test_an_action_the_actor_may_not_take_is_refused_in_words(
    page: Any, console: str, stubs: tuple[Any, Any]
) -> None:
    """A member may not start a job: the console offers the action marked so, and shows the
    server's refusal in words when it is tried."""
    jobs, _ = stubs
    operators = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="olga's job", kind="report.build")),
        metadata=identity("olga", "operator"),
    ).job
    member = page
    sign_in(member, console, *MEMBER)
    other = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="ann's job", kind="report.build")),
        metadata=identity("ann", "member"),
    ).job
    member.goto(f"{console}/jobs/{other.id}")
    start = member.locator("form.action.not-allowed").get_by_role("button", name="Start")
    expect(start).to_have_attribute("title", re.compile("do not allow"))
    start.click()
    refusal = member.locator("#outcome .refusal")
    expect(refusal).to_contain_text("Permission denied")
    expect(refusal).to_contain_text("start")
    expect(member.locator("#job-status")).to_have_text("PENDING")
    screenshot(member, "job-refused")
    # A job of the operator's is not the member's to see.
    member.goto(f"{console}/jobs/{operators.id}")
    expect(member.locator(".refusal")).to_contain_text("Not found")


def test_a_task_tree_followed_and_completed_from_the_leaves_up(page: Any, console: str) -> None:
    sign_in(page, console, *MEMBER)
    page.click("text=Tasks")
    page.fill("#title", "Release 2.0")
    page.get_by_role("button", name="Create task").click()
    expect(page.locator("#task-status")).to_have_text("OPEN")
    parent_url = page.url

    for title in ("Write the notes", "Tag the build"):
        page.fill("#subtask-title-input", title)
        page.get_by_role("button", name="Create subtask").click()
        expect(page.locator("#outcome")).to_contain_text(f"Subtask “{title}” created")
        expect(page.locator("ul.tree")).to_contain_text(title)
    page.locator("ul.tree").get_by_role("link", name="Write the notes").click()
    page.fill("#subtask-title-input", "Proofread")
    page.get_by_role("button", name="Create subtask").click()
    expect(page.locator("ul.tree")).to_contain_text("Proofread")

    # The tree page nests them: Proofread under Write the notes under Release 2.0.
    page.click("text=Tasks")
    nested = page.locator("ul.tree > li", has_text="Release 2.0").locator("ul li", has_text="Write the notes")
    expect(nested.locator("ul li", has_text="Proofread")).to_be_visible()
    screenshot(page, "tasks")

    # Completing the parent with open children is refused, and the children are named.
    page.goto(parent_url)
    page.get_by_role("button", name="Complete").click()
    refusal = page.locator("#outcome .refusal")
    expect(refusal).to_contain_text("Failed precondition")
    expect(refusal).to_contain_text("3 open subtask(s)")
    for title in ("Write the notes", "Tag the build", "Proofread"):
        expect(refusal.get_by_role("link", name=title)).to_be_visible()
    screenshot(page, "task-refused")

    # From the leaves up, through the links of the refusal and the tree.
    for title in ("Proofread", "Write the notes", "Tag the build"):
        page.goto(parent_url)
        page.locator("ul.tree").get_by_role("link", name=title).click()
        page.get_by_role("button", name="Complete").click()
        expect(page.locator("#task-status")).to_have_text("COMPLETED")
    page.goto(parent_url)
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#task-status")).to_have_text("COMPLETED")
    expect(page.locator("ul.tree li .status")).to_have_text(["COMPLETED"] * 3)
    screenshot(page, "task")


def test_the_event_feed_survives_a_server_restart_without_losing_or_repeating(
    page: Any, header_settings: Settings, console_for: Callable[[str], str], tmp_path: Path
) -> None:
    first = ServerThread(header_settings)
    first.start()
    target = address(first)
    console = console_for(target)
    operator = identity("olga", "operator")

    def create(channel_target: str, name: str) -> None:
        with grpc.insecure_channel(channel_target) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job = stub.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=name, kind="k")), metadata=operator
            ).job
            stub.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=operator)

    sign_in(page, console, *OPERATOR)
    page.goto(console + "/events")
    expect(page.locator("#stream-status")).to_have_text("live")
    create(target, "before the restart")  # created, started, status_changed: 1-3
    feed = page.locator("#feed tr")
    expect(feed).to_have_count(3)

    first.stop()
    expect(page.locator("#stream-status")).to_have_text(re.compile("reconnecting"))
    second = ServerThread(header_settings)
    try:
        second.start(target)
        create(target, "after the restart")  # 4-6
        expect(feed).to_have_count(6, timeout=10_000)
        expect(page.locator("#stream-status")).to_have_text("live")
        sequences = [
            int(s) for s in page.locator("#feed tr").evaluate_all("rows => rows.map(r => r.dataset.sequence)")
        ]
        assert sorted(sequences) == [1, 2, 3, 4, 5, 6]
        screenshot(page, "events")

        # A filtered feed resumed from a sequence shows only what follows it.
        page.goto(console + "/events?type=job.started&after=1")
        expect(feed).to_have_count(2)
        assert feed.evaluate_all("rows => rows.map(r => r.dataset.type)") == ["job.started", "job.started"]
    finally:
        second.stop()


def test_a_task_created_elsewhere_appears_in_the_tree(
    page: Any, console: str, stubs: tuple[Any, Any]
) -> None:
    _, tasks = stubs
    sign_in(page, console, *MEMBER)
    page.goto(console + "/tasks")
    made = tasks.CreateTask(
        tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="From the API")),
        metadata=identity("ann", "member"),
    ).task
    expect(page.locator(f"li[data-task-id='{made.id}']")).to_contain_text("From the API", timeout=1_000)


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map(el => el.outerHTML)"""


def test_every_control_has_a_name_and_the_keyboard_reaches_the_actions(
    page: Any, console: str, stubs: tuple[Any, Any]
) -> None:
    jobs, tasks = stubs
    job = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="keyboard", kind="k")),
        metadata=identity("olga", "operator"),
    ).job
    task = tasks.CreateTask(
        tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="keys")), metadata=identity("olga", "operator")
    ).task
    page.goto(console + "/signin")
    assert page.evaluate(UNLABELLED) == []
    sign_in(page, console, *OPERATOR)
    for path in (
        "/overview",
        "/jobs",
        "/jobs/new",
        f"/jobs/{job.id}",
        f"/jobs/{job.id}/edit",
        "/tasks",
        f"/tasks/{task.id}",
        "/events",
    ):
        page.goto(console + path)
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, path

    # From the top of a job's page, the keyboard alone starts it.
    page.goto(f"{console}/jobs/{job.id}")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Start":
            break
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("RUNNING")
