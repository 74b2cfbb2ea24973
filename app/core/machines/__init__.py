"""Other machines: this GPU shared as a llama.cpp RPC worker, other machines' workers a model
runs across, and peer servers whose models the app lists and forwards to."""
