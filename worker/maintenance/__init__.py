"""Periodic work fired by beat: the sweeper (stalled jobs), retention (purge), recurring jobs,
and the reports of what each run did."""
