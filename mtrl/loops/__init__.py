"""Training loops and the context they share."""
