"""Every outbound request but Akool's: where workers may connect (``netguard``), result
downloads (``download``) and notifications to callers (``notify``)."""
