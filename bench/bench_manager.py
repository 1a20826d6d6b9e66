"""Config manager benchmark: PUT -> subscriber callback, against etcd's put -> watch.

Run: ``.venv/bin/python bench/bench_manager.py [--samples 300] [--burst 500]``
(or ``make bench`` / ``python -m bench manager``).

Everything is started here, on free loopback ports, and torn down at the end:

* a data directory made by the real bootstrap (``init_data_dir``): keys, passwords,
  the admin token, mosquitto's files; mosquitto itself with the project's config;
* the config manager as a subprocess (``python -m config_manager serve``);
* etcd (``/usr/bin/etcd``, single member, temporary data dir) as the baseline.

Measured in the same run, samples interleaved so that machine noise hits all alike:

* **manager → raw**: ``PUT /api/v1/configs/stt`` (If-Match) until a plain aiomqtt
  subscriber has received the signed envelope and ``verify_envelope`` accepted it;
* **manager → library**: the same PUT until a ``ConfigLibrary``'s ``on_change`` callback
  has run (verify, decrypt, validate, apply);
* **etcd**: ``POST /v3/kv/put`` on the JSON gateway until the streaming ``POST /v3/watch``
  has delivered the event (the same JSON document as value).

Then **sustained writes**: ``--burst`` acknowledged PUTs back to back (each based on the
previous ETag), timed until the subscriber has verified the last one; and the same burst
on etcd (put until the last watch event).

Then **concurrent writes** (group commit): ``--clients`` clients (50), each on a service of
its own (a manager started with that many extra services registered), each sending
``--per-client`` acknowledged writes back to back, timed until a raw subscriber has verified
every one; against etcd with as many clients, each on a key of its own, timed until a prefix
watch has delivered every put.

Prints medians, p99 and ratios beside issue 14's goals; writes ``bench/results/manager.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config_lib import (  # noqa: E402
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    MqttEndpoint,
    TrustStore,
    load_data_key,
    updated_topic,
    verify_envelope,
)
from config_manager import init_data_dir  # noqa: E402
from config_manager.broker import (  # noqa: E402
    BrokerFiles,
    MosquittoProcess,
    find_mosquitto,
    free_port,
)
from workers.stt.config import SttConfig  # noqa: E402

SERVICE = "stt"
ETCD = "/usr/bin/etcd"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }


async def _wait_http(url: str, limit_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)  # readiness poll of a starting process (bounded)
    raise RuntimeError(f"{url} not ready after {limit_s} s")


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _server_timing(header: str) -> dict[str, float]:
    """``name;dur=ms, ...`` → {name: seconds}."""
    out: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name and rest:
            out[name] = float(rest) / 1000
    return out


# -- etcd --------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdWatch:
    """A streaming watch on one key through etcd's JSON gateway."""

    def __init__(self, http: httpx.AsyncClient, key: bytes) -> None:
        self.http = http
        self.key = key
        self.events: asyncio.Queue[bytes] = asyncio.Queue()
        self.created = asyncio.Event()

    async def run(self) -> None:
        body = {"create_request": {"key": _b64(self.key)}}
        async with self.http.stream("POST", "/v3/watch", json=body, timeout=None) as resp:
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                result = json.loads(line).get("result", {})
                if result.get("created"):
                    self.created.set()
                for event in result.get("events", []):
                    self.events.put_nowait(base64.b64decode(event["kv"]["value"]))


@contextlib.asynccontextmanager
async def etcd(tmp: Path) -> AsyncIterator[httpx.AsyncClient]:
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    argv = [
        ETCD,
        "--name", "bench",
        "--data-dir", str(tmp / "etcd"),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"bench={peer_url}",
        "--log-level", "error",
    ]  # fmt: skip
    with _process(argv, dict(os.environ), tmp / "etcd.log") as proc:
        await _wait_http(f"{client_url}/health", 30, proc)
        async with httpx.AsyncClient(base_url=client_url, timeout=10) as http:
            yield http


