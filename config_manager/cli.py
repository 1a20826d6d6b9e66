"""``configctl``: the operator's command line for the config manager's HTTP API.

Every command prints one clear line on error (never a traceback) and exits with a code
scripts can rely on (``EXIT_*`` below, documented in docs/manager.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from .ctl_settings import CtlSettings, load_ctl_settings

__all__ = ["app", "main"]

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1  # anything else (bad local input, unexpected answer)
EXIT_USAGE: Final = 2  # wrong flags or arguments (typer/click)
EXIT_CONFLICT: Final = 3  # 412: someone else changed it first
EXIT_NOT_FOUND: Final = 4  # 404
EXIT_INVALID: Final = 5  # 400/409/422: the manager refused the content
EXIT_AUTH: Final = 6  # 401/403
EXIT_VERIFY: Final = 7  # a signature, hash chain or envelope did not verify
EXIT_UNAVAILABLE: Final = 8  # manager or broker unreachable, 5xx, 429

app = typer.Typer(
    name="configctl",
    help="Operate the config manager: read, change, review, undo and verify configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Failure(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    raise Failure(message, code)


# -- settings and HTTP -----------------------------------------------------------------------
class _State:
    flags: dict[str, Any] = {}  # noqa: RUF012 - one CLI invocation per process
    _settings: CtlSettings | None = None

    @classmethod
    def settings(cls) -> CtlSettings:
        if cls._settings is None:
            try:
                cls._settings = load_ctl_settings(**cls.flags)
            except Exception as exc:  # a broken config file or variable: one line
                fail(f"cannot read the settings: {exc}".splitlines()[0])
        return cls._settings


@app.callback()
def _options(
    url: Annotated[
        str | None, typer.Option(help="Manager URL (CONFIGCTL_URL, config file 'url').")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token (CONFIGCTL_TOKEN, config file 'token').")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the API token (CONFIGCTL_TOKEN_FILE).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config file (TOML; CONFIGCTL_CONFIG, default ~/.config/configctl.toml)."
        ),
    ] = None,
) -> None:
    """Options for every command."""
    _State.flags = {"url": url, "token": token, "token_file": token_file, "config": config}


def _token(settings: CtlSettings) -> str | None:
    if settings.token:
        return settings.token
    if settings.token_file is not None:
        try:
            return Path(settings.token_file).expanduser().read_text().strip()
        except OSError as exc:
            fail(f"cannot read the token file {settings.token_file}: {exc.strerror}")
    return None


@contextlib.contextmanager
def _client() -> Iterator[httpx.Client]:
    settings = _State.settings()
    if not settings.url:
        fail("no manager URL: pass --url, set CONFIGCTL_URL or 'url' in the config file")
    token = _token(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(
        base_url=settings.url.rstrip("/"), headers=headers, timeout=settings.timeout_s
    ) as client:
        yield client


_CODES: Final = {
    404: EXIT_NOT_FOUND,
    412: EXIT_CONFLICT,
    401: EXIT_AUTH,
    403: EXIT_AUTH,
    400: EXIT_INVALID,
    409: EXIT_INVALID,
    413: EXIT_INVALID,
    415: EXIT_INVALID,
    422: EXIT_INVALID,
    428: EXIT_INVALID,
    429: EXIT_UNAVAILABLE,
}


def _problem_line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.reason_phrase}"
    if not isinstance(body, dict):
        return f"{response.status_code} {response.reason_phrase}"
    line = f"{response.status_code} {body.get('title', response.reason_phrase)}"
    if body.get("detail"):
        line += f": {body['detail']}"
    if response.status_code == 429 and response.headers.get("retry-after"):
        line += f" (retry after {response.headers['retry-after']} s)"
    return line


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    code = _CODES.get(response.status_code, EXIT_UNAVAILABLE if response.status_code >= 500 else 1)
    fail(_problem_line(response), code)


def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    with _client() as client:
        try:
            return _check(client.request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            fail(f"cannot reach the manager at {client.base_url}: {exc}", EXIT_UNAVAILABLE)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value)) if sys.stdout.isatty() else print(json.dumps(value, indent=2))


def _parse_value(text: str) -> Any:
    """``key=value``: the value as JSON when it reads as JSON (numbers, true, lists...), else
    the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _assignments_to_patch(pairs: list[str]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            fail(f"expected key=value, got {pair!r}", EXIT_USAGE)
        node = patch
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                fail(f"{key}: {part} is set twice", EXIT_USAGE)
            node = child
        node[parts[-1]] = _parse_value(value)
    return patch


def _read_json_arg(text: str) -> Any:
    """A JSON argument, or ``@file`` / ``@-`` (stdin)."""
    if text.startswith("@"):
        name = text[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
        except OSError as exc:
            fail(f"cannot read {name}: {exc.strerror}")
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"not valid JSON: {exc}", EXIT_USAGE)


def _unified(old: Any, new: Any, old_name: str, new_name: str) -> str:
    a = json.dumps(old, indent=2, sort_keys=True).splitlines(keepends=True)
    b = json.dumps(new, indent=2, sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, old_name, new_name))


