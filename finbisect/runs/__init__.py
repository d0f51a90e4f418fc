"""Running things: the one process runner, the repro probe, timing with pyperf, machine facts."""
