"""llama-server processes: launching, health, ports, their states and ownership records."""
