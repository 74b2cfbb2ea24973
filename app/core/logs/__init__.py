"""Logs: the app's own log, following log files, and telling warnings from errors."""
