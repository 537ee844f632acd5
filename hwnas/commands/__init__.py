"""CLI subcommand modules; each defines ``register(sub)``. Discovered by hwnas.cli."""