# -- the manager ---------------------------------------------------------------------------
class Stack:
    def __init__(self, data: Path, http: httpx.AsyncClient, broker: MosquittoProcess) -> None:
        self.data = data
        self.http = http
        self.broker = broker
        self.etag = "0"
        self.server_timing: dict[str, float] = {}
        self.response_s = 0.0

    def endpoint(self, user: str) -> MqttEndpoint:
        password = (self.data / "secrets" / "mqtt" / f"{user}.password").read_text().strip()
        return MqttEndpoint(self.broker.host, self.broker.port, user, password)

    async def put(self, i: int) -> float:
        """One write; returns the time the PUT was sent (perf_counter)."""
        sent = time.perf_counter()
        resp = await self.http.patch(
            f"/api/v1/configs/{SERVICE}",
            json={"initial_prompt": f"bench write {i}"},
            headers={"If-Match": self.etag},
        )
        self.response_s = time.perf_counter() - sent
        if resp.status_code != 200:
            raise RuntimeError(f"write failed: {resp.status_code} {resp.text}")
        self.etag = resp.headers["etag"]
        self.server_timing = _server_timing(resp.headers.get("server-timing", ""))
        return sent


@contextlib.asynccontextmanager
async def manager_stack(
    tmp: Path, publish_wait_s: float, nodelay: bool = False, extra_services: int = 0
) -> AsyncIterator[Stack]:
    data = tmp / "data"
    mqtt_port, http_port = free_port(), free_port()
    result = init_data_dir(data, mqtt_port=mqtt_port, services=["stt", "orchestrator"])
    assert result.admin_token is not None
    files = BrokerFiles(data / "mosquitto")
    if nodelay:
        # What `set_tcp_nodelay true` in mosquitto.conf changes (Nagle off on the broker's
        # sockets: PUBACKs are not held behind unacknowledged data).
        files.conf.write_text(files.conf.read_text() + "\nset_tcp_nodelay true\n")
    broker = MosquittoProcess(files, port=mqtt_port)
    broker.start()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "CONFIG_MANAGER_DATA_DIR": str(data),
        "CONFIG_MANAGER_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "CONFIG_MANAGER_PUBLISH_WAIT_S": str(publish_wait_s),
        "CONFIG_MANAGER_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "config_manager", "serve", "--port", str(http_port)]
    if extra_services:
        # The same server with ``extra_services`` more services registered (bench-NN).
        argv = [sys.executable, __file__, "--serve-many", str(extra_services), "--port",
                str(http_port)]  # fmt: skip
    try:
        with _process(argv, env, tmp / "manager.log") as proc:
            await _wait_http(f"http://127.0.0.1:{http_port}/readyz", 30, proc)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{http_port}",
                headers={"Authorization": f"Bearer {result.admin_token}"},
                timeout=10,
            ) as http:
                yield Stack(data, http, broker)
    finally:
        broker.stop()


