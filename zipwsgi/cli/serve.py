"""``zipwsgi serve``: the standalone app on waitress, with the limits of
:mod:`zipwsgi.serve`, optional HTTP Basic authentication and a warning beyond loopback."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from zipwsgi.cli.common import EXIT_OK, EXIT_USAGE, CommandError, error

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["run"]


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """USER:PASSWORD from --auth, --auth-file or $ZIPWSGI_AUTH, in that order; None if none."""
    if args.auth is not None:
        text, where = args.auth, "--auth"
    elif args.auth_file is not None:
        try:
            with open(args.auth_file, encoding="utf-8") as f:
                text = f.readline()
        except OSError as exc:
            raise CommandError(f"cannot read {args.auth_file}: {exc.strerror or exc}") from exc
        where = args.auth_file
    elif os.environ.get("ZIPWSGI_AUTH"):
        text, where = os.environ["ZIPWSGI_AUTH"], "ZIPWSGI_AUTH"
    else:
        return None
    from zipwsgi.app.auth import parse_credentials

    try:
        return parse_credentials(text)
    except ValueError as exc:  # the message never repeats the secret
        raise CommandError(f"{where}: {exc}", EXIT_USAGE) from exc


def run(args: argparse.Namespace) -> int:
    root = args.dir
    if not os.path.exists(root):
        raise CommandError(f"no such file or directory: {root}")
    if not os.path.isdir(root):
        raise CommandError(f"not a directory: {root}")
    credentials = _credentials(args)
    try:
        from zipwsgi.app import ZipApp
    except ImportError as exc:
        raise CommandError(f"the standalone app (zipwsgi.app) is not available: {exc}") from exc
    from zipwsgi.serve import ServeSettings, create_server

    app: WSGIApplication = ZipApp(
        root,
        compression=args.compression,
        show_hidden=args.show_hidden,
        validator=args.validator,
    )
    if credentials is not None:
        from zipwsgi.app.auth import BasicAuth

        app = BasicAuth(app, *credentials, realm=os.path.basename(os.path.abspath(root)))
    settings = ServeSettings(threads=args.threads)
    try:
        server = create_server(app, args.host, args.port, settings)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {reason}") from exc
    if not _is_loopback(args.host):
        guard = "only to those with the --auth password" if credentials else "to anyone"
        error(
            f"warning: listening on {args.host}: everything under {os.path.abspath(root)} "
            f"is readable {guard} who can reach this address"
            + ("" if credentials else " (see --auth)")
        )
    # One host name may resolve to several addresses (localhost: IPv4 and IPv6).
    listen = getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)
    ]
    print(f"Serving {os.path.abspath(root)}", flush=True)
    if credentials is not None:
        print(f"  HTTP Basic authentication, user {credentials[0]!r}", flush=True)
    for host, port in listen:
        shown = f"[{host}]" if ":" in str(host) else host
        print(f"  http://{shown}:{port}/", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        server.run()  # returns after shutting its workers down on Ctrl+C
    except KeyboardInterrupt:  # pragma: no cover - waitress normally catches it
        pass
    finally:
        server.close()
    return EXIT_OK
