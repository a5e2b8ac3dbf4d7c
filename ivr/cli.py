"""The ``hotline`` command.

  hotline run                      run the engine
  hotline sandbox up|down|status   the local Asterisk, Redis and simulated phones
  hotline advocate ACTION ID       log in/out, go available/away, end wrap-up
  hotline call --from N --dtmf D   place a simulated call into the sandbox

Settings come from --config, else $HOTLINE_CONFIG, else the sandbox's file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import aiohttp

from ivr.settings import REPO, Settings, SettingsError, load_settings
from ivr.wrapup import DISPOSITIONS

SANDBOX_CONFIG = REPO / "deploy" / "sandbox" / "hotline.toml"


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or os.environ.get("HOTLINE_CONFIG") or SANDBOX_CONFIG
    try:
        return load_settings(path)
    except SettingsError as exc:
        sys.exit(f"hotline: {exc}")


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("HOTLINE_CONFIG") or SANDBOX_CONFIG).resolve()


def cmd_run(args: argparse.Namespace) -> None:
    from ivr.app import serve
    from ivr.logs import configure

    settings = _settings(args)
    configure(settings.engine.log_level)
    try:
        asyncio.run(serve(settings))
    except SettingsError as exc:
        sys.exit(f"hotline: {exc}")


def cmd_sandbox(args: argparse.Namespace) -> None:
    from ivr.sandbox.control import Sandbox, SandboxError

    logging.basicConfig(level=logging.INFO, format="sandbox: %(message)s")
    sandbox = Sandbox(_settings(args), _config_path(args))
    try:
        if args.action == "up":
            sandbox.up()
        elif args.action == "down":
            sandbox.down()
    except SandboxError as exc:
        sys.exit(f"hotline sandbox {args.action}: {exc}")
    for name, state in sandbox.status().items():
        print(f"{name:10} {state}")


def cmd_advocate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    token = args.token or os.environ.get("HOTLINE_TOKEN")
    if not token:
        sys.exit("hotline advocate: a token is needed (--token or $HOTLINE_TOKEN)")
    base = args.api or f"http://{settings.engine.http_host}:{settings.engine.http_port}"

    async def go() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        method, path = ("GET", f"/advocates/{args.id}") if args.action == "show" else \
            ("POST", f"/advocates/{args.id}/{args.action}")
        body = {"disposition": args.disposition} if args.disposition else None
        async with aiohttp.ClientSession(headers=headers) as session:
            try:
                async with session.request(method, base + path, json=body) as response:
                    body = await response.json(content_type=None)
                    print(json.dumps(body, indent=2))
                    return 0 if response.status < 400 else 1
            except aiohttp.ClientError as exc:
                print(f"hotline advocate: engine API at {base} unreachable ({exc})", file=sys.stderr)
                return 2

    sys.exit(asyncio.run(go()))


def cmd_call(args: argparse.Namespace) -> None:
    from ivr.sandbox.demo_call import place_and_follow

    settings = _settings(args)
    report = asyncio.run(place_and_follow(settings, caller=args.from_, to=args.to or settings.lines.toll_free,
                                          dtmf=args.dtmf, wait_s=args.wait, keep=args.keep))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in report["story"]:
            print(line)
    sys.exit(0 if report["outcome"] in {"advocate", "backup"} else 1)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hotline", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--config", help="settings file (default: $HOTLINE_CONFIG or the sandbox's)")
    sub = top.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the engine").set_defaults(func=cmd_run)

    sandbox = sub.add_parser("sandbox", help="the local Asterisk, Redis and simulated phones")
    sandbox.add_argument("action", choices=["up", "down", "status"])
    sandbox.set_defaults(func=cmd_sandbox)

    advocate = sub.add_parser("advocate", help="an advocate's state, through the engine's API")
    advocate.add_argument("action", choices=["show", "login", "logout", "available", "away", "end-wrap-up"])
    advocate.add_argument("id")
    advocate.add_argument("--token", help="the advocate's bearer token (or $HOTLINE_TOKEN)")
    advocate.add_argument("--api", help="engine API base URL (default: from settings)")
    advocate.add_argument("--disposition", choices=list(DISPOSITIONS),
                          help="with end-wrap-up: the call's category, for the hotline's statistics")
    advocate.set_defaults(func=cmd_advocate)

    call = sub.add_parser("call", help="place a simulated PSTN call into the running sandbox")
    call.add_argument("--from", dest="from_", required=True, metavar="NUMBER")
    call.add_argument("--dtmf", default="", help="digits to press after the hotline answers ('w' pauses)")
    call.add_argument("--to", help="number dialled (default: the toll-free line)")
    call.add_argument("--wait", type=float, default=60.0, help="seconds to follow the call")
    call.add_argument("--keep", action="store_true", help="leave the call up once routed")
    call.add_argument("--json", action="store_true")
    call.set_defaults(func=cmd_call)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.func(args)
