"""``python -m workers.orchestrator``: run the orchestrator, or stream a file through it.

::

    python -m workers.orchestrator                  # run the service (ORCHESTRATOR_* env)
    python -m workers.orchestrator transcribe FILE [--reference TEXT] [--realtime]
                                                   [--mqtt-url URL] [--timeout S]
                                                   [--answer-timeout S]

``transcribe`` reports a bad input file, an unreachable broker or a stack that does not
answer with one ``error: ...`` line on stderr and a non-zero exit code (1 bad input,
2 broker, 3 no answer in time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from config_lib import MqttEndpoint
from workers.common.names import InvalidNameError, validate_session
from workers.orchestrator.config import OrchestratorConfig
from workers.orchestrator.settings import OrchestratorSettings

_log = logging.getLogger("workers.orchestrator")


class TranscribeSettings(BaseSettings):
    """Defaults of the ``transcribe`` command (``ORCHESTRATOR_CLIENT_*``); flags win."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_CLIENT_", extra="forbid")

    mqtt_url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL of a user that may write audio/input/# and read "
        "transcripts/final/# (the 'client' user of the project's ACL).",
    )
    mqtt_username: str = Field("client", description="User when the URL names none.")
    mqtt_password_file: Path = Field(
        Path("data/secrets/mqtt/client.password"),
        description="Password file read when the URL has no password (where `make run` writes it).",
    )

    def endpoint(self, url: str | None) -> MqttEndpoint:
        endpoint = MqttEndpoint.from_url(url or self.mqtt_url)
        username = endpoint.username or self.mqtt_username
        password = endpoint.password
        if password is None and self.mqtt_password_file.is_file():
            password = self.mqtt_password_file.read_text(encoding="utf-8").strip()
        return endpoint.with_credentials(username, password)

    frame_s: float = Field(0.5, gt=0, le=10, description="Audio per input frame (s).")
    timeout_s: float = Field(
        600.0, gt=0, description="How long to wait for the final transcript (s)."
    )
    answer_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Give up when no STT worker has answered this many seconds after the "
        "audio was sent (nothing serving the session: is the stack running?).",
    )


# -- service -------------------------------------------------------------------------------
async def run_service(settings: OrchestratorSettings) -> None:
    from config_lib import ConfigLibrary, LibrarySettings
    from workers.orchestrator.service import Orchestrator

    library_settings = LibrarySettings()
    endpoint = settings.endpoint() or library_settings.endpoint("orchestrator")
    if endpoint is None:
        raise SystemExit("no broker: set ORCHESTRATOR_MQTT_URL or CONFIG_LIB_MQTT_URL")
    async with ConfigLibrary(
        service="orchestrator",
        model=OrchestratorConfig,
        settings=library_settings,
        instance_id=settings.instance_id,
    ) as cfg:
        if settings.instance_id is None:  # one id for the config reports and the work client
            settings = settings.model_copy(update={"instance_id": cfg.instance_id})
        _log.info("chunking config version %s from %s: %s", cfg.version, cfg.source, cfg.current)
        async with Orchestrator(
            endpoint=endpoint,
            settings=settings,
            config=cfg.current,
            config_version=cfg.version or 0,
        ) as orchestrator:
            unsubscribe = cfg.on_change(orchestrator.apply_config)
            try:
                await orchestrator.serve_forever()
            finally:
                unsubscribe()


