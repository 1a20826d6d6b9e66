"""The web editor (editor/, built into config_manager/static) end to end in headless Chromium.

Real parts only: the manager over HTTP, mosquitto, a ConfigLibrary subscriber of the
service, Debian's /usr/bin/chromium driven by Playwright (never ``playwright install``).
Screenshots of each main view go to tests/artifacts/editor/; on a failure every open page
is saved there too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from mgr_harness import RunningManager, put
from mgr_models import DemoConfig
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from config_lib import ConfigLibrary, LibrarySettings, SigningKey, applied_topic, sign_report
from config_manager.tokens import Role, create_token_sync

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "editor"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000

pytestmark = pytest.mark.timeout(60)
# One browser for the module (launching Chromium costs seconds): the tests and their async
# fixtures run on the module's event loop; each test gets browser contexts of its own.
module_loop = pytest.mark.asyncio(loop_scope="module")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (make test does it)")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    # launch() gives the browser a fresh temporary profile (it refuses --user-data-dir)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pages(
    browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """Open pages, each in a context of its own unless one is given; screenshots on failure.

    Pages talk to ``on`` (a manager the test started) or else to the ``manager`` fixture."""
    opened: list[Page] = []
    contexts: list[BrowserContext] = []
    expect.set_options(timeout=WAIT_MS)  # the machine is shared: 5 s (the default) is tight

    async def open_page(
        *,
        context: BrowserContext | None = None,
        width: int = 1280,
        height: int = 860,
        on: RunningManager | None = None,
    ) -> Page:
        target = on or request.getfixturevalue("manager")
        ctx = context
        if ctx is None:
            ctx = await browser.new_context(
                viewport={"width": width, "height": height}, base_url=target.base_url
            )
            contexts.append(ctx)
        page = await ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        opened.append(page)
        return page

    yield open_page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for i, page in enumerate(opened):
            if not page.is_closed():
                await page.screenshot(path=ARTIFACTS / f"FAILED-{request.node.name}-{i}.png")
    for ctx in contexts:
        await ctx.close()


async def shot(page: Page, name: str) -> None:
    """A screenshot of a main view, kept for the release notes."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


async def login(page: Page, token: str) -> None:
    await page.goto("/")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def open_service(page: Page, service: str) -> None:
    await page.locator(f"button[data-service='{service}']").click()
    await expect(page.get_by_role("heading", name=service)).to_be_visible()


async def stored_doc(manager: RunningManager, service: str) -> dict[str, Any]:
    async with manager.client() as http:
        resp = await http.get(f"/api/v1/configs/{service}")
        assert resp.status_code == 200
        doc: dict[str, Any] = resp.json()
        return doc


async def stored(manager: RunningManager, service: str) -> dict[str, Any]:
    async with manager.client() as http:
        resp = await http.get(f"/api/v1/configs/{service}")
        assert resp.status_code == 200
        values: dict[str, Any] = resp.json()["values"]
        return values


@pytest_asyncio.fixture(loop_scope="module")
async def subscriber(
    broker: Any, keys: Any, service_name: str, tmp_path: Path
) -> AsyncIterator[ConfigLibrary[DemoConfig]]:
    """A real ConfigLibrary instance of the service (it sends the applied reports)."""
    settings = LibrarySettings(
        data_dir=tmp_path / "lib",
        lkg_dir=tmp_path / "lkg",
        mqtt_url=None,
        instance_id="e2e-1",
        initial_wait=5.0,
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.5,
        connect_timeout=3.0,
    )
    async with AsyncExitStack() as stack:
        lib = await stack.enter_async_context(
            ConfigLibrary(
                service=service_name,
                model=DemoConfig,
                settings=settings,
                trust=keys.trust,
                data_keys=[keys.data_key(service_name)],
                endpoint=broker.endpoint(service_name),
            )
        )
        yield lib