def _show_diff(text: str) -> None:
    for line in text.splitlines():
        style = (
            "green"
            if line.startswith("+") and not line.startswith("+++")
            else "red"
            if line.startswith("-") and not line.startswith("---")
            else None
        )
        out.print(line, style=style, markup=False)


def _write_result(response: httpx.Response) -> None:
    body = response.json()
    if body.get("changed") is False:
        out.print(f"{body['service']}: unchanged (version {body['version']})", markup=False)
    else:
        out.print(
            f"{body['service']}: version {body['version']} ({body.get('publication')})",
            markup=False,
        )


# -- reading ----------------------------------------------------------------------------------
@app.command()
def get(service: str) -> None:
    """Print a service's current config (secrets masked) as JSON."""
    body = _call("GET", f"/api/v1/configs/{service}").json()
    _print_json(body["values"])
    err.print(f"version {body['version']}, etag {body['etag']}", markup=False)


@app.command()
def history(
    service: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    before: Annotated[int | None, typer.Option(help="Only versions below this one.")] = None,
) -> None:
    """List stored versions, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params["before"] = before
    rows = _call("GET", f"/api/v1/configs/{service}/versions", params=params).json()
    table = Table("version", "epoch", "created_at", "created_by", "change_id")
    for row in rows:
        table.add_row(
            str(row["version"]),
            str(row["epoch"]),
            row["created_at"],
            row["created_by"],
            row["change_id"],
        )
    out.print(table)


@app.command()
def diff(
    service: str,
    from_version: Annotated[int, typer.Argument(metavar="FROM")],
    to_version: Annotated[int | None, typer.Argument(metavar="[TO]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the RFC 6902 patch.")] = False,
) -> None:
    """Show what changed between two versions (TO defaults to the current one)."""
    params: dict[str, Any] = {"from": from_version}
    if to_version is not None:
        params["to"] = to_version
    body = _call("GET", f"/api/v1/configs/{service}/diff", params=params).json()
    if as_json:
        _print_json(body["patch"])
        return
    if not body["patch"]:
        out.print(f"{service}: no difference between {body['from']} and {body['to']}")
        return
    for op in body["patch"]:
        value = "" if "value" not in op else " " + json.dumps(op["value"])
        note = " (secret changed)" if op.get("secret") == "changed" else ""
        source = f" from {op['from']}" if "from" in op else ""
        out.print(f"{op['op']:8} {op['path']}{source}{value}{note}", markup=False)


@app.command()
def audit(
    service: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log, newest first."""
    params = {
        k: v
        for k, v in {
            "service": service,
            "actor": actor,
            "action": action,
            "since": since,
            "limit": limit,
        }.items()
        if v is not None
    }
    rows = _call("GET", "/api/v1/audit", params=params).json()
    if as_json:
        _print_json(rows)
        return
    table = Table("at", "actor", "action", "outcome", "service", "version", "reason")
    for row in rows:
        table.add_row(
            row["at"],
            row["actor"],
            row["action"],
            row["outcome"],
            row["service"] or "",
            "" if row["version"] is None else str(row["version"]),
            row["reason"] or "",
        )
    out.print(table)


