"""Helpers of the config manager tests: a real manager served by uvicorn over real HTTP.

(A module with a unique name: ``conftest`` modules of several folders share one name.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import uvicorn
from pydantic import BaseModel

from config_lib import Envelope, TrustStore, updated_topic, verify_envelope, write_atomic
from config_manager import ManagerSettings, SchemaRegistry, create_app
from config_manager.tokens import Role, create_token_sync


def write_keys(data_dir: Path, keys: Any) -> None:
    """Put the session's test keys where the manager expects them."""
    import base64

    write_atomic(data_dir / "keys" / "signing.pem", keys.signing.private_pem())
    write_atomic(data_dir / "keys" / "trust.pem", keys.trust.to_pem(), mode=0o644)
    write_atomic(data_dir / "keys" / "master.key", base64.b64encode(keys.master) + b"\n")


@dataclass
class RunningManager:
    """A manager served by uvicorn in a thread on a pre-bound loopback socket."""

    base_url: str
    data_dir: Path
    settings: ManagerSettings
    tokens: dict[str, str] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _socket: socket.socket | None = None

    def client(self, role: str = "admin", **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=20, **kwargs)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
            assert not self._thread.is_alive(), "uvicorn did not stop"
        self._server = self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def start_manager(
    data_dir: Path,
    *,
    mqtt_url: str,
    models: dict[str, type[BaseModel]],
    tokens: dict[str, str] | None = None,
    wait_for_broker: bool = True,
    **overrides: Any,
) -> RunningManager:
    """Start a manager on ``data_dir`` (keys must exist); creates tokens the first time.

    With ``wait_for_broker`` it returns once ``/readyz`` says the broker is connected
    (the connection is made in the background after startup).
    """
    settings = ManagerSettings(
        data_dir=data_dir,
        mqtt_url=mqtt_url,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
        **overrides,
    )
    if tokens is None:
        tokens = {
            role.value: create_token_sync(settings.database, f"{role.value}-token", role)
            for role in Role
        }
    app = create_app(settings, registry=SchemaRegistry(models))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)  # requests queue here until the app has finished starting
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # open /api/v1/events streams never end by themselves
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    # Bounded wait for the app's startup (lifespan) to finish, or for it to fail.
    deadline = time.monotonic() + 30
    while not server.started:
        thread.join(0.02)
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the manager failed to start (see the captured log)")
        if time.monotonic() > deadline:
            raise RuntimeError("the manager did not start within 30 s")
    running = RunningManager(
        f"http://127.0.0.1:{port}", data_dir, settings, tokens, server, thread, sock
    )
    if wait_for_broker:
        with httpx.Client(base_url=running.base_url, timeout=5) as http:
            while http.get("/readyz").json()["broker"] != "connected":
                if time.monotonic() > deadline:
                    running.stop()
                    raise RuntimeError("the manager did not connect to the broker within 30 s")
                time.sleep(0.02)  # bounded readiness poll of a starting service
    return running


class EnvelopeWatcher:
    """A raw aiomqtt subscriber (debug user) that verifies every envelope it receives."""

    def __init__(self, client: aiomqtt.Client, trust: TrustStore, service: str) -> None:
        self.client = client
        self.trust = trust
        self.service = service
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue()

    async def run(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            self.queue.put_nowait(
                verify_envelope(bytes(payload), trust=self.trust, service=self.service)
            )

    async def next(self, wait_s: float = 10) -> Envelope:
        return await asyncio.wait_for(self.queue.get(), wait_s)

    async def until_version(self, version: int, wait_s: float = 20) -> list[Envelope]:
        """Collect envelopes until one with ``version`` arrives."""
        seen: list[Envelope] = []
        async with asyncio.timeout(wait_s):
            while True:
                env = await self.queue.get()
                seen.append(env)
                if env.version == version:
                    return seen


@contextlib.asynccontextmanager
async def watch(broker: Any, trust: TrustStore, service: str) -> AsyncIterator[EnvelopeWatcher]:
    async with aiomqtt.Client(**broker.endpoint("debug").client_kwargs()) as client:
        await client.subscribe(updated_topic(service), qos=1)
        watcher = EnvelopeWatcher(client, trust, service)
        task = asyncio.create_task(watcher.run())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def persistent_watch(
    broker: Any, trust: TrustStore, service: str
) -> AsyncIterator[asyncio.Queue[Envelope]]:
    """A subscriber with a persistent session (QoS 1) that reconnects: it misses nothing.

    It subscribes once; the broker keeps the subscription (and queues messages) across
    disconnections and broker restarts, so retained copies are not re-sent on reconnect.
    """
    queue: asyncio.Queue[Envelope] = asyncio.Queue()
    ident = f"watch-{service}"

    async def run() -> None:
        subscribed = False
        while True:
            try:
                async with aiomqtt.Client(
                    **broker.endpoint("debug").client_kwargs(),
                    identifier=ident,
                    clean_session=False,
                ) as client:
                    if not subscribed:
                        await client.subscribe(updated_topic(service), qos=1)
                        subscribed = True
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        queue.put_nowait(
                            verify_envelope(message.payload, trust=trust, service=service)
                        )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)  # reconnect backoff while the broker is down

    task = asyncio.create_task(run())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def collect_until(queue: asyncio.Queue[Envelope], version: int) -> list[int]:
    """The versions a persistent_watch queue delivers, up to and including ``version``."""
    seen: list[int] = []
    async with asyncio.timeout(30):
        while not seen or seen[-1] != version:
            seen.append((await queue.get()).version)
    return seen


async def eventually(check: Callable[[], Awaitable[bool]], wait_s: float = 10) -> None:
    """Re-check an HTTP-visible condition until it holds (bounded; for state only an API shows)."""
    async with asyncio.timeout(wait_s):
        # The condition is only visible through HTTP (another process or thread), so it is
        # re-checked; the timeout bounds the wait.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def put(
    http: httpx.AsyncClient, service: str, body: Any, if_match: str | int
) -> httpx.Response:
    return await http.put(
        f"/api/v1/configs/{service}", json=body, headers={"If-Match": str(if_match)}
    )
