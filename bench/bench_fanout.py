"""Fan-out benchmark: one signed config to N subscribers, N applied reports back.

Run: ``.venv/bin/python bench/bench_fanout.py [--sizes 50,200,500] [--rounds 5]``
(or ``python -m bench fanout``). Feeds the capacity model in docs/scale.md.

Starts mosquitto with the project's config and ACL on a free loopback port, connects N
plain aiomqtt subscribers (user ``stt``, as service instances do) to ``config/updated/stt``
and one ``manager`` client to ``config/applied/#``. Each round publishes one real signed
envelope (retained, QoS 1) and measures:

* **fan-out**: from the publish call until the N-th subscriber has the envelope; divided
  by N, the broker's cost per delivery (the subscribers here share one process, so this is
  an upper bound of what the broker needs: separate hosts receive in parallel);
* **verify**: ``verify_envelope`` of that envelope in this process (what every instance
  pays once per update, on its own CPU);
* **fan-in**: each subscriber publishes a 240-byte applied report (QoS 0, retained, as
  ``ConfigLibrary`` does after the first one), until the manager client has all N;
* **broker CPU** per message handled (mosquitto's own CPU time from /proc over the timed
  rounds: 1 publish in, N deliveries, N reports in, N reports out per round);
* **manager ingest**: parsing N reports (``InstanceTracker``) and saving them in one batch
  (``ConfigStore.save_instances`` on a real SQLite file), per report.

Prints medians per N; writes ``bench/results/fanout.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config_lib import (  # noqa: E402 - after the path set-up for `python bench/...`
    AppliedReport,
    MqttEndpoint,
    SigningKey,
    TrustStore,
    applied_topic,
    applied_wildcard,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
    verify_envelope,
)
from config_manager.broker import (  # noqa: E402
    BrokerFiles,
    MosquittoProcess,
    free_port,
    render_broker_files,
    write_password_file,
)
from workers.stt.config import SttConfig  # noqa: E402

SERVICE = "stt"
TIMEOUT = 60.0


async def _round(
    subscribers: list[aiomqtt.Client],
    queues: list[asyncio.Queue[float]],
    manager: aiomqtt.Client,
    reports: asyncio.Queue[float],
    envelope: bytes,
    version: int,
) -> tuple[float, float]:
    start = time.perf_counter()
    await manager.publish(updated_topic(SERVICE), envelope, qos=1, retain=True)
    async with asyncio.timeout(TIMEOUT):
        last = max([await q.get() for q in queues])
    fan_out = last - start
    report = AppliedReport(
        instance="x", service=SERVICE, status="applied", version=version, epoch=1, source="broker"
    )
    start = time.perf_counter()
    for index, client in enumerate(subscribers):
        body = report.stamped().to_bytes()
        await client.publish(applied_topic(SERVICE, f"i{index}"), body, qos=0, retain=True)
    async with asyncio.timeout(TIMEOUT):
        for _ in subscribers:
            last = await reports.get()
    return fan_out, last - start


async def _listen(client: aiomqtt.Client, queue: asyncio.Queue[float]) -> None:
    async for _ in client.messages:
        queue.put_nowait(time.perf_counter())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    size: int, rounds: int, port: int, users: dict[str, str], broker_pid: int
) -> dict[str, Any]:
    def endpoint(user: str) -> MqttEndpoint:
        return MqttEndpoint("127.0.0.1", port, user, users[user])

    key = SigningKey.generate()
    trust = TrustStore([key.public_key])
    data_key = derive_data_key(secrets.token_bytes(32), SERVICE)
    subscribers = [
        aiomqtt.Client(**endpoint(SERVICE).client_kwargs(), timeout=TIMEOUT) for _ in range(size)
    ]
    manager = aiomqtt.Client(**endpoint("manager").client_kwargs(), timeout=TIMEOUT)
    queues: list[asyncio.Queue[float]] = [asyncio.Queue() for _ in subscribers]
    reports: asyncio.Queue[float] = asyncio.Queue()
    fan_out: list[float] = []
    fan_in: list[float] = []
    verify: list[float] = []
    size_bytes = 0
    cpu_start = 0.0
    async with manager:
        for client in subscribers:
            await client.__aenter__()
        try:
            await manager.subscribe(applied_wildcard(SERVICE), qos=0)
            for client in subscribers:
                await client.subscribe(updated_topic(SERVICE), qos=1)
            tasks = [
                asyncio.create_task(_listen(c, q)) for c, q in zip(subscribers, queues, strict=True)
            ]
            tasks.append(asyncio.create_task(_listen(manager, reports)))
            for version in range(1, rounds + 2):
                values = encrypt_secrets(SttConfig(beam_size=1 + version % 5), service=SERVICE,
                                         key=data_key)  # fmt: skip
                envelope = sign_envelope(
                    service=SERVICE, version=version, epoch=1, config=values, key=key
                )
                size_bytes = len(envelope)
                if version == 2:
                    cpu_start = _cpu_seconds(broker_pid)
                out, back = await _round(subscribers, queues, manager, reports, envelope, version)
                start = time.perf_counter()
                verify_envelope(envelope, trust=trust, service=SERVICE)
                if version > 1:  # the first round warms up connections and caches
                    fan_out.append(out)
                    fan_in.append(back)
                    verify.append(time.perf_counter() - start)
            broker_cpu = _cpu_seconds(broker_pid) - cpu_start
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for client in subscribers:
                await client.__aexit__(None, None, None)
    out_p50 = statistics.median(fan_out)
    in_p50 = statistics.median(fan_in)
    return {
        "subscribers": size,
        "envelope_bytes": size_bytes,
        "fan_out_p50_ms": out_p50 * 1000,
        "fan_out_per_delivery_us": out_p50 / size * 1e6,
        "fan_in_p50_ms": in_p50 * 1000,
        "fan_in_per_report_us": in_p50 / size * 1e6,
        "verify_p50_us": statistics.median(verify) * 1e6,
        # Broker CPU per message handled: per round 1 publish in, N out, N reports in,
        # N reports out (to the manager client); PUBACKs included.
        "broker_cpu_per_message_us": broker_cpu / (rounds * (1 + 3 * size)) * 1e6,
    }


async def manager_ingest(size: int, folder: Path) -> dict[str, float]:
    """The manager's side of N reports: parse each (InstanceTracker) and save them in one
    batch (ConfigStore.save_instances, a real SQLite file), per report."""
    from config_manager.instances import InstanceTracker
    from config_manager.store import ConfigStore

    tracker = InstanceTracker()
    bodies = [
        (
            applied_topic(SERVICE, f"i{i}"),
            AppliedReport(instance=f"i{i}", service=SERVICE, status="applied", version=2,
                          epoch=1, source="broker").stamped().to_bytes(),
        )
        for i in range(size)
    ]  # fmt: skip
    start = time.perf_counter()
    for topic, body in bodies:
        tracker.handle(topic, body, time.time())
    parsed = time.perf_counter() - start
    async with ConfigStore(folder / "manager.db") as store:
        saved, removed = tracker.take_changes()
        start = time.perf_counter()
        await store.save_instances(saved, removed)
        stored = time.perf_counter() - start
    return {"parse_us": parsed / size * 1e6, "save_us": stored / size * 1e6}


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One fresh broker per N, so no retained message of a previous N is redelivered."""
    users = {u: secrets.token_urlsafe(16) for u in ("manager", SERVICE)}
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
            files = BrokerFiles(Path(tmp) / "mosquitto")
            port = free_port()
            render_broker_files(files, port=port)
            write_password_file(files.password_file, users)
            process = MosquittoProcess(files, port=port)
            process.start()
            try:
                assert process.pid is not None
                result = await measure(size, args.rounds, port, users, process.pid)
                ingest = await manager_ingest(size, Path(tmp))
                result["manager_parse_per_report_us"] = ingest["parse_us"]
                result["manager_save_per_report_us"] = ingest["save_us"]
                results.append(result)
            finally:
                process.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[50, 200, 500]
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(f"{'N':>5} {'fan-out p50':>12} {'per delivery':>13} {'fan-in p50':>11} "
          f"{'per report':>11} {'verify':>8} {'broker CPU/msg':>15} "
          f"{'mgr parse+save/report':>22}")  # fmt: skip
    for r in results:
        print(
            f"{r['subscribers']:>5} {r['fan_out_p50_ms']:>10.1f}ms "
            f"{r['fan_out_per_delivery_us']:>11.0f}us {r['fan_in_p50_ms']:>9.1f}ms "
            f"{r['fan_in_per_report_us']:>9.0f}us {r['verify_p50_us']:>6.0f}us "
            f"{r['broker_cpu_per_message_us']:>13.1f}us "
            f"{r['manager_parse_per_report_us']:>10.1f}+{r['manager_save_per_report_us']:.1f}us"
        )
    out = REPO / "bench" / "results" / "fanout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
