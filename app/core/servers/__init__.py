"""llama-server processes: launching, health, ports, ownership records and supervision."""
