"""``kcguard``: run the real handlers locally, against the embedded fake ACK or the real cloud.

Local-only (typer and rich are the ``cli`` extra); never part of the Function Compute package.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .credentials import StaticCredentials, from_environment_or_demo
from .errors import CredentialsError, KcguardError, RetryableInvocationError
from .inert import rich_text
from .models import cluster_unreachable_reason
from .runtime import Runtime
from .settings import Mode, Settings

app = typer.Typer(
    help="kubeconfig-guard: revoke ACK kubeconfigs of deleted or locked RAM principals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(emoji=False)  # ":ram:" in an ARN is text, never an emoji
err = Console(stderr=True, emoji=False)


class LogFormat(str, Enum):
    auto = "auto"
    text = "text"
    json = "json"


@app.callback()
def _log_setup(
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            envvar="KCGUARD_LOG_FORMAT",
            help="Log lines on stderr: text (for a person), json (as in Function Compute), "
            "auto: text on a terminal, else json.",
        ),
    ] = LogFormat.auto,
) -> None:
    from . import logs

    logs.configure(os.environ.get("KCGUARD_LOG_LEVEL", "INFO"), fmt=log_format.value, console=err)


FakeOption = Annotated[
    Path | None, typer.Option("--fake", help="Run against the embedded fake ACK seeded from this world file.")
]
LiveOption = Annotated[
    bool, typer.Option("--live", help="Run against the real ACK API (default credential chain).")
]
DumpOption = Annotated[Path | None, typer.Option("--dump-world", help="Write the fake's final state here.")]


def _mount_fake() -> None:
    from .fake.cli import fake_app

    app.add_typer(fake_app, name="fake", help="The fake ACK OpenAPI (a real HTTP server on loopback).")


@dataclass(frozen=True)
class LocalContext:
    """What Function Compute's context tells the handlers, for a local run: the account.

    ``--fake``: the world's ``account_id``; ``--live``: none (``KCGUARD_ACCOUNT_ID`` says it).
    """

    account_id: str | None = None


@contextlib.contextmanager
def _runtime(
    fake: Path | None, live: bool, dump: Path | None, **overrides: Any
) -> Iterator[tuple[Runtime, LocalContext]]:
    """A runtime on the fake's real HTTP server (``--fake``) or on the real cloud (``--live``)."""
    if (fake is None) == (not live):
        raise typer.BadParameter("give exactly one of --fake WORLD.json or --live")
    if live:
        with Runtime(Settings(**overrides)) as runtime:
            yield runtime, LocalContext()
        return
    from .fake import FakeAck, FakeAckServer, FakeCloud, dump_world, load_world
    from .fake.world import DEFAULT_EXTERNAL_ID

    assert fake is not None
    try:
        world = load_world(fake)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot load the world file {fake}: {exc}") from None
    backend: FakeAck | FakeCloud = FakeCloud(world) if world.organization is not None else FakeAck(world)
    regions = list(world.regions)
    if world.organization is not None:
        # An organization world: organization mode over its Resource Directory unless told otherwise,
        # with the ExternalId the world's member roles require (the demo's).
        for member in world.organization.members:
            regions += [r for r in member.regions if r not in regions]
        if not os.environ.get("KCGUARD_ACCOUNTS") and "accounts" not in overrides:
            overrides["accounts"] = "resource-directory"
        if not os.environ.get("KCGUARD_MEMBER_EXTERNAL_ID") and "member_external_id" not in overrides:
            overrides["member_external_id"] = DEFAULT_EXTERNAL_ID
    if not os.environ.get("KCGUARD_REGIONS") and "regions" not in overrides:
        overrides["regions"] = regions
    with FakeAckServer(backend) as server:
        try:
            settings = Settings(
                cs_endpoint=server.url,
                sts_endpoint=server.url,
                resourcemanager_endpoint=server.url,
                **overrides,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        try:
            credentials = StaticCredentials(from_environment_or_demo())
        except CredentialsError as exc:
            raise typer.BadParameter(f"ALIBABA_CLOUD_ACCESS_KEY_* variables: {exc}") from None
        with Runtime(settings, credentials=credentials) as runtime:
            try:
                yield runtime, LocalContext(account_id=world.account_id or None)
            finally:
                if dump is not None:
                    dump_world(backend.to_world(), dump)


@app.command()
def invoke(
    event: Annotated[
        Path, typer.Argument(help="Event JSON file (e.g. events/ram-delete-user.json).", exists=True)
    ],
    fake: FakeOption = None,
    live: LiveOption = False,
    dump_world: DumpOption = None,
) -> None:
    """Run the event function's handler on EVENT and print its result JSON."""
    from .handlers import handle_event

    with _runtime(fake, live, dump_world) as (runtime, context):
        try:
            result = handle_event(event.read_bytes(), context, runtime=runtime)
        except RetryableInvocationError as exc:
            err.print(f"[red]the handler raised a retryable error[/red]: {rich_text(exc)}")
            raise typer.Exit(1) from None
    out.print_json(result.model_dump_json())


@app.command()
def demo(
    world: Annotated[Path, typer.Option(help="World file of the fake ACK.")] = Path("examples/world.json"),
    event: Annotated[Path, typer.Option(help="The deletion event to replay.")] = Path(
        "events/ram-delete-user.json"
    ),
    organization: Annotated[
        bool, typer.Option("--organization", help="The organization demo (examples/organization.json).")
    ] = False,
) -> None:
    """Replay a RAM user deletion against the embedded fake and show what was revoked.

    ``--organization``: a Resource Directory of three members (examples/organization.json); the
    deletion of a user of the prod member is routed to the central account, revoked in prod only
    (staging's user of the same name is untouched), and the daily summary shows every account,
    the sandbox member whose role does not trust this deployment as denied."""
    from .handlers import handle_event, handle_summary
    from .results import ActionStatus, RevocationResult

    if organization:
        world = world if world != Path("examples/world.json") else Path("examples/organization.json")
        event = (
            event
            if event != Path("events/ram-delete-user.json")
            else Path("events/organization/routed-delete-user.json")
        )
    for path in (world, event):
        if not path.exists():
            raise typer.BadParameter(f"{path} not found: run `kcguard demo` from the repository root")
    overrides: dict[str, Any] = {"mode": Mode.ENFORCE, "allow_manual_enforce": True, "log_level": "WARNING"}
    summary = None
    with _runtime(world, False, None, **overrides) as (runtime, context):
        result = handle_event(event.read_bytes(), context, runtime=runtime)
        if organization:
            summary = handle_summary({"dryRun": True}, context, runtime=runtime)
    assert isinstance(result, RevocationResult)
    if result.account_id and organization:
        out.print(f"[bold]Account[/bold] {rich_text(result.account_id)} (routed to the central account)")
    who = result.principal.describe() if result.principal else "?"
    out.print(f"[bold]Event[/bold] {rich_text(result.event_name)} of {rich_text(who)}")
    table = Table(title=f"kubeconfig-guard demo — {result.outcome.value}: {rich_text(result.reason)}")
    for column in ("region", "cluster", "account", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    colors = {
        ActionStatus.REVOKED: "green",
        ActionStatus.WOULD_REVOKE: "cyan",
        ActionStatus.SKIPPED: "yellow",
        ActionStatus.DEFERRED: "magenta",
        ActionStatus.FAILED: "red",
    }
    for a in result.actions:
        color = colors.get(a.status, "white")
        table.add_row(
            rich_text(a.region),
            rich_text(a.cluster_name or a.cluster_id),
            rich_text(a.account_name),
            f"[{color}]{a.status.value}[/]",
            rich_text(a.reason),
        )
    for c in result.clusters:
        table.add_row(
            rich_text(c.region),
            rich_text(c.cluster_name or c.cluster_id),
            "-",
            f"[dim]cluster {c.status.value}[/]",
            rich_text(c.reason),
        )
    out.print(table)
    out.print(
        f"{result.counts.get('revoked', 0)} revoked on {result.clusters_scanned} clusters scanned "
        f"in {result.duration_ms} ms (mode enforce, against the fake ACK; nothing left this machine)."
    )
    if summary is not None and summary.report is not None:
        accounts = Table(title=f"The daily summary (dry-run) — {rich_text(summary.reason)}")
        for column in ("account", "name", "status", "orphaned", "clusters"):
            accounts.add_column(column, no_wrap=True)
        accounts.add_column("reason")
        for a_ in summary.report.accounts:
            color = {"ok": "green", "denied": "red", "error": "red"}.get(a_.status.value, "dim")
            accounts.add_row(
                rich_text(a_.account_id),
                rich_text(a_.display_name),
                f"[{color}]{a_.status.value}[/]",
                str(a_.totals.get("orphaned", 0)),
                f"{a_.clusters_scanned}/{a_.clusters_total}",
                rich_text(a_.reason),
            )
        out.print(accounts)


@app.command()
def states(fake: FakeOption = None, live: LiveOption = False) -> None:
    """List every kubeconfig on every watched cluster."""

    async def collect(runtime: Runtime) -> list[tuple[str, str, Any]]:
        client = runtime.engine.client
        rows: list[tuple[str, str, Any]] = []
        for region in runtime.settings.watched_regions():
            for cluster in await client.describe_clusters(region):
                if why := cluster_unreachable_reason(cluster):
                    err.print(
                        f"[yellow]{rich_text(cluster.name or cluster.cluster_id)} skipped: {why}[/yellow]"
                    )
                    continue
                try:
                    for state in await client.list_kubeconfig_states(region, cluster.cluster_id):
                        rows.append((region, cluster.name or cluster.cluster_id, state))
                except KcguardError as exc:
                    err.print(f"[yellow]{rich_text(cluster.cluster_id)}: {rich_text(exc)}[/yellow]")
        return rows

    with _runtime(fake, live, None) as (runtime, _):
        rows = runtime.run(collect(runtime))
    table = Table(title=f"{len(rows)} kubeconfigs")
    for column in ("region", "cluster", "account", "type", "state", "cert", "expires", "revokable"):
        table.add_column(column)
    for region, cluster, s in rows:
        table.add_row(
            rich_text(region),
            rich_text(cluster),
            rich_text(s.account_name),
            rich_text(s.account_type.value if s.account_type else ""),
            rich_text(s.account_state.value if s.account_state else ""),
            rich_text(s.cert_state.value if s.cert_state else ""),
            rich_text(s.cert_expire_time or ""),
            "yes" if s.revokable else "no",
        )
    out.print(table)


@app.command()
def summary(
    fake: FakeOption = None,
    live: LiveOption = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for report.json/.md/.html.")] = Path(
        "out"
    ),
    dump_world: DumpOption = None,
    options: Annotated[str, typer.Option(help="Summary options JSON, e.g. '{\"dryRun\": true}'.")] = "{}",
) -> None:
    """Run the daily summary: print the digest, write report.json, report.md and report.html."""
    from .handlers import handle_summary

    with _runtime(fake, live, dump_world) as (runtime, context):
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(console=err, transient=True) as bar:
                task = bar.add_task("scanning clusters", total=None)
                outcome = handle_summary(
                    options,
                    context,
                    runtime=runtime,
                    progress=lambda d, t: bar.update(task, completed=d, total=t),
                )
        else:
            outcome = handle_summary(options, context, runtime=runtime)
    if outcome.report is None:
        err.print(f"[red]summary {outcome.outcome.value}[/red]: {rich_text(outcome.reason)}")
        raise typer.Exit(2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(outcome.report_json, encoding="utf-8")
    (out_dir / "report.md").write_text(outcome.markdown, encoding="utf-8")
    (out_dir / "report.html").write_text(outcome.html, encoding="utf-8")
    sys.stdout.write(outcome.markdown)  # verbatim: it is the same Markdown as report.md
    err.print(f"wrote {rich_text(out_dir)}/report.json, report.md, report.html — {rich_text(outcome.reason)}")


@app.command("settings")
def settings_table() -> None:
    """Print the settings as the Markdown table in README.md."""
    sys.stdout.write(settings_markdown())


def settings_markdown() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Enum):
            default = default.value
        shown = (
            ""
            if default in (None, [])
            else json.dumps(default)
            if isinstance(default, bool)
            else str(default)
        )
        lines.append(
            f"| `KCGUARD_{name.upper()}` | {f'`{shown}`' if shown else '—'} | {field.description or ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    _mount_fake()
    app()


if __name__ == "__main__":
    main()
