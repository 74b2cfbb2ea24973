"""The model lifecycle: where each model runs, its loads, its use, idle unload, read-ahead and crash supervision."""
