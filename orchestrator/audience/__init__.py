"""Who we may reach and how: the customers' own choices (``preferences``: unsubscribe links and
the preference centre)."""
