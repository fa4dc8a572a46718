"""One function per workflow step, the chunk engine and sweeps."""
