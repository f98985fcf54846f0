"""The ``cabinet`` command: run, migrate, worker, createuser, demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys

from server.settings import get_settings


async def _with_db(coro_factory):  # type: ignore[no-untyped-def]
    from server import db

    settings = get_settings()
    await db.init_db(settings.database_url)
    try:
        return await coro_factory()
    finally:
        await db.close_db()


async def _migrate() -> None:
    from server import db

    try:
        await db.migrate(get_settings().database_url)
    finally:
        # Close the connections whatever happened: an open pool must not outlive the command.
        await db.close_db()


async def _demo(force_print: bool = True) -> None:
    from server.demo import create_demo, demo_exists

    async def go() -> None:
        if await demo_exists():
            if force_print:
                print("The database already holds a practice; no demo data added.")
            return
        logins = await create_demo()
        print(f"\nDemo practice created. Sign in at {get_settings().public_url} with:")
        for role, email, password in logins:
            print(f"  {role:<13} {email:<32} {password}")
        print()

    await _with_db(go)


def cmd_migrate(args: argparse.Namespace) -> None:
    asyncio.run(_migrate())
    print("Migrations applied.")


def cmd_demo(args: argparse.Namespace) -> None:
    asyncio.run(_migrate())
    asyncio.run(_demo())


def cmd_run(args: argparse.Namespace) -> None:
    import uvicorn

    port = int(args.port or os.environ.get("PORT", "8000"))
    if not os.environ.get("PUBLIC_URL"):
        # Links in emails, the demo's banner and the Origin checks follow where this
        # server listens (--port 8123 must not send people to :8000).
        shown = "127.0.0.1" if args.host in ("", "0.0.0.0", "::") else args.host
        os.environ["PUBLIC_URL"] = f"http://{shown}:{port}"
    asyncio.run(_migrate())
    if not args.no_demo:
        asyncio.run(_demo(force_print=False))
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host,
        port=port,
        # permessage-deflate keeps a compression context per socket: tens of KiB each.
        ws_per_message_deflate=False,
        proxy_headers=True,
        log_level="info",
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from server import db
    from server.worker import run_worker

    async def main() -> None:
        settings = get_settings()
        await db.init_db(settings.database_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print("Cabinet worker running.", flush=True)
        try:
            await run_worker(stop)
        finally:
            await db.close_db()

    asyncio.run(main())


def cmd_createuser(args: argparse.Namespace) -> None:
    from models.accounts import Practice, StaffRole
    from server.actions.accounts import do_create_staff_user

    password = args.password or getpass.getpass("Password: ")

    async def go() -> None:
        practice = await Practice.first()
        if practice is None:
            settings = get_settings()
            practice = await Practice.create(
                name=args.practice or "My practice",
                time_zone=settings.time_zone,
                locale=settings.locale,
            )
        user = await do_create_staff_user(
            None,
            practice,
            email=args.email,
            first_name=args.first_name,
            last_name=args.last_name,
            role=StaffRole(args.role),
            password=password,
        )
        print(f"Created {user.role.value} {user.email} (id {user.id}).")

    asyncio.run(_migrate())
    asyncio.run(_with_db(go))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="cabinet")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="migrate, add demo data to an empty database, and serve")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", default=None)
    run.add_argument("--no-demo", action="store_true")
    run.set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("worker", help="run the background worker").set_defaults(func=cmd_worker)
    sub.add_parser("demo", help="create the demo practice").set_defaults(func=cmd_demo)
    cu = sub.add_parser("createuser", help="create a staff user")
    cu.add_argument("email")
    cu.add_argument("--first-name", default="Admin")
    cu.add_argument("--last-name", default="User")
    cu.add_argument("--role", default="owner", choices=["owner", "therapist", "office_admin"])
    cu.add_argument("--password")
    cu.add_argument("--practice")
    cu.set_defaults(func=cmd_createuser)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
