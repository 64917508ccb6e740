"""The ``verifyline`` command: run the line, drive the lab, manage the roster, read the log."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ari_app.client import AriClient
from ari_app.service import LineService
from ivr import callers, calllog, logs, retention, roster, services
from ivr.clock import now
from ivr.config import Settings
from ivr.exceptions import ConfigError, ConsoleError, StoreError, VerifyLineError
from ivr.models import Role
from ivr.store import Store, is_migrated, notices
from ops import console, lab, probe
from ops.metrics import serve_metrics
from ops.supervise import Supervisor

DEMO_ROSTER = Path(__file__).resolve().parents[1] / "ivr" / "demo_roster.csv"


def _settings() -> Settings:
    return Settings.from_env().with_secrets()


def _store(settings: Settings) -> Store:
    store = Store(settings.db_url)
    store.migrate()
    return store


# --- serve ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the ARI app in the foreground until SIGTERM/SIGINT."""
    settings = _settings()
    logs.configure(settings, verbose=args.verbose)
    serve_metrics(settings)

    async def main() -> None:
        client = AriClient.from_settings(settings)
        service = LineService(settings, Store(settings.db_url), client)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        runner = asyncio.create_task(service.run())
        waiter = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        await service.stop()
        runner.cancel()
        await client.aclose()
        if runner in done and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]

    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(main())
    return 0


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency on Linux): half the CPU of
    asyncio's own per ARI request on this lab (docs/benchmarks.md); asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_supervise(args: argparse.Namespace) -> int:
    """Run `verifyline serve` and restart it within two seconds whenever it dies."""
    settings = _settings()
    logs.configure(settings)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ops", "serve", *(["--verbose"] if args.verbose else [])]
    return Supervisor(argv, settings.run_dir / "app.pid").run()


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the supervisors' console with gunicorn in the foreground until SIGTERM/SIGINT."""
    settings = _settings()  # generates the session secret once, before any worker reads it
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise VerifyLineError(f"--port {args.port}: give a port from 1 to 65535")
        os.environ["VERIFYLINE_CONSOLE_PORT"] = str(args.port)
    # the schema first, as every command does: no worker serves a request on an old one
    _store(settings).dispose()
    argv = console.gunicorn_argv(settings, args.port)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child: the PID that `lab up` keeps and signals is gunicorn's master
    os.execv(argv[0], argv)


# --- lab -----------------------------------------------------------------------------------

DEMO_USER = "demo"
DEMO_PASSWORD_BYTES = 12  # 16 URL-safe characters


def _demo_supervisor(settings: Settings) -> str:
    """Create the lab's demo supervisor unless it exists; what to print about it. The password
    is shown this once: only its hash is stored."""
    store = _store(settings)
    try:
        if all(u.username != DEMO_USER for u in services.users(store)):
            password = secrets.token_urlsafe(DEMO_PASSWORD_BYTES)
            try:
                services.add_user(store, DEMO_USER, password, Role.SUPERVISOR.value,
                                  display_name="Demo supervisor")
            except ConsoleError as exc:
                if exc.error_id != "user_exists":  # else: a second `lab up` at the same time
                    raise
            else:
                return (f"  Sign in:      {DEMO_USER} / {password}   (a supervisor; shown this "
                        "once: only its hash is stored, it is never printed again)")
        return (f"  Sign in:      {DEMO_USER} (exists: its password was printed when 'lab up' "
                "created it and is not stored in clear)")
    finally:
        store.dispose()


def _how_to_call(settings: Settings) -> str:
    port = settings.sip_port
    return (
        f"Verify Line is up on loopback.\n"
        f"  Desk phones:  register desk1..desk4 at 127.0.0.1:{port} (password lab-deskN), e.g.\n"
        f"    sipp 127.0.0.1:{port} -sf tests/sipp/desk_register.xml -oocsf "
        f"tests/sipp/desk_answer.xml -s desk1 -au desk1 -ap lab-desk1 -i 127.0.0.1 -p 5071 "
        f"-mi 127.0.0.1 -mp 16000 -rtp_echo -m 1 -bg\n"
        f"  Call it:      an INVITE from 127.0.0.2 to sip:{settings.line_number}@127.0.0.1:{port}"
        f", e.g.\n"
        f"    sipp 127.0.0.1:{port} -sf tests/sipp/caller.xml -s {settings.line_number} "
        f"-i 127.0.0.2 -mi 127.0.0.2 -key caller 07700900123 -key digits 123456#1 "
        f"-d 12000 -m 1\n"
        f"    (keys 123456, '#', then '1' to confirm the read-back; talks 3 s and hangs up)\n"
        f"  Demo roster:  123456 on duty, 234567 off duty, 345678 card withdrawn, "
        f"0042 on duty\n"
        f"  Call log:     verifyline calls list --json\n"
        f"  Health:       verifyline doctor    Stop: verifyline lab down"
    )


