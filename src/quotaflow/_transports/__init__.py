"""The three layers of the stack, each a sync and async transport. Strictly private."""