@module_loop
async def test_login_edit_save_shows_the_applied_badge(
    manager: RunningManager,
    subscriber: ConfigLibrary[DemoConfig],
    service_name: str,
    pages: Callable[..., Awaitable[Page]],
) -> None:
    page = await pages()
    await page.goto("/")
    await expect(page.get_by_text("Enter an API token to continue")).to_be_visible()
    await shot(page, "01-login")
    await login(page, manager.tokens["editor"])
    await expect(page.get_by_text("manager: ready")).to_be_visible()
    await expect(page.get_by_text("broker: connected")).to_be_visible()

    # search narrows the list
    await page.get_by_label("Search services").fill("no-such-service")
    await expect(page.get_by_text("No service matches.")).to_be_visible()
    await page.get_by_label("Search services").fill(service_name[:6])
    await open_service(page, service_name)

    rate = page.get_by_label("Rate", exact=True)
    # validation as you type, from the same JSON Schema (ajv): the typed text is kept
    await rate.fill("12")
    await expect(page.locator("#f-rate-err")).to_have_text("must be >= 8000")
    save = page.get_by_role("button", name="Save as version 1")
    await expect(save).to_be_disabled()
    await rate.fill("22050")
    await expect(page.locator("#f-rate-err")).to_have_count(0)
    # the secret stays masked unless replaced
    await expect(page.get_by_label("Api Key")).to_have_value("stored (hidden)")
    await shot(page, "02-editor")
    await save.click()
    await expect(page.get_by_text("Saved " + service_name + " version 1")).to_be_visible()

    # the real subscriber applies it, and its report moves the badge to 1/1
    applied = await subscriber.wait_for_version(1, timeout=15)
    assert applied.rate == 22050
    assert applied.api_key.get_secret_value() == "default-api-key-0000"  # kept, not "****"
    badge = page.locator(f"[data-badge='{service_name}']")
    await expect(badge).to_have_text("1/1 applied")
    await expect(page.locator(f"button[data-service='{service_name}']")).to_contain_text("v1")
    await page.get_by_role("tab", name="Instances (1)").click()
    await expect(page.get_by_role("cell", name="e2e-1")).to_be_visible()
    await shot(page, "03-instances")
    await page.get_by_role("tab", name="History").click()
    entry = page.locator("ol.timeline li[data-version='1']")
    await expect(entry).to_contain_text("by editor-token")
    await expect(entry.locator("tbody tr").filter(has_text="rate")).to_contain_text("22050")
    await shot(page, "04-history")


@module_loop
async def test_conflict_from_two_browsers_merges_both_edits(
    manager: RunningManager, service_name: str, pages: Callable[..., Awaitable[Page]]
) -> None:
    alice, bob = await pages(), await pages()
    # bob gets no live events: his form learns of alice's version from the 412 of his save
    await bob.route("**/api/v1/events", lambda route: route.abort())
    for page in (alice, bob):
        await login(page, manager.tokens["editor"])
        await open_service(page, service_name)

    # both start from version 0; alice changes the label and the threshold and saves first
    await alice.get_by_label("Label", exact=True).fill("from-alice")
    await alice.get_by_label("Threshold").fill("0.7")
    await alice.get_by_role("button", name="Save as version 1").click()
    await expect(alice.get_by_text(f"Saved {service_name} version 1")).to_be_visible()

    # bob, still on version 0, changes the rate and (a conflict) the threshold
    await bob.get_by_label("Rate", exact=True).fill("44100")
    await bob.get_by_label("Threshold").fill("0.9")
    await bob.get_by_role("button", name="Save as version 1").click()
    merge = bob.locator("section.merge")
    await expect(merge).to_contain_text("Version 1 was saved while you edited")
    await expect(merge).to_contain_text("label")  # their change, rebased into bob's form
    await expect(merge.get_by_role("rowheader", name="nested.threshold")).to_be_visible()
    # nothing bob typed was lost, and alice's label is in his form now
    await expect(bob.get_by_label("Rate", exact=True)).to_have_value("44100")
    await expect(bob.get_by_label("Threshold")).to_have_value("0.9")
    await expect(bob.get_by_label("Label", exact=True)).to_have_value("from-alice")
    await shot(bob, "05-merge")
    # bob takes alice's threshold for the one conflict, then saves on top of version 1
    await merge.get_by_role("radio", name="0.7").check()
    await expect(bob.get_by_label("Threshold")).to_have_value("0.7")
    await bob.get_by_role("button", name="Save as version 2").click()
    await expect(bob.get_by_text(f"Saved {service_name} version 2")).to_be_visible()

    values = await stored(manager, service_name)
    assert values["label"] == "from-alice"
    assert values["rate"] == 44100
    assert values["nested"] == {"threshold": 0.7}


