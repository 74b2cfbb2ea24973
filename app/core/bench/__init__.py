"""The speed benchmark: a fixed prompt set against the app's model and other OpenAI-compatible servers."""
