"""git: the user's repository (read only) and finbisect's own clone and work trees."""