@module_loop
async def test_live_updates_reach_an_open_form_and_the_badges(
    manager: RunningManager,
    subscriber: ConfigLibrary[DemoConfig],
    service_name: str,
    pages: Callable[..., Awaitable[Page]],
) -> None:
    watcher, writer = await pages(), await pages()
    for page in (watcher, writer):
        await login(page, manager.tokens["editor"])
        await open_service(page, service_name)
    await expect(watcher.locator(".live")).to_have_text("live")

    # an untouched form takes the new version as it is stored, and the badge follows
    await writer.get_by_label("Label", exact=True).fill("first")
    await writer.get_by_role("button", name="Save as version 1").click()
    await expect(watcher.get_by_label("Label", exact=True)).to_have_value("first")
    await expect(watcher.get_by_text("version 1 · epoch")).to_be_visible()
    await subscriber.wait_for_version(1, timeout=15)
    await expect(watcher.locator(f"[data-badge='{service_name}']")).to_have_text("1/1 applied")

    # a form with unsaved edits gets the new version merged in, the edits kept
    await watcher.get_by_label("Rate", exact=True).fill("32000")
    await writer.get_by_label("Label", exact=True).fill("second")
    await writer.get_by_role("button", name="Save as version 2").click()
    merge = watcher.locator("section.merge")
    await expect(merge).to_contain_text("Version 2 was saved while you edited")
    await expect(watcher.get_by_label("Label", exact=True)).to_have_value("second")
    await expect(watcher.get_by_label("Rate", exact=True)).to_have_value("32000")
    await shot(watcher, "09-live-merge")
    await watcher.get_by_role("button", name="Save as version 3").click()
    await expect(watcher.get_by_text(f"Saved {service_name} version 3")).to_be_visible()
    values = await stored(manager, service_name)
    assert (values["label"], values["rate"]) == ("second", 32000)


async def _two_versions(manager: RunningManager, service: str) -> None:
    """Version 1 (rate 22050, label one) then version 2 (rate 44100, label two)."""
    async with manager.client("editor") as http:
        first = await put(http, service, {"rate": 22050, "label": "one"}, 0)
        assert first.status_code == 200, first.text
        second = await put(http, service, {"rate": 44100, "label": "two"}, first.json()["etag"])
        assert second.status_code == 200, second.text


@module_loop
async def test_viewer_cannot_save_or_restore(
    manager: RunningManager, service_name: str, pages: Callable[..., Awaitable[Page]]
) -> None:
    await _two_versions(manager, service_name)
    page = await pages()
    await login(page, manager.tokens["viewer"])
    await expect(page.locator(".who .tag")).to_have_text("viewer")
    await open_service(page, service_name)
    await expect(page.get_by_text("Read only: your token (viewer)")).to_be_visible()
    await expect(page.get_by_label("Rate", exact=True)).to_be_disabled()
    await expect(page.get_by_role("button", name="Save as version 3")).to_have_count(0)
    await expect(page.get_by_role("button", name="Replace")).to_have_count(0)
    await expect(page.get_by_role("button", name="Apply", exact=False)).to_have_count(0)
    await expect(page.locator(f"[data-readonly='{service_name}']")).to_have_text("read only")
    await shot(page, "06-viewer")
    await page.get_by_role("tab", name="History").click()
    await expect(page.locator("ol.timeline li")).to_have_count(2)
    await expect(page.get_by_role("button", name="Restore", exact=False)).to_have_count(0)


