"""The tray app's Qt widgets: they show the core's state and call its coroutines, no business logic."""
