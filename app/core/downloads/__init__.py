"""Get models from the Hugging Face Hub: find them, see whether they fit, download, verify, resume."""
