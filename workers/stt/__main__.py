"""``python -m workers.stt``: run the STT worker with its signed, hot-applied config.

Environment: ``STT_*`` for the worker process (see ``SttWorkerSettings``),
``CONFIG_LIB_*`` for the config library (broker, trust store, data key, LKG folder),
``CONFIG_STT_*`` for the env fallback of the config itself (when no signed config exists).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass

from config_lib import ConfigLibrary, KeyFileError, LibrarySettings, NoConfig
from workers.stt.config import SttConfig
from workers.stt.settings import SttWorkerSettings

SERVICE = "stt"
_log = logging.getLogger("workers.stt")


@dataclass(frozen=True)
class _CatchUp:
    """A change for a config that came in while the worker was starting."""

    new: SttConfig
    version: int | None


async def run(settings: SttWorkerSettings, library: LibrarySettings) -> None:
    """Open the config library, start the worker on its config, hot-apply every change."""
    from workers.stt.worker import SttWorker  # numpy and faster-whisper load only from here

    async with ConfigLibrary(service=SERVICE, model=SttConfig, settings=library) as cfg:
        endpoint = settings.endpoint() or library.endpoint(SERVICE)
        if endpoint is None:
            raise SystemExit("no broker configured: set STT_MQTT_URL or CONFIG_LIB_MQTT_URL")
        _log.info(
            "starting STT worker: config version=%s source=%s model=%r compute_type=%s",
            cfg.version,
            cfg.source,
            cfg.current.model,
            cfg.current.compute_type,
        )
        async with SttWorker(
            endpoint=endpoint,
            instance_id=settings.instance_id or cfg.instance_id,
            config=cfg.current,
            config_version=cfg.version,
            settings=settings,
        ) as worker:
            unsubscribe = cfg.on_change(worker.apply_config)
            try:
                # A change applied while the model was loading reached no callback yet;
                # nothing awaits between on_change() and this check, so none is missed.
                if cfg.current != worker.config or cfg.version != worker.config_version:
                    await worker.apply_config(_CatchUp(cfg.current, cfg.version))
                await worker.serve_forever()
            finally:
                unsubscribe()


async def _serve(settings: SttWorkerSettings, library: LibrarySettings) -> None:
    """Run until SIGTERM/SIGINT, then close cleanly (the library reports ``offline``)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        _log.info("%s received: stopping", sig.name)
        task.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    with contextlib.suppress(asyncio.CancelledError):
        await run(settings, library)
    _log.info("STT worker stopped")


def main() -> int:
    # huggingface_hub reads this when first imported: nothing may ever be downloaded.
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = SttWorkerSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    library = LibrarySettings()
    try:
        asyncio.run(_serve(settings, library))
    except (KeyFileError, NoConfig) as exc:
        print(
            f"stt worker: cannot start: {exc}. Run `python -m config_manager init` "
            "or point CONFIG_LIB_DATA_DIR (or CONFIG_LIB_TRUST_STORE) at the keys.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
