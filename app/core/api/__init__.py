"""The LM Studio-compatible API and the OpenAI proxy (Qt-free)."""
