"""What is on this computer: GGUF models and their headers, llama-server, FamilyLog's .env."""
