"""HTTP: the archive answer (decided once), the WSGI middleware, manifests and roots.

Nothing here knows byte layouts; the engine gives sizes, validators and ranges.
"""
