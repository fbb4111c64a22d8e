"""``akool-audio``: the command line (``main``) and batch files (``batch``)."""
