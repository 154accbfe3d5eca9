"""The tar format (POSIX pax): byte records (:mod:`.records`) and the layout decisions
(:mod:`.layout`)."""