@module_loop
async def test_history_diffs_restore_with_confirmation_and_the_audit_view(
    manager: RunningManager, service_name: str, pages: Callable[..., Awaitable[Page]]
) -> None:
    await _two_versions(manager, service_name)
    async with manager.client("editor") as http:  # a stale write: refused (412), audited
        assert (await put(http, service_name, {"rate": 9000}, 1)).status_code == 412
    page = await pages()
    await login(page, manager.tokens["editor"])
    await open_service(page, service_name)
    await page.get_by_role("tab", name="History").click()

    # each version: who, and its diff from the version before it (the diff API)
    latest = page.locator("ol.timeline li[data-version='2']")
    await expect(latest).to_contain_text("by editor-token")
    await expect(latest).to_contain_text("current")
    rate = latest.get_by_role("table", name="changes of version 2").locator("tbody tr")
    await expect(rate.filter(has_text="rate")).to_contain_text("22050")
    await expect(rate.filter(has_text="rate")).to_contain_text("44100")
    await expect(latest.get_by_role("button", name="Restore", exact=False)).to_have_count(0)
    await shot(page, "10-history-diffs")

    # restore asks first, showing what the restore changes; Escape cancels it
    await page.get_by_role("button", name="Restore version 1").click()
    dialog = page.get_by_role("dialog", name=f"Restore {service_name} version 1?")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    await page.get_by_role("button", name="Restore version 1").click()
    label = dialog.get_by_role("table").locator("tbody tr").filter(has_text="label")
    await expect(label).to_contain_text("two")
    await expect(label).to_contain_text("one")
    await shot(page, "11-restore-confirm")
    await dialog.get_by_role("button", name="Confirm restore").click()
    restored = page.get_by_text(f"Restored {service_name} version 1 as version 3")
    await expect(restored).to_be_visible()
    await expect(page.locator("ol.timeline li[data-version='3']")).to_contain_text("current")
    await expect(page.get_by_text("version 3 · epoch")).to_be_visible()
    values = await stored(manager, service_name)
    assert (values["rate"], values["label"]) == (22050, "one")

    # the audit view, filtered by action, then by outcome
    await page.get_by_role("button", name="Audit log").click()
    audit = page.get_by_role("table", name="audit entries")
    await expect(audit.locator("tbody tr[data-audit]").first).to_be_visible()
    await page.get_by_label("Action", exact=True).fill("rollback")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(audit.locator("tbody tr[data-audit]")).to_have_count(1)
    await expect(audit.locator("tbody tr[data-audit]")).to_contain_text("editor-token")
    await page.get_by_label("Action", exact=True).fill("")
    await page.get_by_label("Outcome", exact=True).select_option("refused")
    await page.get_by_label("Service", exact=True).select_option(service_name)
    await page.get_by_role("button", name="Apply filters").click()
    refused = audit.locator("tbody tr[data-audit]")
    await expect(refused).to_have_count(1)
    await expect(refused).to_contain_text("412")
    await shot(page, "12-audit")
    # back to the form: the view kept its state
    await page.get_by_role("button", name="Configuration").click()
    await expect(page.get_by_role("heading", name=service_name)).to_be_visible()


