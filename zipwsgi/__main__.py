"""``python -m zipwsgi``: the same command line as the ``zipwsgi`` console script."""

from zipwsgi.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
