"""What the system serves over HTTP: today the Akool webhook receiver (``webhook``)."""
