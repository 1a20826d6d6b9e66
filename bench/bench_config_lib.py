"""ConfigLibrary benchmark: publish -> callback latency against the raw broker round trip,
and the in-process cost of verify + decrypt + validate + apply.

Run: ``.venv/bin/python bench/bench_config_lib.py [--samples 300] [--pipeline 3000]``
(or ``make bench`` / ``python -m bench config_lib``).

It starts its own mosquitto (project config, auth and ACLs on) on a free loopback port
and, in the same run:

* **raw**: a plain aiomqtt client (``debug`` user) subscribed to a config topic receives
  a signed envelope published by the ``manager`` (QoS 1, retained): publish -> receive.
* **library**: a ConfigLibrary (service user) subscribed to its own topic; the same kind
  of envelope, a new version each time: publish -> the ``on_change`` callback has run
  (verify, decrypt, validate, apply included), and -> the LKG file is fsynced and the
  applied report acknowledged (the next sample starts only then).
  Raw and library samples alternate so that machine noise hits both alike.
* **pipeline**: ``ConfigState.offer`` (verify + decrypt + validate + all-or-nothing
  apply with one callback) on pre-signed envelopes, in-process, no broker and no disk;
  plus the verify / decrypt / validate steps alone.

Prints a short table (medians, p99, ratio library/raw) and writes
``bench/results/config_lib.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from config_lib import (
    ConfigChange,
    ConfigLibrary,
    ConfigPipeline,
    DataKey,
    LibrarySettings,
    MqttEndpoint,
    SigningKey,
    TrustStore,
    decrypt_secrets,
    derive_data_key,
    encrypt_secrets,
    sign_envelope,
    updated_topic,
    verify_envelope,
)
from config_lib._state import ConfigState
from config_manager.broker import (
    BrokerFiles,
    MosquittoProcess,
    free_port,
    render_broker_files,
    write_password_file,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 5.0  # per message; the whole run is bounded by samples x this


class Vad(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(default=0.5, ge=0, le=1)
    min_silence_ms: int = Field(default=500, ge=0)
    speech_pad_ms: int = Field(default=200, ge=0)


class BenchConfig(BaseModel):
    """About the size of a worker's config: a dozen fields, a nested model, one secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_name: str = "tiny.en"
    language: str = "en"
    beam_size: int = Field(default=5, ge=1, le=20)
    best_of: int = Field(default=5, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    compute_type: str = "int8"
    chunk_seconds: float = Field(default=8.0, gt=0)
    overlap_seconds: float = Field(default=1.0, ge=0)
    word_timestamps: bool = True
    vad: Vad = Vad()
    api_token: SecretStr = SecretStr("bench-secret-token")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }


class Keys:
    def __init__(self, service: str) -> None:
        self.signing = SigningKey.generate()
        self.trust = TrustStore([self.signing.public_key])
        self.data_key: DataKey = derive_data_key(secrets.token_bytes(32), service)

    def envelope(self, service: str, version: int) -> bytes:
        config = BenchConfig(beam_size=1 + version % 20, temperature=version % 7 / 10)
        values = encrypt_secrets(config, service=service, key=self.data_key)
        return sign_envelope(
            service=service, version=version, epoch=1, config=values, key=self.signing
        )


# -- broker round trips -----------------------------------------------------------------


async def broker_latency(
    folder: Path, samples: int, keys: Keys, service: str
) -> dict[str, dict[str, float]]:
    users = {u: secrets.token_urlsafe(16) for u in ("manager", "debug", service)}
    files = BrokerFiles(folder)
    port = free_port()
    render_broker_files(files, port=port)
    write_password_file(files.password_file, users)
    process = MosquittoProcess(files, port=port)
    process.start()
    try:

        def endpoint(user: str) -> MqttEndpoint:
            return MqttEndpoint(process.host, process.port, user, users[user])

        return await _measure(endpoint, samples, keys, service)
    finally:
        process.stop()


