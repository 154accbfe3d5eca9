"""The standalone app beside a Flask app: Flask at ``/``, a shared folder at ``/files/``.

    python examples/standalone_beside_flask.py [--files DIR] [--port 8080]
    open http://127.0.0.1:8080/                        # Flask's page links to /files/
    curl -OJ 'http://127.0.0.1:8080/files/?download'   # the whole folder as one zip
    curl -OJ http://127.0.0.1:8080/files/docs.zip      # one folder of it

werkzeug's ``DispatcherMiddleware`` hands ``/files/...`` to :class:`zipwsgi.ZipApp` with
``SCRIPT_NAME=/files``; ZipApp builds every link and redirect from ``SCRIPT_NAME``, so it
needs no setting to live under a prefix. Everything else stays Flask's.
"""

from __future__ import annotations

import html

from _common import parse_args
from flask import Flask, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from zipwsgi import ZipApp

MOUNT = "/files"


def make_app(files: str) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        share = html.escape(request.script_root + MOUNT + "/")
        return (
            "<!DOCTYPE html><title>Flask + zipwsgi</title>"
            f'<p>This page is Flask. <a href="{share}">Browse and download the shared '
            "files</a> (zipwsgi's standalone app).</p>"
        )

    # Wrap app.wsgi_app, not app, so `app` stays the Flask object (config, CLI, tests).
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {MOUNT: ZipApp(files)})
    return app


def main() -> None:
    from waitress.server import create_server

    args = parse_args(__doc__.splitlines()[0])
    server = create_server(make_app(args.files), host=args.host, port=args.port)
    base = f"http://{args.host}:{server.effective_port}"
    print(f"Serving on {base}/", flush=True)
    print(f"  shared files: {base}{MOUNT}/", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