async def _serve(settings: OrchestratorSettings) -> None:
    """Run until SIGTERM/SIGINT, then close cleanly (the library reports ``offline``)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run_service(settings)
    _log.info("orchestrator stopped")


# -- transcribe ----------------------------------------------------------------------------
DIM, RESET, CLEAR_EOL = "\x1b[2m", "\x1b[0m", "\x1b[K"


def live_transcript(doc: dict[str, Any], room: int) -> str:
    """The tail of a merged transcript that fits in ``room`` columns: final words as they
    are, interim words (not decided yet, replaced by the next document) dimmed."""
    final = str(doc.get("final_text", doc.get("text", "")))
    interim = str(doc.get("interim_text", ""))
    if room <= 0:
        return ""
    if len(interim) >= room:
        return DIM + "…" + interim[-(room - 1) :] + RESET
    final_room = room - len(interim) - (1 if interim and final else 0)
    if len(final) > final_room:
        final = "…" + final[-(final_room - 1) :] if final_room > 1 else ""
    sep = " " if interim and final else ""
    return final + sep + (DIM + interim + RESET if interim else "")


class _ProgressBar:
    """One line on stderr: audio sent and transcribed, then the transcript's tail with the
    interim words greyed; redrawn in place as documents arrive (a terminal only)."""

    def __init__(self, total_s: float, width: int = 20) -> None:
        self.total_s = max(total_s, 1e-9)
        self.width = width
        self.enabled = sys.stderr.isatty()
        self._last = ""
        self._doc: dict[str, Any] | None = None

    def __call__(self, sent_s: float, done_s: float, doc: dict[str, Any] | None) -> None:
        if doc is not None:
            self._doc = doc
        done = min(1.0, done_s / self.total_s)
        sent = min(1.0, sent_s / self.total_s)
        filled = int(done * self.width)
        queued = max(0, int(sent * self.width) - filled)
        bar = "█" * filled + "▒" * queued + "·" * (self.width - filled - queued)
        status = f"[{bar}] {done_s:5.1f}/{self.total_s:.1f} s"
        if not self.enabled:  # in a log: one line per tenth of progress
            key = f"{int(sent * 10)}/{int(done * 10)}"
            if key != self._last:
                self._last = key
                sys.stderr.write(f"{status} transcribed, {sent_s:.1f} s sent\n")
                sys.stderr.flush()
            return
        columns = shutil.get_terminal_size((100, 20)).columns
        text = live_transcript(self._doc, columns - len(status) - 3) if self._doc else ""
        line = f"\r{status} │ {text}{CLEAR_EOL}"
        if line != self._last:
            self._last = line
            sys.stderr.write(line)
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class InputError(Exception):
    """A file given to ``transcribe`` cannot be used; the message is the one line shown."""


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {str(path)!r} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise InputError(f"cannot read {what} {str(path)!r}: {reason}") from None


async def transcribe(args: argparse.Namespace, settings: TranscribeSettings) -> int:
    import aiomqtt

    from workers.orchestrator.audio import AudioLoadError, load_pcm16
    from workers.orchestrator.client import NoAnswerError, stream_audio
    from workers.orchestrator.textnorm import word_error_rate

    path = Path(args.file)
    rate = 16000
    try:
        pcm = await asyncio.to_thread(load_pcm16, path, rate)
        reference = (
            await asyncio.to_thread(_read_text, Path(args.reference), "reference file")
            if args.reference
            else None
        )
    except (AudioLoadError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total_s = len(pcm) / rate
    answer_timeout_s = args.answer_timeout or settings.answer_timeout_s
    endpoint = settings.endpoint(args.mqtt_url)
    session = args.session or f"cli-{secrets.token_hex(4)}"
    bar = _ProgressBar(total_s)
    print(
        f"streaming {path.name} ({total_s:.1f} s) as session {session} via {endpoint}",
        file=sys.stderr,
    )
    try:
        async with aiomqtt.Client(**endpoint.client_kwargs(), identifier=session) as client:
            result = await stream_audio(
                client,
                session,
                pcm,
                sample_rate=rate,
                frame_s=settings.frame_s,
                realtime=args.realtime,
                timeout_s=args.timeout or settings.timeout_s,
                answer_timeout_s=answer_timeout_s,
                progress=bar,
            )
    except aiomqtt.MqttError as exc:
        bar.close()
        print(f"error: cannot reach the broker at {endpoint}: {exc}", file=sys.stderr)
        return 2
    except NoAnswerError as exc:
        bar.close()
        print(
            f"error: {exc}: are the orchestrator and the STT worker running (make run)? "
            "(wait longer with --answer-timeout)",
            file=sys.stderr,
        )
        return 3
    except TimeoutError:
        bar.close()
        print(
            "error: no final transcript in time: are the orchestrator and the STT worker running?",
            file=sys.stderr,
        )
        return 3
    bar.close()
    doc = result.final
    print(doc["text"])
    versions = doc.get("config_versions", [])
    print(
        f"\n{len(doc['words'])} words, {len(doc['chunks'])} chunks, config version(s) {versions}",
        file=sys.stderr,
    )
    if reference is not None:
        print(f"WER: {word_error_rate(reference, doc['text']):.2%}")
    return 0


def _session_arg(text: str) -> str:
    """``--session``: a valid session name, else a usage error naming the rule."""
    try:
        return validate_session(text)
    except InvalidNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers.orchestrator")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the orchestrator service (the default)")
    t = sub.add_parser("transcribe", help="stream a WAV/FLAC file through the running stack")
    t.add_argument("file", help="audio file (any rate and channels; resampled to 16 kHz)")
    t.add_argument("--reference", help="text file with the reference transcript: print WER")
    t.add_argument("--realtime", action="store_true", help="send audio at the speed of speech")
    t.add_argument("--mqtt-url", help="broker URL (default ORCHESTRATOR_CLIENT_MQTT_URL)")
    t.add_argument(
        "--session",
        type=_session_arg,
        help="session id: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit "
        "(default: cli-<random>)",
    )
    t.add_argument("--timeout", type=float, help="seconds to wait for the final transcript")
    t.add_argument(
        "--answer-timeout",
        type=float,
        help="give up when no STT worker answered this many seconds after the audio was sent "
        "(default ORCHESTRATOR_CLIENT_ANSWER_TIMEOUT_S, 20)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "transcribe":
        logging.basicConfig(level=logging.WARNING)
        try:
            return asyncio.run(transcribe(args, TranscribeSettings()))
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
    settings = OrchestratorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
