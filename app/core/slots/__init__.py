"""Keeping a model's context across a switch: llama-server's slot KV cache saved before it stops, restored when it is loaded again."""
