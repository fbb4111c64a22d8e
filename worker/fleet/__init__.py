"""State every worker on every host shares in Redis: the Akool rate limit, the getToken token,
the voice list and the duration history."""
