"""Records of a session: CSV telemetry logs, the logger, offline replay, the session report."""
