"""Running the tick: the loop body, the tick's own process, shared memory with the supervisor, real-time settings."""
