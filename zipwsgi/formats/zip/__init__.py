"""The zip format: byte records (:mod:`.records`) and the layout decisions (:mod:`.layout`)."""
