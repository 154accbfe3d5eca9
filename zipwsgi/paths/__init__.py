"""The one path policy: what a name inside an archive may be, and which paths on disk a
request may reach.

Every rule about paths lives here, once, and the engine, the middleware and the app
import it rather than restating it:

- :func:`normalise_name`: the safe, canonical form of an archive name, so no archive we
  write can make an extractor create a file outside its target folder.
- :func:`split_url_path` and :class:`Root`: a decoded URL path is split on ``/`` only;
  ``..``, NUL and backslashes are refused outright; every step is resolved and must stay
  inside the root's real path, so a symlink that leaves the root is never followed.
  Percent-decoding is the server's job (PEP 3333) and nothing here decodes a second
  time, so ``%252e%252e`` stays a literal, harmless name.
- :func:`is_within`: the containment test every symlink check uses.
- Names starting with a dot are invisible in a :class:`Root` unless ``show_hidden``; the
  check runs on the resolved path too, so a visible link to a hidden folder is hidden.
- Folder contents: a symlink is followed only while its target stays inside the folder
  being walked; a folder is entered again only when it is not one of its own ancestors.

Security note: checks and use are separate system calls, so someone who can write into
the served tree could swap a component for a symlink in between. Serve trees that
untrusted local users cannot write to; remote clients can only name paths.
"""

from zipwsgi.paths.names import check_encoded_name, normalise_name
from zipwsgi.paths.root import MAX_PATH_BYTES, MAX_PATH_DEPTH, Child, Root, split_url_path
from zipwsgi.paths.walk import (
    FolderWalk,
    Found,
    hidden_below,
    is_within,
    readable,
    surely_readable,
    walk_folder,
)

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "Child",
    "Found",
    "FolderWalk",
    "Root",
    "check_encoded_name",
    "hidden_below",
    "is_within",
    "normalise_name",
    "readable",
    "split_url_path",
    "surely_readable",
    "walk_folder",
]
