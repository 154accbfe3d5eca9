"""The archive engine: the plan, the sources, compression and the lazy stream.

It knows the formats below it and nothing about HTTP.
"""
