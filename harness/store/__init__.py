"""The store: run records written atomically and read back as the tidy runs table (records); a user's own runs CSV checked against the same schema (user_runs)."""