# -- writing ----------------------------------------------------------------------------------
@app.command("set")
def set_(
    service: str,
    assignments: Annotated[list[str] | None, typer.Argument(help="key=value (dotted keys)")] = None,
    patch: Annotated[
        str | None, typer.Option(help="JSON Merge Patch, or @file / @- for stdin.")
    ] = None,
    if_match: Annotated[
        str | None, typer.Option(help="Version the change is based on (default: the current).")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes a retry safe.")] = None,
) -> None:
    """Change some fields: key=value pairs or a JSON Merge Patch (RFC 7396)."""
    if patch is not None and assignments:
        fail("give key=value pairs or --patch, not both", EXIT_USAGE)
    body = _read_json_arg(patch) if patch is not None else _assignments_to_patch(assignments or [])
    if not body and patch is None:
        fail("nothing to set: give key=value pairs or --patch", EXIT_USAGE)
    if if_match is None:
        if_match = _call("GET", f"/api/v1/configs/{service}").headers["etag"]
    headers = {"If-Match": if_match, "Content-Type": "application/merge-patch+json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    _write_result(
        _call("PATCH", f"/api/v1/configs/{service}", content=json.dumps(body), headers=headers)
    )


@app.command()
def edit(
    service: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Save without asking.")] = False,
) -> None:
    """Edit a config in $EDITOR; shows the diff and asks before saving."""
    current = _call("GET", f"/api/v1/configs/{service}")
    etag = current.headers["etag"]
    before = current.json()["values"]
    settings = _State.settings()
    with tempfile.TemporaryDirectory(prefix="configctl-") as folder:
        path = Path(folder) / f"{service}.json"
        path.write_text(json.dumps(before, indent=2, sort_keys=True) + "\n")
        try:
            subprocess.run([*settings.editor.split(), str(path)], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            fail(f"the editor {settings.editor!r} failed: {exc}")
        try:
            after = json.loads(path.read_text())
        except ValueError as exc:
            fail(f"the edited file is not valid JSON: {exc}", EXIT_INVALID)
    text = _unified(before, after, f"{service} (current)", f"{service} (yours)")
    if not text:
        out.print(f"{service}: no change")
        return
    _show_diff(text)
    if not yes and not typer.confirm("Save this change?", default=False, err=True):
        fail("not saved", EXIT_ERROR)
    with _client() as client:
        try:
            response = client.put(
                f"/api/v1/configs/{service}",
                content=json.dumps(after),
                headers={"If-Match": etag, "Content-Type": "application/json"},
            )
            if response.status_code == 412:
                theirs = client.get(f"/api/v1/configs/{service}").json()
                err.print(f"{service} changed while you edited (now version {theirs['version']}):")
                _show_diff(
                    _unified(theirs["values"], after, f"{service} (theirs)", f"{service} (yours)")
                )
                fail("412 Version conflict: not saved; edit again", EXIT_CONFLICT)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the manager: {exc}", EXIT_UNAVAILABLE)
    _write_result(_check(response))


@app.command()
def rollback(
    service: str,
    version: int,
    if_match: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Make VERSION's document current again (as a new version)."""
    if if_match is None:
        if_match = _call("GET", f"/api/v1/configs/{service}").headers["etag"]
    _write_result(
        _call(
            "POST",
            f"/api/v1/configs/{service}/rollback",
            json={"to_version": version},
            headers={"If-Match": if_match},
        )
    )


# -- export, import, verification ------------------------------------------------------------
@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    current: Annotated[bool, typer.Option(help="Only the current versions.")] = False,
) -> None:
    """Export every service's history (signed); to stdout or a file."""
    body = _call("GET", "/api/v1/export", params={"history": "current" if current else "full"}).text
    if output is None:
        print(body)
    else:
        output.write_text(body + "\n")
        err.print(f"exported to {output}")


@app.command("import")
def import_(file: Path) -> None:
    """Import an export (admin): all or nothing, bumps the epoch."""
    try:
        doc = json.loads(file.read_text())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{file} is not valid JSON: {exc}", EXIT_INVALID)
    body = _call("POST", "/api/v1/import", json=doc).json()
    for item in body["versions"]:
        out.print(f"{item['service']}: version {item['version']}", markup=False)
    out.print(f"epoch {body['epoch']} ({body['publication']})")


def _trust(path: Path | None) -> Any:
    from config_lib import TrustStore

    chosen = path or _State.settings().trust
    if chosen is None:
        fail("no trust store: pass --trust, set CONFIGCTL_TRUST or 'trust' in the config file")
    try:
        return TrustStore.load(Path(chosen).expanduser())
    except Exception as exc:
        fail(f"cannot load the trust store {chosen}: {exc}")


TrustOption = Annotated[Path | None, typer.Option(help="Trust store (PEM) of signing keys.")]


@app.command("verify-history")
def verify_history(file: Path, trust: TrustOption = None) -> None:
    """Check an export offline: signed head, every row's hash, the chain's linkage."""
    from .history import verify_export

    try:
        doc = json.loads(file.read_text())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{file} is not valid JSON: {exc}", EXIT_VERIFY)
    report = verify_export(doc, _trust(trust))
    if not report.ok:
        for problem in report.problems[1:]:
            err.print(f"  {problem}", markup=False)
        fail(f"history does NOT verify: {report.problems[0]}", EXIT_VERIFY)
    out.print(
        f"history verifies: {report.rows} rows ({report.history}), head {report.head}, "
        f"signed by {report.key_id}",
        markup=False,
    )


def _envelope_from_text(text: str) -> tuple[str | None, bytes]:
    """A payload as ``mosquitto_sub`` prints it: the JSON alone, or ``topic JSON`` (-v)."""
    text = text.strip()
    if text.startswith("{"):
        return None, text.encode()
    topic, _, payload = text.partition(" ")
    return topic, payload.strip().encode()


@app.command()
def verify(
    file: Annotated[str, typer.Argument(help="File with the payload, or - for stdin.")] = "-",
    service: Annotated[str | None, typer.Option(help="Default: from the topic or payload.")] = None,
    trust: TrustOption = None,
) -> None:
    """Verify one signed envelope (a pasted mosquitto_sub payload, with or without -v)."""
    from config_lib import EnvelopeError, parse_updated_topic, verify_envelope

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    topic, payload = _envelope_from_text(text)
    if service is None and topic is not None:
        with contextlib.suppress(Exception):
            service = parse_updated_topic(topic)
    if service is None:
        try:
            service = str(json.loads(payload)["service"])
        except (ValueError, KeyError, TypeError):
            fail("cannot tell the service: pass --service", EXIT_VERIFY)
    try:
        envelope = verify_envelope(payload, trust=_trust(trust), service=service)
    except EnvelopeError as exc:
        fail(f"does NOT verify: {type(exc).__name__}: {exc}", EXIT_VERIFY)
    out.print(
        f"verified: {envelope.service} version {envelope.version} epoch {envelope.epoch}, "
        f"signed by {envelope.key_id}",
        markup=False,
    )


@app.command()
def watch(
    services: Annotated[list[str] | None, typer.Argument(help="Default: every service.")] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Broker, mqtt://user:password@host:port (CONFIGCTL_MQTT_URL)."),
    ] = None,
    trust: TrustOption = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.", min=1)] = None,
) -> None:
    """Subscribe to config updates and verify every message live."""
    from config_lib import MqttEndpoint

    url = mqtt_url or _State.settings().mqtt_url
    if not url:
        fail("no broker: pass --mqtt-url or set CONFIGCTL_MQTT_URL", EXIT_USAGE)
    try:
        endpoint = MqttEndpoint.from_url(url)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    store = _trust(trust)
    try:
        bad = asyncio.run(_watch(endpoint, store, services or [], count))
    except KeyboardInterrupt:
        return
    if bad:
        fail(f"{bad} message(s) did NOT verify", EXIT_VERIFY)


async def _watch(endpoint: Any, trust: Any, services: list[str], count: int | None) -> int:
    import aiomqtt

    from config_lib import EnvelopeError, parse_updated_topic, updated_topic, verify_envelope

    topics = [updated_topic(s) for s in services] or ["config/updated/+"]
    seen = bad = 0
    last: dict[str, Any] = {}
    try:
        async with aiomqtt.Client(**endpoint.client_kwargs()) as client:
            for topic in topics:
                await client.subscribe(topic, qos=1)
            err.print(f"watching {', '.join(topics)} on {endpoint}", markup=False)
            async for message in client.messages:
                topic = str(message.topic)
                payload = message.payload
                stamp = time.strftime("%H:%M:%S")
                try:
                    service = parse_updated_topic(topic)
                    if not isinstance(payload, bytes | bytearray) or not payload:
                        out.print(f"{stamp} {service}: (empty retained message)", markup=False)
                    else:
                        env = verify_envelope(
                            bytes(payload), trust=trust, service=service, last=last.get(service)
                        )
                        last[service] = env.position
                        retained = " retained" if message.retain else ""
                        out.print(
                            f"{stamp} {service}: version {env.version} epoch {env.epoch} "
                            f"verified ({env.key_id}){retained}",
                            markup=False,
                        )
                except (EnvelopeError, ValueError) as exc:
                    bad += 1
                    out.print(
                        f"{stamp} {topic}: REJECTED {type(exc).__name__}: {exc}", markup=False
                    )
                seen += 1
                sys.stdout.flush()
                if count is not None and seen >= count:
                    break
    except aiomqtt.MqttError as exc:
        fail(f"broker {endpoint}: {exc}", EXIT_UNAVAILABLE)
    return bad


# -- fleet ---------------------------------------------------------------------------------------
_STATE_STYLE: Final = {
    "in_sync": "green",
    "behind": "yellow",
    "failed": "red",
    "rejected": "red",
    "offline": "dim",
    "retired": "dim",
}


def _sync_table(body: dict[str, Any]) -> Table:
    table = Table("service", "version", "config", "instance", "state", "runs", "reason")
    for entry in body["services"]:
        config = (
            "ok"
            if entry["config_valid"]
            else "OUTDATED: "
            + ", ".join(".".join(str(p) for p in e["loc"]) for e in entry["config_errors"])
        )
        rows = entry["instances"] or [None]
        for i, inst in enumerate(rows):
            first = i == 0
            table.add_row(
                entry["service"] if first else "",
                str(entry["version"]) if first else "",
                config if first else "",
                inst["instance"] if inst else "(no instance)",
                _state_cell(inst) if inst else "",
                "" if not inst or inst["version"] is None else str(inst["version"]),
                (inst["reason"] or "") if inst else "",
            )
    summary = body["summary"]
    table.caption = (
        f"{summary['services']} services, {summary['instances']} instances: "
        f"{summary['in_sync']} in sync, {summary['behind']} behind, {summary['failed']} failed, "
        f"{summary['rejected']} rejected, {summary['offline']} offline, "
        f"{summary.get('forged', 0)} forged; {summary['invalid_configs']} outdated configs"
    )
    return table


def _state_cell(inst: dict[str, Any]) -> str:
    """The instance's state; a forged latest report is flagged beside its genuine state."""
    cell = f"[{_STATE_STYLE[inst['state']]}]{inst['state']}[/]"
    if inst.get("forged"):
        cell += f" [red]FORGED ({inst.get('forged_reason')})[/]"
    return cell


@app.command()
def sync(
    follow: Annotated[bool, typer.Option("--watch", help="Refresh until interrupted.")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The fleet: each service's version and what each instance runs.

    Exit code 0 when every instance is in sync, none shows a forged report and every
    stored config passes its model, 1 otherwise (scripts can wait on it)."""
    if not follow:
        body = _call("GET", "/api/v1/sync").json()
        if as_json:
            _print_json(body)
        else:
            out.print(_sync_table(body))
        summary = body["summary"]
        settled = summary["in_sync"] + summary.get("retired", 0)
        if summary["instances"] != settled or summary["invalid_configs"] or summary.get("forged"):
            raise typer.Exit(EXIT_ERROR)
        return
    from rich.live import Live

    try:
        with Live(console=out, auto_refresh=False) as live:
            while True:
                live.update(_sync_table(_call("GET", "/api/v1/sync").json()), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return


# -- tokens ------------------------------------------------------------------------------------
@tokens_app.command("create")
def tokens_create(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, editor or admin")] = "viewer",
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="Limit the token to this service (repeatable)."),
    ] = None,
) -> None:
    """Create a token; prints it once on stdout."""
    request: dict[str, Any] = {"name": name, "role": role}
    if service:
        request["services"] = service
    body = _call("POST", "/api/v1/tokens", json=request).json()
    err.print(f"token {name!r} ({body['role']}), shown once:", markup=False)
    print(body["token"])


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (never their values)."""
    rows = _call("GET", "/api/v1/tokens").json()
    table = Table("name", "role", "services", "created_at", "created_by", "revoked_at")
    for row in rows:
        scope = row.get("services")
        table.add_row(
            row["name"],
            row["role"],
            ", ".join(scope) if scope else "all",
            row["created_at"],
            row["created_by"],
            row["revoked_at"] or "",
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: str) -> None:
    """Revoke a token."""
    _call("DELETE", f"/api/v1/tokens/{name}")
    out.print(f"token {name!r} revoked")


@app.command()
def keys() -> None:
    """Show the signing key and the root-signed keyset in force. Rotation runs on the
    manager host with the offline root key: python -m config_manager keys --help."""
    body = _call("GET", "/api/v1/keys").json()
    out.print(f"signing key: {body['signing_key_id']}", markup=False)
    keyset = body["keyset"]
    if keyset is None:
        out.print("keyset: none (services use their trust store file)", markup=False)
        return
    out.print(
        f"keyset: version {keyset['version']}, root {keyset['root_key_id']}, "
        f"expires {keyset['expires_at']}",
        markup=False,
    )
    out.print(f"keys: {', '.join(keyset['key_ids'])}", markup=False)
    if keyset["void_epochs_from"] is not None:
        out.print(f"void epochs from: {keyset['void_epochs_from']}", markup=False)


def main() -> None:
    """Entry point of ``configctl``."""
    try:
        code = app(standalone_mode=False)
    except Failure as exc:
        err.print(f"configctl: {exc}", markup=False)
        sys.exit(exc.code)
    except typer.Abort:
        err.print("configctl: aborted")
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # click usage errors and the unexpected: one line, no traceback
        import click

        if isinstance(exc, click.ClickException):
            err.print(f"configctl: {exc.format_message()}", markup=False)
            sys.exit(exc.exit_code)
        err.print(f"configctl: unexpected error: {type(exc).__name__}: {exc}", markup=False)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
