"""The middleware over every file of ``$ZIPWSGI_LOAD_FILES``, for load tests under
waitress (``python tests/load_app.py``, 8 threads) and gunicorn (``load_app:application``).

(A helper, not a test module.)
"""

from __future__ import annotations

import os
import sys

from zipwsgi import ZipMiddleware

FILES = os.environ.get("ZIPWSGI_LOAD_FILES", ".")


def _manifest() -> bytes:
    lines = []
    for name in sorted(os.listdir(FILES)):
        size = os.path.getsize(os.path.join(FILES, name))
        lines.append(f"- {size} /files/{name} {name}")
    return "\n".join(lines).encode()


def _app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("X-Archive-Files", "zip")])
    return [_manifest()]


application = ZipMiddleware(_app, roots={"/files/": FILES})

if __name__ == "__main__":
    from waitress.server import create_server

    server = create_server(application, host="127.0.0.1", port=0, threads=int(sys.argv[1]))
    print(f"Serving on http://127.0.0.1:{server.effective_port}/", flush=True)
    server.run()
