"""Archive formats: records packed from plain values, no I/O (zip and tar).

This layer imports nothing from the engine or the HTTP layer; ``tests/test_layers.py``
enforces it.
"""
