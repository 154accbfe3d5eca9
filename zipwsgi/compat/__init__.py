"""Drop-in APIs of other streaming-zip libraries, on zipwsgi's engine.

- :mod:`zipwsgi.compat.zipstream`: python-zipstream's and zipstream-new's ``ZipFile``
  (``from zipstream import ZipFile, ZIP_DEFLATED`` becomes
  ``from zipwsgi.compat.zipstream import ZipFile, ZIP_DEFLATED``).

zipstream-ng's names (``from_path``, ``info_list``, ``comment``, zipfile's integer
constants) are on :class:`zipwsgi.ZipStream` itself; the README's migration table lists
what changes.
"""
