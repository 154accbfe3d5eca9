"""Archive formats: records packed from plain values, no I/O (zip; tar next).

This layer imports nothing from the engine or the HTTP layer; ``tests/test_layers.py``
enforces it.
"""