@module_loop
async def test_scoped_token_edits_only_its_services_and_badges_show_freshness(
    manager_factory: Callable[..., RunningManager],
    broker: Any,
    service_name: str,
    pages: Callable[..., Awaitable[Page]],
) -> None:
    import aiomqtt

    other = f"{service_name}-b"
    manager = manager_factory(
        mqtt_url=broker.url("manager"), models={service_name: DemoConfig, other: DemoConfig}
    )
    scoped = create_token_sync(
        manager.settings.db_file, "scoped-token", Role.editor, services=[service_name]
    )
    page = await pages(on=manager)
    # a token scoped to one service: the other is neither listed nor reachable by its URL
    await page.goto(f"/#service={other}")
    await page.get_by_label("API token").fill(scoped)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Forbidden")
    await expect(page.get_by_role("button", name="Save as version 1")).to_have_count(0)
    await expect(page.locator(f"button[data-service='{other}']")).to_have_count(0)
    await expect(page.get_by_role("button", name="Preview", exact=False)).to_have_count(0)
    await expect(page.locator(f"[data-readonly='{service_name}']")).to_have_count(0)
    await open_service(page, service_name)
    await page.get_by_label("Label", exact=True).fill("scoped")
    await page.get_by_role("button", name="Save as version 1").click()
    await expect(page.get_by_text(f"Saved {service_name} version 1")).to_be_visible()

    # instances' reports move the badges without a reload (events, then /sync)
    report = {
        "service": service_name,
        "instance": "old-1",
        "status": "applied",
        "version": 1,
        "epoch": (await stored_doc(manager, service_name))["epoch"],
        "time": "2026-11-30T00:00:00.000000Z",
        "freshness": "stale",
    }
    async with aiomqtt.Client(**broker.endpoint(service_name).client_kwargs()) as svc:
        payload = sign_report(report, SigningKey.generate())  # signed as an instance signs it
        await svc.publish(applied_topic(service_name, "old-1"), payload, qos=1)
        await expect(page.locator(f"[data-freshness='{service_name}']")).to_have_text("1 stale")
        await expect(page.locator(f"[data-badge='{service_name}']")).to_have_text("1/1 applied")
        await expect(page.locator(f"[data-freshness='{other}']")).to_have_count(0)
        await expect(page.locator(f"[data-forged='{service_name}']")).to_have_count(0)
        # an unsigned report: the manager shows it as forged, and so does the badge
        forged = {**report, "instance": "fake-1", "freshness": "fresh"}
        await svc.publish(applied_topic(service_name, "fake-1"), json.dumps(forged).encode(), qos=1)
        await expect(page.locator(f"[data-forged='{service_name}']")).to_have_text("1 forged")
    await shot(page, "13-scoped-stale")


@module_loop
async def test_token_is_handed_to_a_new_tab(
    manager: RunningManager, browser: Browser, pages: Callable[..., Awaitable[Page]]
) -> None:
    first = await pages()
    await login(first, manager.tokens["admin"])
    second = await pages(context=first.context)  # same browser session, new tab
    await second.goto("/")
    await expect(second.locator(".who .tag")).to_have_text("admin")
    await second.get_by_role("button", name="Sign out").click()
    # signing out in one tab signs out the others
    await expect(first.get_by_label("API token")).to_be_visible()


@module_loop
async def test_api_docs_render_offline(
    manager: RunningManager, pages: Callable[..., Awaitable[Page]]
) -> None:
    page = await pages()
    outside: list[str] = []

    async def only_the_manager(route: Any) -> None:
        if route.request.url.startswith(manager.base_url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_manager)
    await page.goto("/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Config manager")
    await expect(page.get_by_text("/api/v1/whoami").first).to_be_visible()
    assert outside == []
    await shot(page, "07-api-docs")
    async with httpx.AsyncClient(base_url=manager.base_url) as http:
        redoc = await http.get("/redoc")
        assert redoc.status_code == 200
        assert "/docs/assets/redoc.standalone.js" in redoc.text


@module_loop
async def test_no_horizontal_overflow_at_360px(
    manager: RunningManager, service_name: str, pages: Callable[..., Awaitable[Page]]
) -> None:
    await _two_versions(manager, service_name)  # a history with diffs to lay out
    page = await pages(width=360, height=780)
    await login(page, manager.tokens["editor"])
    await open_service(page, service_name)
    long_tag = "a-rather-long-tag-that-should-wrap-or-scroll-inside"
    await page.get_by_label("Tags").fill(f'["a", "{long_tag}"]')

    async def no_overflow(view: str) -> None:
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{view}: the page is {overflow}px wider than a 360px screen"

    for tab in ("Edit", "Instances (0)", "History"):
        await page.get_by_role("tab", name=tab).click()
        await no_overflow(tab)
    await page.get_by_role("button", name="Restore version 1").click()
    await expect(page.get_by_role("dialog")).to_be_visible()
    await no_overflow("restore dialog")
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Audit log").click()
    await expect(
        page.get_by_role("table", name="audit entries").locator("tbody tr")
    ).not_to_have_count(0)
    await no_overflow("audit log")
    await page.get_by_role("button", name="Configuration").click()
    await page.get_by_role("tab", name="Edit").click()
    await shot(page, "08-mobile-360")


