"""Latest-wins benchmark (issue 14, goal 4): a slow callback and rapid updates.

Run: ``.venv/bin/python bench/bench_latest_wins.py [--callback 2.0] [--updates 10]``
(or ``python -m bench latest_wins``).

Starts mosquitto (project config, auth and ACLs) on a free loopback port and two
ConfigLibrary instances of one service in this process, each with its own LKG folder:

* **slow**: its callback takes ``--callback`` seconds (an async callback sleeping, then a
  plain function blocking its thread with ``time.sleep``: both kinds are measured);
* **fast**: a plain callback that only records the time.

The ``manager`` user publishes one version (the slow callback starts), then the rest of
``--updates`` versions back to back. Measured:

* the newest version's callback starts how long after its publish (goal: within one
  callback duration), and it is in force (LKG written, report sent) after how long;
* which versions the slow library applied (the intermediate ones are skipped);
* the fast library's publish → callback of the newest version: a slow or blocking
  callback in another library of the process does not delay it.

Writes ``bench/results/latest_wins.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config_lib import (  # noqa: E402
    ConfigChange,
    ConfigLibrary,
    LibrarySettings,
    MqttEndpoint,
    SigningKey,
    TrustStore,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
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


async def scenario(
    endpoint: Callable[[str], MqttEndpoint],
    folder: Path,
    kind: str,
    duration: float,
    updates: int,
    base_version: int,
) -> dict[str, Any]:
    signing = SigningKey.generate()
    trust = TrustStore([signing.public_key])
    data_key = derive_data_key(secrets.token_bytes(32), SERVICE)

    def signed(version: int) -> bytes:
        values = encrypt_secrets(
            SttConfig(beam_size=1 + version % 10), service=SERVICE, key=data_key
        )
        return sign_envelope(service=SERVICE, version=version, epoch=1, config=values, key=signing)

    def library(name: str) -> ConfigLibrary[SttConfig]:
        settings = LibrarySettings(
            lkg_dir=folder / kind / name,
            mqtt_url=None,
            instance_id=f"bench-{name}",
            initial_wait=5.0,
            fresh_wait=0.0,  # no manager here: no freshness record
            env_fallback=False,
        )
        return ConfigLibrary(
            service=SERVICE,
            model=SttConfig,
            settings=settings,
            trust=trust,
            data_keys=[data_key],
            endpoint=endpoint(SERVICE),
        )

    started: dict[int, float] = {}
    fast_at: dict[int, float] = {}
    first = base_version + 1
    newest = base_version + updates
    envelopes = {v: signed(v) for v in range(base_version, newest + 1)}

    async def slow_async(change: ConfigChange[SttConfig]) -> None:
        started[change.version or 0] = time.perf_counter()
        await asyncio.sleep(duration)

    def slow_blocking(change: ConfigChange[SttConfig]) -> None:
        started[change.version or 0] = time.perf_counter()
        time.sleep(duration)  # blocks its thread: the library's callback thread

    def fast(change: ConfigChange[SttConfig]) -> None:
        fast_at[change.version or 0] = time.perf_counter()

    async with aiomqtt.Client(**endpoint("manager").client_kwargs()) as publisher:
        await publisher.publish(updated_topic(SERVICE), envelopes[base_version], qos=1, retain=True)
        async with library("slow") as slow, library("fast") as quick:
            slow.on_change(slow_async if kind == "async" else slow_blocking)
            quick.on_change(fast)
            sent: dict[int, float] = {}
            for version in range(first, newest + 1):
                sent[version] = time.perf_counter()
                await publisher.publish(
                    updated_topic(SERVICE), envelopes[version], qos=1, retain=True
                )
            await quick.wait_for_version(newest, timeout=10)
            await slow.wait_for_version(newest, timeout=duration * updates + 10)
            in_force = time.perf_counter()
            applied = sorted(started)
            assert applied[-1] == newest, applied
            assert slow.metrics.rejected_total == 0, slow.metrics.snapshot()
            coalesced = slow.metrics.coalesced
    return {
        "callback": kind,
        "callback_s": duration,
        "updates": updates,
        "slow_applied_versions": applied,
        "slow_coalesced": coalesced,
        "newest_publish_to_callback_start_s": started[newest] - sent[newest],
        "newest_publish_to_in_force_s": in_force - sent[newest],
        "goal_s": duration,
        "fast_newest_publish_to_callback_ms": (fast_at[newest] - sent[newest]) * 1000,
        "fast_versions_seen": len(fast_at),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    users = {u: secrets.token_urlsafe(16) for u in ("manager", SERVICE)}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-latest-") as tmp:
        files = BrokerFiles(Path(tmp) / "mosquitto")
        port = free_port()
        render_broker_files(files, port=port)
        write_password_file(files.password_file, users)
        process = MosquittoProcess(files, port=port)
        process.start()
        try:

            def endpoint(user: str) -> MqttEndpoint:
                return MqttEndpoint(process.host, process.port, user, users[user])

            base = 1
            for kind in ("async", "blocking"):
                results.append(
                    await scenario(endpoint, Path(tmp), kind, args.callback, args.updates, base)
                )
                base += args.updates + 1
        finally:
            process.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_latest_wins")
    parser.add_argument("--callback", type=float, default=2.0, help="callback duration (s)")
    parser.add_argument("--updates", type=int, default=10, help="versions published")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    for r in results:
        start = r["newest_publish_to_callback_start_s"]
        verdict = "meets" if start <= r["goal_s"] else "MISSES"
        print(
            f"{r['callback']:>8} {r['callback_s']:.1f} s callback, {r['updates']} updates: "
            f"applied {r['slow_applied_versions']} ({r['slow_coalesced']} skipped)"
        )
        print(
            f"         goal 4: newest's callback started {start:.2f} s after its publish "
            f"(goal <= {r['goal_s']:.1f} s, one callback) {verdict}; in force after "
            f"{r['newest_publish_to_in_force_s']:.2f} s"
        )
        print(
            f"         another library in the process: newest applied "
            f"{r['fast_newest_publish_to_callback_ms']:.1f} ms after its publish "
            f"({r['fast_versions_seen']} versions seen)"
        )
    out = REPO / "bench" / "results" / "latest_wins.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