class RawWatch:
    def __init__(self, client: aiomqtt.Client, trust: TrustStore) -> None:
        self.client = client
        self.trust = trust
        self.received: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def run(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            env = verify_envelope(message.payload, trust=self.trust, service=SERVICE)
            self.received.put_nowait((env.version, time.perf_counter()))

    async def until(self, version: int) -> float:
        while True:
            got, at = await asyncio.wait_for(self.received.get(), 10)
            if got >= version:
                return at


async def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def latency(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"manager_raw": [], "manager_library": [], "etcd": []}
    phases: dict[str, list[float]] = {}
    async with contextlib.AsyncExitStack() as stack:
        mgr = await stack.enter_async_context(
            manager_stack(tmp / "lat", args.publish_wait, args.mqtt_nodelay)
        )
        etcd_http = await stack.enter_async_context(etcd(tmp / "lat"))
        trust = TrustStore.load(mgr.data / "keys" / "trust.pem")
        raw_client = await stack.enter_async_context(
            aiomqtt.Client(**mgr.endpoint("debug").client_kwargs())
        )
        await raw_client.subscribe(updated_topic(SERVICE), qos=1)
        raw = RawWatch(raw_client, trust)
        group = await stack.enter_async_context(asyncio.TaskGroup())
        raw_task = group.create_task(raw.run())

        applied: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

        # async: it runs on the event loop (a plain function would run on the library's
        # callback thread, where an asyncio.Queue must not be touched)
        async def on_change(change: ConfigChange[SttConfig]) -> None:
            applied.put_nowait((change.version or 0, time.perf_counter()))

        library = ConfigLibrary(
            service=SERVICE,
            model=SttConfig,
            settings=LibrarySettings(
                data_dir=mgr.data, initial_wait=2.0, env_fallback=False, lkg_enabled=False
            ),
            trust=trust,
            data_keys=[load_data_key(mgr.data / "keys" / "services" / "stt.key", SERVICE)],
            endpoint=mgr.endpoint(SERVICE),
            instance_id="bench-1",
        )
        lib_stack = contextlib.AsyncExitStack()
        cfg = await lib_stack.enter_async_context(library)
        cfg.on_change(on_change)

        key = b"config/updated/stt"
        watch = EtcdWatch(etcd_http, key)
        etcd_task = group.create_task(watch.run())
        await asyncio.wait_for(watch.created.wait(), 10)

        version = 0
        for i in range(args.warmup + args.samples):
            # manager: one PUT, timed to the raw subscriber and to the library callback
            sent = await mgr.put(i)
            version += 1
            raw_at = await raw.until(version)
            while True:
                got, lib_at = await asyncio.wait_for(applied.get(), 10)
                if got >= version:
                    break
            await cfg.wait_for_version(version, timeout=10)
            # etcd: one put of a document of the same size, timed to the watch event
            value = json.dumps({"initial_prompt": f"bench write {i}", "version": version})
            e_sent = time.perf_counter()
            resp = await etcd_http.post(
                "/v3/kv/put", json={"key": _b64(key), "value": _b64(value.encode())}
            )
            resp.raise_for_status()
            got_value = await asyncio.wait_for(watch.events.get(), 10)
            e_at = time.perf_counter()
            assert got_value == value.encode()
            if i >= args.warmup:
                for name, seconds in mgr.server_timing.items():
                    phases.setdefault(name, []).append(seconds)
                phases.setdefault("http_response", []).append(mgr.response_s)
                samples["manager_raw"].append(raw_at - sent)
                samples["manager_library"].append(lib_at - sent)
                samples["etcd"].append(e_at - e_sent)

        # -- sustained writes -------------------------------------------------------
        # The library (and its applied reports) would share this process's event loop
        # with the HTTP client: close it, the raw subscriber still verifies every envelope.
        await lib_stack.aclose()
        await _drain(raw.received)
        start = time.perf_counter()
        for i in range(args.burst):
            await mgr.put(100_000 + i)
        acked = time.perf_counter()
        version += args.burst
        last = await raw.until(version)
        manager_burst = {
            "writes": args.burst,
            "acknowledged_per_s": args.burst / (acked - start),
            "published_per_s": args.burst / (last - start),
        }
        await _drain(watch.events)
        start = time.perf_counter()
        for i in range(args.burst):
            body = {"key": _b64(key), "value": _b64(f"burst {i}".encode())}
            (await etcd_http.post("/v3/kv/put", json=body)).raise_for_status()
        acked = time.perf_counter()
        for _ in range(args.burst):
            await asyncio.wait_for(watch.events.get(), 10)
        last = time.perf_counter()
        etcd_burst = {
            "writes": args.burst,
            "acknowledged_per_s": args.burst / (acked - start),
            "published_per_s": args.burst / (last - start),
        }
        raw_task.cancel()
        etcd_task.cancel()

    result: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    for name in ("manager_raw", "manager_library"):
        result[f"ratio_{name}_vs_etcd"] = {
            "p50": result[name]["p50_ms"] / result["etcd"]["p50_ms"],
            "p99": result[name]["p99_ms"] / result["etcd"]["p99_ms"],
        }
    # Where a write's time goes, from the manager's Server-Timing header: lock wait,
    # validate (+ encrypt + cross-service rules), commit (fsynced), publish (PUBACK wait),
    # app (request in -> response out, inside the app); http_response is what the client saw.
    result["manager_phases_p50_ms"] = {
        name: statistics.median(values) * 1000 for name, values in phases.items()
    }
    result["sustained"] = {"manager": manager_burst, "etcd": etcd_burst}
    result["sustained"]["ratio_published_per_s"] = (
        manager_burst["published_per_s"] / etcd_burst["published_per_s"]
    )
    return result


class BenchService(BaseModel):
    """The model of the concurrent phase's extra services (one field, like the PATCHes)."""

    initial_prompt: str = ""


def bench_services(n: int) -> list[str]:
    return [f"bench-{i:02d}" for i in range(n)]


def serve_many(n: int, port: int) -> int:
    """``python -m config_manager serve``, with ``n`` extra services registered."""
    import logging

    import uvicorn

    from config_manager import ManagerSettings, SchemaRegistry, create_app

    settings = ManagerSettings(port=port)
    registry = SchemaRegistry.from_entry_points()
    for name in bench_services(n):
        registry.register(name, BenchService)
    logging.basicConfig(level=settings.log_level.upper())
    uvicorn.run(
        create_app(settings, registry=registry),
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
        # the clients' pooled connections outlive uvicorn's default 5 s idle limit on a
        # loaded machine (a reused connection closed by the server is a ReadError)
        timeout_keep_alive=120,
    )
    return 0


class WildcardWatch:
    """Verifies every envelope on ``config/updated/+``; counts them per service."""

    def __init__(self, client: aiomqtt.Client, trust: TrustStore) -> None:
        self.client = client
        self.trust = trust
        self.latest: dict[str, int] = {}
        self.count = 0
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            service = str(message.topic).rsplit("/", 1)[-1]
            env = verify_envelope(message.payload, trust=self.trust, service=service)
            self.latest[service] = max(self.latest.get(service, 0), env.version)
            self.count += 1
            self.changed.set()

    async def until(self, versions: dict[str, int], wait_s: float = 60) -> float:
        async with asyncio.timeout(wait_s):
            while any(self.latest.get(s, 0) < v for s, v in versions.items()):
                self.changed.clear()
                await self.changed.wait()
        return time.perf_counter()


async def concurrent(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``args.clients`` writers, a service (a key) each, ``args.per_client`` writes each."""
    services = bench_services(args.clients)
    async with contextlib.AsyncExitStack() as stack:
        mgr = await stack.enter_async_context(
            manager_stack(tmp / "conc", args.publish_wait, extra_services=args.clients)
        )
        etcd_http = await stack.enter_async_context(etcd(tmp / "conc"))
        trust = TrustStore.load(mgr.data / "keys" / "trust.pem")
        raw_client = await stack.enter_async_context(
            aiomqtt.Client(**mgr.endpoint("debug").client_kwargs())
        )
        await raw_client.subscribe("config/updated/+", qos=1)
        raw = WildcardWatch(raw_client, trust)
        group = await stack.enter_async_context(asyncio.TaskGroup())
        raw_task = group.create_task(raw.run())
        # One HTTP client per writer, as 50 real clients would have. One shared httpx
        # client with 50 connections costs ~9.5 ms of CPU per request in this process
        # (httpcore's pool; measured against etcd: 107 puts/s at 100 % of a core, against
        # 700/s with a client each), so the driver, not the server, would be measured.
        clients = {
            s: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=str(mgr.http.base_url), headers=dict(mgr.http.headers), timeout=60
                )
            )
            for s in services
        }

        etags = dict.fromkeys(services, "0")

        async def mgr_client(service: str, rounds: int, start: int) -> int:
            http = clients[service]
            for i in range(rounds):
                resp = await http.patch(
                    f"/api/v1/configs/{service}",
                    json={"initial_prompt": f"concurrent write {start + i}"},
                    headers={"If-Match": etags[service]},
                )
                if resp.status_code != 200:
                    raise RuntimeError(f"write failed: {resp.status_code} {resp.text}")
                etags[service] = resp.headers["etag"]
            return start + rounds

        # warm-up: one write per service (connections opened, models cached)
        await asyncio.gather(*(mgr_client(s, 1, 0) for s in services))
        await raw.until(dict.fromkeys(services, 1))
        start = time.perf_counter()
        ends = await asyncio.gather(*(mgr_client(s, args.per_client, 1) for s in services))
        acked = time.perf_counter()
        last = await raw.until(dict(zip(services, ends, strict=True)))
        total = args.clients * args.per_client
        manager = {
            "clients": args.clients,
            "writes": total,
            "acknowledged_per_s": total / (acked - start),
            "published_per_s": total / (last - start),
        }

        watch = EtcdWatch(etcd_http, b"bench/")
        # a prefix watch: range_end = the prefix with its last byte + 1
        watch_task = group.create_task(_etcd_prefix_watch(watch))
        await asyncio.wait_for(watch.created.wait(), 10)
        etcd_clients = {
            f"bench/{s}": await stack.enter_async_context(
                httpx.AsyncClient(base_url=str(etcd_http.base_url), timeout=60)
            )
            for s in services
        }

        async def etcd_client_run(key: str, rounds: int) -> None:
            etcd_client = etcd_clients[key]
            for i in range(rounds):
                body = {"key": _b64(key.encode()), "value": _b64(f"concurrent {i}".encode())}
                (await etcd_client.post("/v3/kv/put", json=body)).raise_for_status()

        await asyncio.gather(*(etcd_client_run(f"bench/{s}", 1) for s in services))
        for _ in services:
            await asyncio.wait_for(watch.events.get(), 10)
        start = time.perf_counter()
        await asyncio.gather(*(etcd_client_run(f"bench/{s}", args.per_client) for s in services))
        acked = time.perf_counter()
        for _ in range(total):
            await asyncio.wait_for(watch.events.get(), 30)
        last = time.perf_counter()
        etcd_result = {
            "clients": args.clients,
            "writes": total,
            "acknowledged_per_s": total / (acked - start),
            "published_per_s": total / (last - start),
        }
        raw_task.cancel()
        watch_task.cancel()
    return {"manager": manager, "etcd": etcd_result}


async def _etcd_prefix_watch(watch: EtcdWatch) -> None:
    end = watch.key[:-1] + bytes([watch.key[-1] + 1])
    body = {"create_request": {"key": _b64(watch.key), "range_end": _b64(end)}}
    async with watch.http.stream("POST", "/v3/watch", json=body, timeout=None) as resp:
        async for line in resp.aiter_lines():
            if not line.strip():
                continue
            result = json.loads(line).get("result", {})
            if result.get("created"):
                watch.created.set()
            for event in result.get("events", []):
                watch.events.put_nowait(base64.b64decode(event["kv"]["value"]))


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 14's goals 1 and 2, each as a ratio measured in this run."""
    lib = results["ratio_manager_library_vs_etcd"]
    s = results["sustained"]
    out: dict[str, Any] = {
        "1_put_to_callback_p50_vs_etcd": {"ratio": lib["p50"], "goal": "<= 1.0"},
        "1_put_to_callback_p99_vs_etcd": {"ratio": lib["p99"], "goal": "<= 1.0"},
        "2_sequential_writes_per_s_vs_etcd": {
            "ratio": s["ratio_published_per_s"], "goal": ">= 1.0"
        },
    }
    c = results.get("concurrent")
    if c is not None:
        out["2_concurrent_writes_per_s_vs_etcd"] = {
            "ratio": c["manager"]["published_per_s"] / c["etcd"]["published_per_s"],
            "goal": ">= 1.0",
        }
        out["2_concurrent_vs_own_sequential"] = {
            "ratio": c["manager"]["published_per_s"] / s["manager"]["published_per_s"],
            "goal": ">= 5.0",
        }
    for goal in out.values():
        bound = float(goal["goal"].split()[1])
        below = goal["goal"].startswith("<=")
        goal["met"] = goal["ratio"] <= bound if below else goal["ratio"] >= bound
    return out


def print_table(results: dict[str, Any]) -> None:
    print(f"{'path':<34} {'p50 ms':>8} {'p99 ms':>8}")
    labels = {
        "manager_raw": "manager PUT -> verified envelope",
        "manager_library": "manager PUT -> library callback",
        "etcd": "etcd put -> watch event",
    }
    for name, label in labels.items():
        r = results[name]
        print(f"{label:<34} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    for name in ("manager_raw", "manager_library"):
        ratio = results[f"ratio_{name}_vs_etcd"]
        print(f"ratio {name} / etcd: p50 x{ratio['p50']:.2f}, p99 x{ratio['p99']:.2f}")
    phases = ", ".join(f"{k} {v:.2f}" for k, v in results["manager_phases_p50_ms"].items())
    print(f"manager PUT phases, p50 ms: {phases}")
    s = results["sustained"]
    for who in ("manager", "etcd"):
        print(
            f"sustained {who:<8} {s[who]['writes']} writes: "
            f"{s[who]['acknowledged_per_s']:.0f} acknowledged/s, "
            f"{s[who]['published_per_s']:.0f}/s with all delivered"
        )
    print(f"sustained ratio manager / etcd (all delivered): x{s['ratio_published_per_s']:.2f}")
    c = results.get("concurrent")
    if c is not None:
        for who in ("manager", "etcd"):
            print(
                f"concurrent {who:<8} {c[who]['clients']} clients, {c[who]['writes']} writes: "
                f"{c[who]['acknowledged_per_s']:.0f} acknowledged/s, "
                f"{c[who]['published_per_s']:.0f}/s with all delivered"
            )
    print("issue 14 goals (ratios from this run):")
    for name, goal in results["goals"].items():
        verdict = "met" if goal["met"] else "NOT met"
        print(f"  {name:<38} x{goal['ratio']:.2f}  goal {goal['goal']:<7} {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50, help="concurrent writers (0: skip)")
    parser.add_argument("--per-client", type=int, default=20, help="writes per writer")
    parser.add_argument("--serve-many", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--publish-wait",
        type=float,
        default=2.0,
        help="CONFIG_MANAGER_PUBLISH_WAIT_S: how long a PUT waits for the PUBACK",
    )
    parser.add_argument(
        "--mqtt-nodelay",
        action="store_true",
        help="run mosquitto with set_tcp_nodelay true (no measurable effect since the manager "
        "takes applied reports on a connection of their own)",
    )
    args = parser.parse_args()
    if args.serve_many:
        return serve_many(args.serve_many, args.port)
    if not Path(ETCD).exists() or find_mosquitto() is None:
        print("needs /usr/bin/etcd (etcd-server) and mosquitto", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-manager-") as tmp:
        results = asyncio.run(latency(args, Path(tmp)))
        if args.clients:
            results["concurrent"] = asyncio.run(concurrent(args, Path(tmp)))
    results["goals"] = goals(results)
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    results["args"] = vars(args)
    print_table(results)
    out = REPO / "bench" / "results" / "manager.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