async def _measure(
    endpoint: Callable[[str], MqttEndpoint], samples: int, keys: Keys, service: str
) -> dict[str, dict[str, float]]:
    raw_topic = updated_topic(service + "-raw")
    settings = LibrarySettings(
        mqtt_url=None,
        lkg_dir=Path(tempfile.mkdtemp(prefix="bench-lkg-")),
        instance_id="bench",
        initial_wait=2.0,
        fresh_wait=0.0,  # raw envelopes, no manager: no freshness record
    )
    raw_times: list[float] = []
    lib_times: list[float] = []
    done_times: list[float] = []
    raw_payload = keys.envelope(service + "-raw", 1)
    async with (
        aiomqtt.Client(**endpoint("manager").client_kwargs()) as publisher,
        aiomqtt.Client(**endpoint("debug").client_kwargs()) as raw_client,
        ConfigLibrary(
            service=service,
            model=BenchConfig,
            settings=settings,
            trust=keys.trust,
            data_keys=[keys.data_key],
            endpoint=endpoint(service),
        ) as cfg,
    ):
        await raw_client.subscribe(raw_topic, qos=1)
        loop = asyncio.get_running_loop()
        applied: asyncio.Future[float] = loop.create_future()

        # async: it runs on the event loop (a plain function would run on the library's
        # callback thread, where an asyncio future must not be touched)
        async def on_change(change: ConfigChange[BenchConfig]) -> None:
            if not applied.done():
                applied.set_result(time.perf_counter())

        cfg.on_change(on_change)
        incoming = raw_client.messages
        warmup = 20
        for i in range(warmup + samples):
            # raw round trip
            t0 = time.perf_counter()
            await publisher.publish(raw_topic, raw_payload, qos=1, retain=True)
            await asyncio.wait_for(anext(incoming), TIMEOUT)
            t_raw = time.perf_counter() - t0
            # through the library (a new version each time)
            payload = keys.envelope(service, i + 1)
            applied = loop.create_future()
            t0 = time.perf_counter()
            await publisher.publish(updated_topic(service), payload, qos=1, retain=True)
            t_lib = await asyncio.wait_for(applied, TIMEOUT) - t0
            # Then the LKG write (fsync) and the applied report (PUBACK) finish; the next
            # sample starts only after that, so it does not queue behind this one's IO.
            await cfg.wait_for_version(i + 1, timeout=TIMEOUT)
            t_done = time.perf_counter() - t0
            if i >= warmup:
                raw_times.append(t_raw)
                lib_times.append(t_lib)
                done_times.append(t_done)
        assert cfg.metrics.rejected_total == 0, cfg.metrics.snapshot()
    return {
        "raw_round_trip": summary(raw_times),
        "library_publish_to_callback": summary(lib_times),
        "library_publish_to_lkg+report": summary(done_times),
    }


# -- the in-process pipeline ------------------------------------------------------------


async def pipeline_cost(count: int, keys: Keys, service: str) -> dict[str, dict[str, float]]:
    envelopes = [keys.envelope(service, v) for v in range(1, count + 1)]
    pipeline = ConfigPipeline(
        service=service, model=BenchConfig, trust=keys.trust, data_keys=[keys.data_key]
    )
    state = ConfigState(pipeline, current=BenchConfig(), source="defaults")
    seen = 0

    def callback(change: ConfigChange[BenchConfig]) -> None:
        nonlocal seen
        seen += 1

    state.on_change(callback)
    offer: list[float] = []
    for raw in envelopes:
        t0 = time.perf_counter()
        decision = await state.offer(raw)
        offer.append(time.perf_counter() - t0)
        assert decision.status == "applied", decision
    assert seen == count

    verify: list[float] = []
    decrypt: list[float] = []
    validate: list[float] = []
    for raw in envelopes:
        t0 = time.perf_counter()
        env = verify_envelope(raw, trust=keys.trust, service=service, last=(0, 0))
        t1 = time.perf_counter()
        values = decrypt_secrets(env.config, service=service, keys=[keys.data_key])
        t2 = time.perf_counter()
        BenchConfig.model_validate(values)
        t3 = time.perf_counter()
        verify.append(t1 - t0)
        decrypt.append(t2 - t1)
        validate.append(t3 - t2)
    return {
        "verify+decrypt+validate+apply": summary(offer),
        "verify (parse, canonicalise, Ed25519)": summary(verify),
        "decrypt secrets (AES-256-GCM)": summary(decrypt),
        "validate (pydantic)": summary(validate),
    }


def print_table(results: dict[str, Any]) -> None:
    rows: list[tuple[str, dict[str, float]]] = [
        *results["broker"].items(),
        *results["pipeline"].items(),
    ]
    print(f"\n{'measure':<42} {'n':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for name, s in rows:
        print(f"{name:<42} {s['n']:>6} {s['p50_ms']:>9.3f} {s['p99_ms']:>9.3f}")
    print(
        f"\nlibrary / raw round trip: p50 x{results['ratio_p50']:.2f}, "
        f"p99 x{results['ratio_p99']:.2f}"
    )
    p50 = results["pipeline"]["verify+decrypt+validate+apply"]["p50_ms"]
    verdict = "meets" if p50 <= 0.4 else "MISSES"
    print(f"pipeline p50 {p50:.3f} ms {verdict} the 0.4 ms target; envelope {results['bytes']} B")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    service = f"bench-{secrets.token_hex(3)}"
    keys = Keys(service)
    with tempfile.TemporaryDirectory(prefix="bench-config-lib-") as tmp:
        broker = await broker_latency(Path(tmp), args.samples, keys, service)
    pipeline = await pipeline_cost(args.pipeline, keys, service)
    raw = broker["raw_round_trip"]
    lib = broker["library_publish_to_callback"]
    return {
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "bytes": len(keys.envelope(service, 1)),
        "broker": broker,
        "pipeline": pipeline,
        "ratio_p50": lib["p50_ms"] / raw["p50_ms"],
        "ratio_p99": lib["p99_ms"] / raw["p99_ms"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_config_lib")
    parser.add_argument("--samples", type=int, default=300, help="broker round trips of each kind")
    parser.add_argument("--pipeline", type=int, default=3000, help="in-process messages")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print_table(results)
    out = REPO / "bench" / "results" / "config_lib.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
