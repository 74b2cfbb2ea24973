"""Settings on disk and in a running app: the settings file, first-run set-up, applying changes."""
