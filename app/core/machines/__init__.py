"""Other machines: this GPU shared as an RPC worker, others' workers, and peer servers."""