@module_loop
async def test_whoami_reports_name_and_role(manager: RunningManager) -> None:
    for role in ("viewer", "editor", "admin"):
        async with manager.client(role) as http:
            resp = await http.get("/api/v1/whoami")
            assert resp.status_code == 200
            assert resp.json() == {"name": f"{role}-token", "role": role, "scopes": None}
    async with manager.client("") as http:
        resp = await http.get("/api/v1/whoami")
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert json.loads(resp.text)["status"] == 401


def test_worker_models_give_every_field_a_human_title() -> None:
    """The editor labels fields with the schema's ``title``: no generated "Max Chunk Duration S"."""
    from config_manager import SchemaRegistry

    registry = SchemaRegistry.from_entry_points()
    for service in ("stt", "orchestrator"):
        model = registry.get(service)
        assert model is not None, f"{service} is not registered"
        schema = model.model_json_schema()
        nodes = [schema, *schema.get("$defs", {}).values()]
        for node in nodes:
            for name, prop in node.get("properties", {}).items():
                generated = name.replace("_", " ").title()  # pydantic's own title
                assert prop.get("title"), f"{service}.{name} has no title"
                if "_" in name:
                    assert prop["title"] != generated, f"{service}.{name}: {generated!r}"


@module_loop
async def test_preset_preview_then_apply_keeps_unsaved_edits(
    manager_factory: Callable[..., RunningManager],
    own_broker: Any,
    pages: Callable[..., Awaitable[Page]],
) -> None:
    from workers.orchestrator.config import OrchestratorConfig
    from workers.stt.config import SttConfig

    # the real service names: on a broker of its own, so no other test sees these configs
    manager = manager_factory(
        mqtt_url=own_broker.url("manager"),
        models={"stt": SttConfig, "orchestrator": OrchestratorConfig},
    )
    page = await pages(on=manager)
    await login(page, manager.tokens["editor"])
    await open_service(page, "orchestrator")
    idle = page.get_by_label("Idle session timeout (s)")
    await idle.fill("301")  # an unsaved edit of a field the preset does not own

    await page.get_by_role("button", name="Preview high_accuracy").click()
    dialog = page.get_by_role("dialog", name="Preset high_accuracy: preview")
    await expect(dialog).to_be_visible()
    orchestrator = dialog.locator("[data-preview='orchestrator']")
    await expect(orchestrator).to_contain_text("version 0 → 1")
    chunk = orchestrator.locator("tbody tr").filter(has_text="chunk_duration_s")
    await expect(chunk).to_contain_text("20")
    await expect(dialog.locator("[data-preview='stt']")).to_be_visible()
    await expect(dialog.locator(".compat")).to_contain_text("Compatible")
    await expect(dialog.get_by_label("Keep them", exact=False)).to_be_checked()
    await shot(page, "14-preset-preview")
    assert (await stored(manager, "orchestrator"))["chunk_duration_s"] != 20  # nothing stored

    await dialog.get_by_role("button", name="Apply high_accuracy").click()
    await expect(page.get_by_text("Preset high_accuracy applied")).to_be_visible()
    await expect(dialog).to_have_count(0)
    # the form shows the preset's values, and the unsaved edit is still there
    await expect(page.get_by_label("Chunk length (s)")).to_have_value("20")
    await expect(idle).to_have_value("301")
    await page.get_by_role("button", name="Save as version 2").click()
    await expect(page.get_by_text("Saved orchestrator version 2")).to_be_visible()
    values = await stored(manager, "orchestrator")
    assert (values["chunk_duration_s"], values["session_idle_timeout_s"]) == (20, 301)
