"""Multi-task agents and the pieces they compose (gradient balancing, ...)."""