def cmd_lab_up(args: argparse.Namespace) -> int:
    settings = _settings()
    inst = lab.up(settings)
    if args.demo:
        with _store(settings).session() as s:
            n = roster.replace_roster(s, roster.parse_csv(DEMO_ROSTER.read_text()))
        print(f"demo roster loaded ({n} officers)")
    print(f"Asterisk pid {lab.read_pid(inst.asterisk_pidfile)}, "
          f"app pid {lab.read_pid(inst.app_pidfile)}, "
          f"console pid {lab.read_pid(inst.console_pidfile)}; logs in {settings.log_dir}")
    print(_how_to_call(settings))
    print(f"  Console:      {console.url(settings)}/")
    print(_demo_supervisor(settings))
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    stopped = lab.down(Settings.from_env())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_lab_app(args: argparse.Namespace) -> int:
    settings = _settings()
    inst = lab.instance(settings)
    if args.action == "stop":
        print("app stopped" if lab.stop_app(inst) else "app was not running")
        return 0
    if lab.read_pid(inst.asterisk_pidfile) is None:
        raise lab.LabError("Asterisk is not running: start the lab with 'verifyline lab up'")
    started = lab.start_app(inst)
    print(f"app {'started' if started else 'already running'}, "
          f"pid {lab.read_pid(inst.app_pidfile)}")
    return 0


def cmd_lab_cli(args: argparse.Namespace) -> int:
    print(lab.cli(lab.instance(_settings()), " ".join(args.command)), end="")
    return 0


def cmd_lab_config(args: argparse.Namespace) -> int:
    settings = _settings()
    out = Path(args.out)
    files = lab.render_config(settings, out, str(Path(args.spool).resolve()),
                              lab_passwords=args.lab_passwords)
    for f in files:
        print(f)
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    settings = _settings()
    inst = lab.instance(settings)
    print(json.dumps({
        "asterisk_pid": lab.read_pid(inst.asterisk_pidfile),
        "app_pid": lab.read_pid(inst.app_pidfile),
        "supervisor_pid": lab.read_pid(inst.supervisor_pidfile),
        "ari_ready": lab.ari_ready(settings),
        "app_connected": lab.app_connected(inst),
        "console_pid": lab.read_pid(inst.console_pidfile),
        "console_answers": lab.console_answers(settings),
        "instance": str(inst.outside),
    }, indent=2))
    return 0


# --- roster and calls ----------------------------------------------------------------------


