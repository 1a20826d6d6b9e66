"""The floors of a write (issue 14, goals 1 and 2): what the steps we cannot skip cost on
this machine, summed, against etcd's put → watch measured in the same run.

Run: ``.venv/bin/python bench/bench_floors.py [--rounds 200]`` (or ``python -m bench floors``).

A write through the manager does, in series, things etcd does not: an HTTP request
through an ASGI stack, a pydantic validation, encryption of secrets, RFC 8785
canonicalisation and an Ed25519 signature, a durable SQLite commit, a QoS 1 publish
through mosquitto, and on the subscriber a verification. This measures each of them
alone, at its bare minimum, rounds interleaved with etcd so that machine noise hits all
alike:

* **http in / http out**: a trivial FastAPI ``PUT`` (a bearer-token dependency, a JSON
  body, a JSON answer with an ETag) served by uvicorn with the manager's own options, in
  its own process: from the client's send to the handler (*in*, what lies on the path to
  a subscriber) and from the handler's return to the client's receipt (*out*);
* **bare http in / out**: the same PUT answered by a bare ASGI callable in front of that
  app (uvicorn without a framework): how much of the HTTP floor is FastAPI's;
* **validate**: ``SttConfig.model_validate`` of the patched document;
* **encrypt + sign**: ``encrypt_secrets`` and ``sign_envelope`` (canonical form, Ed25519);
* **commit**: one ``INSERT`` of the envelope and ``COMMIT`` on a SQLite file with the
  manager's pragmas (WAL, ``synchronous = FULL``), on the same file system as the run;
* **publish → PUBACK** and **publish → delivery**: the envelope, QoS 1 retained, through
  mosquitto started with the project's config, to one aiomqtt subscriber;
* **verify**: ``verify_envelope`` of a fresh envelope (never seen by this process);
* **etcd**: ``/v3/kv/put`` until the streaming watch has the event, and until the put's
  answer.

Two sums follow. *PUT → callback floor*: http in + validate + encrypt + sign + commit +
publish → delivery + verify, against etcd's put → watch (issue 14 goal 1 asks ≤ 1.0 for
the real path; a floor ratio near or above 1.0 says the goal cannot be met by removing
overhead alone). *Acknowledged write floor*: http in + out + validate + encrypt + sign +
commit + publish → PUBACK, as writes/s against etcd's sequential puts/s (goal 2).

Writes ``bench/results/floors.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_manager import (  # noqa: E402
    EtcdWatch,
    _b64,
    _process,
    _wait_http,
    etcd,
    percentile,
)
from config_lib import (  # noqa: E402
    MqttEndpoint,
    SigningKey,
    TrustStore,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
    verify_envelope,
)
from config_manager import init_data_dir  # noqa: E402
from config_manager.broker import BrokerFiles, MosquittoProcess, free_port  # noqa: E402
from config_manager.dialects import SQLITE_PRAGMAS  # noqa: E402
from workers.stt.config import SttConfig  # noqa: E402

SERVICE = "stt"
TOKEN = "floor-bench-token"  # noqa: S105 - a bench server's throwaway token


# -- the trivial HTTP server ------------------------------------------------------------------
def serve_http(port: int) -> int:
    """A trivial FastAPI PUT under uvicorn with the manager's options (its own process)."""
    import uvicorn
    from fastapi import Depends, FastAPI, Header, HTTPException
    from fastapi.responses import JSONResponse

    app = FastAPI()

    def bearer(authorization: str = Header()) -> str:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(401, "bad token")
        return authorization

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.put("/api/v1/configs/{service}")
    async def put(
        service: str,
        body: dict[str, Any],
        if_match: str = Header(),
        _auth: str = Depends(bearer),
    ) -> JSONResponse:
        entered = time.perf_counter()
        etag = str(int(if_match) + 1)
        return JSONResponse(
            {"service": service, "config": body, "entered": entered, "left": time.perf_counter()},
            headers={"ETag": etag},
        )

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The same PUT as a bare ASGI callable (no framework): what uvicorn alone costs."""
        if scope["type"] != "http" or not scope["path"].startswith("/bare/"):
            await app(scope, receive, send)
            return
        entered = time.perf_counter()
        headers = dict(scope["headers"])
        if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        etag = str(int(headers[b"if-match"]) + 1).encode()
        answer = {"config": json.loads(body), "entered": entered, "left": time.perf_counter()}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"etag", etag)],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    uvicorn.run(bare, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


# -- one round of each floor ------------------------------------------------------------------
class Floors:
    def __init__(self, tmp: Path) -> None:
        self.key = SigningKey.generate()
        self.trust = TrustStore([self.key.public_key])
        self.data_key = derive_data_key(secrets.token_bytes(32), SERVICE)
        self.db = sqlite3.connect(tmp / "floor.db", isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            self.db.execute(pragma)
        self.db.execute("CREATE TABLE versions (version INTEGER PRIMARY KEY, envelope BLOB)")
        self.samples: dict[str, list[float]] = {}
        self.document = SttConfig().model_dump(mode="json")

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def local(self, version: int) -> bytes:
        """validate, encrypt + sign, commit: the in-process steps of one write."""
        start = time.perf_counter()
        model = SttConfig.model_validate(
            {**self.document, "initial_prompt": f"floor write {version}"}
        )
        validated = time.perf_counter()
        values = encrypt_secrets(model, service=SERVICE, key=self.data_key)
        encrypted = time.perf_counter()
        envelope = sign_envelope(service=SERVICE, version=version, epoch=1, config=values,
                                 key=self.key)  # fmt: skip
        signed = time.perf_counter()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO versions VALUES (?, ?)", (version, envelope))
        self.db.execute("COMMIT")
        committed = time.perf_counter()
        self.add("validate", validated - start)
        self.add("encrypt", encrypted - validated)
        self.add("sign", signed - encrypted)
        self.add("commit", committed - signed)
        # verify: these bytes were never parsed in this process (no cached verdict)
        start = time.perf_counter()
        verify_envelope(envelope, trust=self.trust, service=SERVICE)
        self.add("verify", time.perf_counter() - start)
        return envelope


async def _timed_put(
    http: httpx.AsyncClient, path: str, i: int, etag: int
) -> tuple[float, float, int]:
    """One PUT: (client send -> handler, handler return -> client has it, the new ETag)."""
    sent = time.perf_counter()
    resp = await http.put(
        path, json={"initial_prompt": f"floor write {i}"}, headers={"If-Match": str(etag)}
    )
    received = time.perf_counter()
    resp.raise_for_status()
    answer = resp.json()
    return answer["entered"] - sent, received - answer["left"], int(resp.headers["etag"])


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data = tmp / "data"
    mqtt_port, http_port = free_port(), free_port()
    init_data_dir(data, mqtt_port=mqtt_port, services=["stt", "orchestrator"])
    broker = MosquittoProcess(BrokerFiles(data / "mosquitto"), port=mqtt_port)
    broker.start()

    passwords = {
        user: (data / "secrets" / "mqtt" / f"{user}.password").read_text().strip()
        for user in ("manager", "debug")
    }

    def endpoint(user: str) -> MqttEndpoint:
        return MqttEndpoint("127.0.0.1", mqtt_port, user, passwords[user])

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, str(SCRIPT), "--serve-http", str(http_port)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            proc = stack.enter_context(_process(argv, env, tmp / "http.log"))
            base = f"http://127.0.0.1:{http_port}"
            await _wait_http(f"{base}/readyz", 30, proc)
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"})
            )
            etcd_http = await stack.enter_async_context(etcd(tmp))
            publisher = await stack.enter_async_context(
                aiomqtt.Client(**endpoint("manager").client_kwargs())
            )
            subscriber = await stack.enter_async_context(
                aiomqtt.Client(**endpoint("debug").client_kwargs())
            )
            await subscriber.subscribe(updated_topic(SERVICE), qos=1)
            delivered: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

            async def listen() -> None:
                async for message in subscriber.messages:
                    assert isinstance(message.payload, bytes)
                    delivered.put_nowait((message.payload, time.perf_counter()))

            group = await stack.enter_async_context(asyncio.TaskGroup())
            listener = group.create_task(listen())
            key = b"bench/floor"
            watch = EtcdWatch(etcd_http, key)
            watcher = group.create_task(watch.run())
            await asyncio.wait_for(watch.created.wait(), 10)

            floors = Floors(tmp)
            etag = 0
            for i in range(args.warmup + args.rounds):
                record = i >= args.warmup
                # http: a trivial PUT, then the same on a bare ASGI callable
                http_in, http_out, etag = await _timed_put(
                    http, f"/api/v1/configs/{SERVICE}", i, etag
                )
                bare_in, bare_out, _ = await _timed_put(http, f"/bare/{SERVICE}", i, etag)
                # in-process steps
                envelope = floors.local(i + 1)
                # mosquitto: QoS 1 retained publish, to PUBACK and to the subscriber
                start = time.perf_counter()
                await publisher.publish(updated_topic(SERVICE), envelope, qos=1, retain=True)
                acked = time.perf_counter()
                while True:
                    payload, at = await asyncio.wait_for(delivered.get(), 10)
                    if payload == envelope:
                        break
                # etcd: put until acknowledged and until watched
                value = json.dumps({"initial_prompt": f"floor write {i}", "version": i})
                e_sent = time.perf_counter()
                put = await etcd_http.post(
                    "/v3/kv/put", json={"key": _b64(key), "value": _b64(value.encode())}
                )
                e_acked = time.perf_counter()
                put.raise_for_status()
                got = await asyncio.wait_for(watch.events.get(), 10)
                e_watched = time.perf_counter()
                assert got == value.encode()
                if record:
                    floors.add("http_in", http_in)
                    floors.add("http_out", http_out)
                    floors.add("bare_http_in", bare_in)
                    floors.add("bare_http_out", bare_out)
                    floors.add("publish_puback", acked - start)
                    floors.add("publish_delivery", at - start)
                    floors.add("etcd_put_watch", e_watched - e_sent)
                    floors.add("etcd_put_ack", e_acked - e_sent)
                else:
                    floors.samples.clear()
            listener.cancel()
            watcher.cancel()
    finally:
        broker.stop()
    return report(floors.samples)


PUT_TO_CALLBACK = ("http_in", "validate", "encrypt", "sign", "commit", "publish_delivery",
                   "verify")  # fmt: skip
ACKNOWLEDGED = ("http_in", "validate", "encrypt", "sign", "commit", "publish_puback", "http_out")


def report(samples: dict[str, list[float]]) -> dict[str, Any]:
    steps = {
        name: {"p50_ms": statistics.median(v) * 1000, "p99_ms": percentile(v, 0.99) * 1000}
        for name, v in samples.items()
    }

    # Sums of the per-round totals (not of medians), so p50 and p99 are of one distribution.
    def total(names: tuple[str, ...]) -> list[float]:
        return [sum(parts) for parts in zip(*(samples[n] for n in names), strict=True)]

    to_callback, acknowledged = total(PUT_TO_CALLBACK), total(ACKNOWLEDGED)
    watch, ack = samples["etcd_put_watch"], samples["etcd_put_ack"]
    return {
        "steps": steps,
        "put_to_callback_floor": {
            "steps": list(PUT_TO_CALLBACK),
            "p50_ms": statistics.median(to_callback) * 1000,
            "p99_ms": percentile(to_callback, 0.99) * 1000,
            "ratio_vs_etcd_put_watch": {
                "p50": statistics.median(to_callback) / statistics.median(watch),
                "p99": percentile(to_callback, 0.99) / percentile(watch, 0.99),
            },
        },
        "acknowledged_write_floor": {
            "steps": list(ACKNOWLEDGED),
            "p50_ms": statistics.median(acknowledged) * 1000,
            "writes_per_s": 1 / statistics.median(acknowledged),
            "etcd_puts_per_s": 1 / statistics.median(ack),
            "ratio_vs_etcd": statistics.median(ack) / statistics.median(acknowledged),
        },
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"{'step':<20}{'p50 ms':>10}{'p99 ms':>10}")
    for name, s in r["steps"].items():
        print(f"{name:<20}{s['p50_ms']:>10.3f}{s['p99_ms']:>10.3f}")
    f = r["put_to_callback_floor"]
    ratio = f["ratio_vs_etcd_put_watch"]
    print(f"\nPUT -> callback floor ({' + '.join(f['steps'])}):")
    print(f"  {f['p50_ms']:.2f} / {f['p99_ms']:.2f} ms p50/p99 = x{ratio['p50']:.2f} / "
          f"x{ratio['p99']:.2f} etcd's put -> watch (goal 1: <= 1.0 of the real path)")  # fmt: skip
    a = r["acknowledged_write_floor"]
    print(f"acknowledged write floor ({' + '.join(a['steps'])}):")
    print(f"  {a['writes_per_s']:.0f} writes/s against etcd's {a['etcd_puts_per_s']:.0f} puts/s "
          f"= x{a['ratio_vs_etcd']:.2f} (goal 2 asks >= 1.0 of the real path)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--serve-http", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_http is not None:
        return serve_http(args.serve_http)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-floors-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    result["args"] = {"rounds": args.rounds, "warmup": args.warmup}
    print_table(result)
    out = REPO / "bench" / "results" / "floors.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
