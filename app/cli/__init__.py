"""The command line's entry points: what each ``familylog-tray`` flag runs, and its exit codes."""