def cmd_roster_import(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise VerifyLineError(f"cannot read {args.file}: {exc.strerror}") from None
    # the console's upload goes through this same importer (audited as roster_import)
    counts = services.import_roster(_store(settings), text, actor="cli")
    print(f"imported {counts['rows']} officer(s) from {args.file}")
    return 0


SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_arg(raw: str) -> datetime:
    """``--since``: an ISO 8601 time with a UTC offset, or a time ago (``30m``, ``1h``)."""
    text = raw.strip()
    if text[:-1].isdigit() and text[-1:] in SINCE_UNITS:
        return now() - timedelta(seconds=int(text[:-1]) * SINCE_UNITS[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is neither an ISO 8601 time nor a time ago such as 30m or 1h") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{raw!r} has no UTC offset (write e.g. +00:00)")
    return when


def cmd_calls_list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with _store(settings).session() as s:
        calls = calllog.list_calls(s, args.limit, args.since)
    if args.json:
        print(json.dumps(calls, indent=2))
        return 0
    for c in calls:
        print(f"{c['id']:>5} {c['started_at']} ref {c['reference']} from "
              f"{callers.shown(c['caller_number'])}: {c['warrant_number'] or '-'} "
              f"{c['roster_result']} -> {c['supervisor'] or 'nobody'} "
              f"({c['end_reason'] or 'in progress'}, {c['path']})")
    return 0


def cmd_calls_show(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with _store(settings).session() as s:
        call = calllog.call_json(s, args.id)
        if call is None:
            raise VerifyLineError(f"no call with id {args.id}")
        print(json.dumps({**call, "timeline": calllog.timeline(s, args.id)}, indent=2))
    return 0


def cmd_supervisors(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    with _store(settings).session() as s:
        calllog.ensure_desks(s, settings.desks)
    if args.action == "list":
        with _store(settings).session() as s:
            rows = calllog.supervisors(s)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            state = "signed out" if r["signed_out"] else "paused" if r["paused"] else "available"
            reason = f" ({r['pause_reason']})" if r["pause_reason"] else ""
            print(f"{r['desk']:<10} {state}{reason}")
        return 0
    desks = settings.desks if args.all else tuple(args.desks)
    unknown = [d for d in desks if d not in settings.desks]
    if unknown or not desks:
        raise VerifyLineError(f"unknown desk(s): {', '.join(unknown) or 'none given'}; "
                              f"known: {', '.join(settings.desks)}")
    services.set_availability(_store(settings), desks, args.action, reason="cli")
    print(f"{', '.join(desks)}: {args.action} (the line applies it within a second)")
    return 0


def cmd_callbacks(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.action == "done":
        if args.id is None:
            raise VerifyLineError("give the callback id: verifyline callbacks done ID")
        with _store(settings).session() as s:
            if not calllog.callback_done(s, args.id, args.by):
                raise VerifyLineError(f"no open callback with id {args.id}")
        print(f"callback {args.id} done")
        return 0
    with _store(settings).session() as s:
        rows = calllog.callbacks(s, include_done=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            number = callers.shown(r["caller_number"])
            print(f"{r['id']:>4} {r['created_at']} {number:<15} ref {r['reference']}"
                  f" keyed {r['digits_entered'] or '-'}"
                  + (f" done {r['done_at']} by {r['done_by']}" if r["done_at"] else ""))
    return 0


# --- console accounts and device tokens ---------------------------------------------------


def _read_password() -> str:
    """Prompted twice on a terminal; otherwise the first line of stdin (for scripts)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise VerifyLineError("the two passwords differ: nothing was changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    store = _store(Settings.from_env())
    if args.action == "add":
        # refuse what needs no password before asking for one (add_user checks again)
        if args.role not in {r.value for r in Role}:
            raise VerifyLineError(f"role {args.role!r} must be one of "
                                  + "|".join(r.value for r in Role))
        if any(u.username == args.name for u in services.users(store)):
            raise VerifyLineError(f"user {args.name!r} already exists")
        made = services.add_user(store, args.name, _read_password(), args.role,
                                 args.display_name, actor="cli")
        print(f"user {made.username} added ({made.role.value})")
    elif args.action == "disable":
        done = services.disable_user(store, args.name, actor="cli")
        print(f"user {done.username} disabled")
    else:
        rows = [{"id": u.id, "username": u.username, "display_name": u.display_name,
                 "role": u.role.value, "disabled": u.disabled} for u in services.users(store)]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in [] if args.json else rows:
            print(f"{r['username']:<20} {r['role']:<10} "
                  f"{'disabled' if r['disabled'] else 'active':<8} {r['display_name']}")
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    store = _store(Settings.from_env())
    if args.action == "add":
        token_id, token = services.add_token(store, args.officer, args.label, created_by="cli")
        print(f"device token {token_id} for officer {args.officer} (shown only this once):")
        print(token)
    elif args.action == "revoke":
        done = services.revoke_token(store, args.id, by="cli")
        print(f"device token {done.id} ({done.prefix}...) revoked")
    else:
        rows = [t.as_json() for t in services.device_tokens(store)]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in [] if args.json else rows:
            state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "live"
            print(f"{r['id']:>4} {r['prefix']}... officer {r['warrant_number']} "
                  f"{r['label'] or '-'} ({state}, last used {r['last_used_at'] or 'never'})")
    return 0


# --- retention -----------------------------------------------------------------------------

# exit statuses a timer or cron can tell apart (sysexits.h): another run holds the lock;
# a setting is wrong
PURGE_BUSY = 75
PURGE_BAD_SETTINGS = 78


def _run_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    # systemd gives every service run an INVOCATION_ID (the purge timer's runs)
    via = " (systemd)" if os.environ.get("INVOCATION_ID") else ""
    return f"{user}@{socket.gethostname()}{via}"


def _purge_lines(report: retention.PurgeReport) -> list[str]:
    verb = "would be" if report.dry_run else "were"
    lines = [
        f"caller numbers of calls before {report.numbers_before} "
        f"({report.caller_number_days} days) {verb} hashed: {report.calls_hashed} call(s), "
        f"{report.encounters_hashed} encounter(s), {report.callbacks_hashed} callback(s), "
        f"{report.events_hashed} timeline event(s), {report.audit_entries_hashed} audit "
        "entr(y/ies)",
        f"recordings of calls before {report.recordings_before} ({report.recordings_days} "
        f"days) {verb} deleted: {report.recordings_deleted} ({report.recording_files_deleted} "
        f"file(s) on disk), and {report.orphan_files_deleted} older file(s) no call names",
    ]
    if report.recordings:
        more = report.recordings_deleted + report.orphan_files_deleted - len(report.recordings)
        lines.append("  " + ", ".join(report.recordings) + (f" and {more} more" if more else ""))
    if report.rejected_writes:
        lines.append(f"warning: the journal's rejected.jsonl holds {report.rejected_writes} "
                     "write(s) the database refused; they hold call data (numbers too) that "
                     "no retention period reaches: repair them, then delete the file")
    if report.dry_run:
        lines.append("dry run: nothing was changed")
    elif report.changes == 0:
        lines.append("nothing to do (audited as retention_purge)")
    else:
        lines.append("done (audited as retention_purge)")
    return lines


def cmd_purge(args: argparse.Namespace) -> int:
    """Hash old callers' numbers and delete old recordings (docs/operations.md)."""
    try:
        settings = Settings.from_env()
        if not args.dry_run:
            settings = settings.with_secrets()  # the retention key, generated once if unset
    except ConfigError as exc:
        print(f"verifyline purge: bad settings: {exc}", file=sys.stderr)
        return PURGE_BAD_SETTINGS
    try:
        if args.dry_run:
            store = Store(settings.db_url)  # a dry run migrates nothing either
            if not is_migrated(store.engine):
                print("the database has no schema yet: nothing to purge")
                return 0
        else:
            store = _store(settings)
        report = services.purge(store, settings, now(), dry_run=args.dry_run,
                                run_by=_run_by())
    except retention.PurgeBusy as exc:
        print(f"verifyline purge: {exc}", file=sys.stderr)
        return PURGE_BUSY
    except (SQLAlchemyError, StoreError, OSError) as exc:
        print(f"verifyline purge: failed: {exc}; what was done before stays done, and the "
              "next run carries on from there", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print("\n".join(_purge_lines(report)))
    return 0


# --- doctor --------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the parts the line needs; say precisely what is wrong and how to fix it."""
    problems = 0

    def check(name: str, ok: bool, detail: str, fix: str = "") -> bool:
        nonlocal problems
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}" + ("" if ok else f"\n     fix: {fix}"))
        problems += 0 if ok else 1
        return ok

    try:
        settings = _settings()
    except VerifyLineError as exc:
        check("settings", False, str(exc), "correct the VERIFYLINE_* variable named above")
        return 1
    check("settings", True, f"home {settings.home}, SIP {settings.sip_port}, "
          f"ARI {settings.ari_port}, line {settings.line_number}")
    root = lab.cache_root(settings)
    check("asterisk chroot", lab.chroot_ready(root), str(root),
          "run 'make install' (as root) to provision it")
    for tool in ("sipp", "debootstrap"):
        found = shutil.which(tool)
        check(tool, found is not None, found or "not found",
              "run 'make install' (installs sip-tester and debootstrap)")
    inst = lab.instance(settings)
    pid = lab.read_pid(inst.asterisk_pidfile)
    if check("asterisk process", pid is not None, f"pid {pid}" if pid else "not running",
             "run 'verifyline lab up'"):
        info = AriClient.from_settings(settings).probe_info(timeout=2)
        if info.status is None:
            check("ARI", False, f"{settings.ari_url} unreachable ({info.error})",
                  f"Asterisk runs but its HTTP server does not answer: see {inst.asterisk_log}")
        elif info.status == 401:
            check("ARI", False, f"{settings.ari_url} refused our credentials",
                  "the ARI password changed under a running Asterisk: "
                  "'verifyline lab down' then 'verifyline lab up'")
        else:
            system = info.body.get("system", {}) if isinstance(info.body, dict) else {}
            check("ARI", info.ok, f"{settings.ari_url} Asterisk {system.get('version', '?')}",
                  f"ARI answered {info.status}; see {inst.asterisk_log}")
        app_pid = lab.read_pid(inst.app_pidfile)
        registered = lab.app_connected(inst)
        check("ARI app", registered,
              f"pid {app_pid}, connected" if registered else
              f"pid {app_pid}, not connected to Asterisk",
              "run 'verifyline lab app start' (calls meanwhile take the dialplan fallback); "
              f"log: {settings.log_dir / 'app.log'}")
        try:
            out = lab.cli(inst, "pjsip show contacts")
            desks = sorted({d for d in settings.desks if f"{d}/" in out})
            check("desk phones", True, f"registered: {', '.join(desks) or 'none'}")
        except (VerifyLineError, OSError) as exc:
            check("desk phones", False, str(exc), "see the Asterisk log")
    console_pid = lab.read_pid(inst.console_pidfile)
    status = console.probe(settings)
    where = console.url(settings) + (f" (pid {console_pid})" if console_pid else "")
    check("console", status == 200,
          f"{where} answers" if status == 200 else
          f"{where} answers {status}: it cannot read the database" if status is not None else
          f"{where} does not answer",
          "start it with 'verifyline lab up' (or 'verifyline console' in the foreground); "
          f"log: {inst.console_log}" if status is None else
          f"check the database (below) and {inst.console_log}")
    try:
        store = Store(settings.db_url)
        migrated = is_migrated(store.engine)
        check("database", migrated, settings.db_url.split("@")[-1] +
              ("" if migrated else " (no schema)"),
              "run 'verifyline roster import FILE' or 'verifyline lab up' to create it")
        if migrated:
            # as every command does on start: a pending migration may leave a notice
            store.migrate()
            with store.session() as s:
                for notice in notices(s):
                    check(f"stored data ({notice.key})", False, notice.detail, notice.fix)
    except Exception as exc:  # any driver error is a finding, not a crash
        check("database", False, f"{exc}", "check VERIFYLINE_DB_URL and that the server runs")
    print("all good" if problems == 0 else f"{problems} problem(s) found")
    return 0 if problems == 0 else 1


def cmd_probe(args: argparse.Namespace) -> int:
    """Exit 0 when the part answers, 1 when not (ops/probe.py; containers' health checks)."""
    return probe.run(args.part, _settings())


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verifyline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
            func: Callable[[argparse.Namespace], int], help_text: str
            ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(func=func)
        return sp

    serve = add(sub, "serve", cmd_serve, "run the ARI app in the foreground")
    serve.add_argument("-v", "--verbose", action="store_true")
    supervise = add(sub, "supervise", cmd_supervise,
                    "run the ARI app and restart it within 2 s if it dies (what lab up runs)")
    supervise.add_argument("-v", "--verbose", action="store_true")

    con = add(sub, "console", cmd_console,
              "serve the supervisors' console (gunicorn) on loopback in the foreground")
    con.add_argument("--port", type=int, help="instead of VERIFYLINE_CONSOLE_PORT (8080)")

    lab_p = sub.add_parser("lab", help="the local Asterisk lab").add_subparsers(
        dest="lab_command", required=True)
    up = add(lab_p, "up", cmd_lab_up,
             "start Asterisk, the app and the console; return once calls are answered")
    up.add_argument("--demo", action="store_true", help="load the demo roster too")
    add(lab_p, "down", cmd_lab_down, "stop what 'lab up' started")
    add(lab_p, "status", cmd_lab_status, "print the lab's processes as JSON")
    app = add(lab_p, "app", cmd_lab_app, "stop or start only the ARI app")
    app.add_argument("action", choices=["stop", "start"])
    cli = add(lab_p, "cli", cmd_lab_cli, "run an Asterisk CLI command")
    cli.add_argument("command", nargs="+")
    cfg = add(lab_p, "config", cmd_lab_config,
              "render the Asterisk configuration for this environment into a folder")
    cfg.add_argument("out")
    cfg.add_argument("--spool", default="var/spool", help="fallback spool folder Asterisk writes")
    cfg.add_argument("--lab-passwords", action="store_true",
                     help="give a desk with no VERIFYLINE_DESK_PASSWORD_<DESK> the lab's "
                          "lab-<desk> password (refused otherwise)")

    roster_p = sub.add_parser("roster", help="the roster of warrant numbers").add_subparsers(
        dest="roster_command", required=True)
    imp = add(roster_p, "import", cmd_roster_import, "replace the roster with a CSV file")
    imp.add_argument("file")

    calls_p = sub.add_parser("calls", help="the call log").add_subparsers(
        dest="calls_command", required=True)
    ls = add(calls_p, "list", cmd_calls_list, "list calls, oldest first")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--limit", type=int)
    ls.add_argument("--since", type=since_arg, metavar="WHEN",
                    help="only calls started at or after WHEN: an ISO 8601 time with its UTC "
                         "offset, or a time ago such as 90s, 30m, 1h, 7d")
    show = add(calls_p, "show", cmd_calls_show, "one call with its timeline, as JSON")
    show.add_argument("id", type=int)

    sup = add(sub, "supervisors", cmd_supervisors,
              "list desk phones, or pause / make available / sign out / sign in supervisors")
    sup.add_argument("action", choices=["list", *services.AVAILABILITY])
    sup.add_argument("desks", nargs="*")
    sup.add_argument("--all", action="store_true", help="every configured desk")
    sup.add_argument("--json", action="store_true")
    cb = add(sub, "callbacks", cmd_callbacks,
             "callers who hung up before a supervisor answered")
    cb.add_argument("action", choices=["list", "done"])
    cb.add_argument("id", type=int, nargs="?")
    cb.add_argument("--all", action="store_true", help="include callbacks already done")
    cb.add_argument("--by", default="cli", help="who made the callback")
    cb.add_argument("--json", action="store_true")

    users_p = sub.add_parser("users", help="console accounts").add_subparsers(
        dest="users_command", required=True)
    u_add = add(users_p, "add", cmd_users, "add a console account (password prompted twice, "
                "or the first line of stdin)")
    u_add.set_defaults(action="add")
    u_add.add_argument("name")
    u_add.add_argument("--role", required=True, help="supervisor|admin|auditor")
    u_add.add_argument("--display-name", default="")
    u_list = add(users_p, "list", cmd_users, "list console accounts")
    u_list.set_defaults(action="list")
    u_list.add_argument("--json", action="store_true")
    u_off = add(users_p, "disable", cmd_users, "disable a console account")
    u_off.set_defaults(action="disable")
    u_off.add_argument("name")

    tokens_p = sub.add_parser("tokens", help="officers' device tokens (pre-registration API)"
                              ).add_subparsers(dest="tokens_command", required=True)
    t_add = add(tokens_p, "add", cmd_tokens, "create a device token for an officer "
                "(printed once)")
    t_add.set_defaults(action="add")
    t_add.add_argument("--officer", required=True, metavar="WARRANT")
    t_add.add_argument("--label", default="")
    t_list = add(tokens_p, "list", cmd_tokens, "list device tokens (never the tokens)")
    t_list.set_defaults(action="list")
    t_list.add_argument("--json", action="store_true")
    t_rev = add(tokens_p, "revoke", cmd_tokens, "revoke a device token")
    t_rev.set_defaults(action="revoke")
    t_rev.add_argument("id", type=int)

    purge = add(sub, "purge", cmd_purge,
                "hash callers' numbers and delete recordings older than their retention "
                "periods (VERIFYLINE_RETAIN_*); safe to run from a timer or cron")
    purge.add_argument("--dry-run", action="store_true",
                       help="print what would change and change nothing")
    purge.add_argument("--json", action="store_true")

    add(sub, "doctor", cmd_doctor, "check Asterisk, ARI, the app, the console and the database")
    probe_p = add(sub, "probe", cmd_probe,
                "exit 0 if one part answers: ari (our credentials), app (connected and listed "
                "by Asterisk), console (/healthz 200); a health check for containers")
    probe_p.add_argument("part", choices=probe.PARTS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except VerifyLineError as exc:
        print(f"verifyline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
