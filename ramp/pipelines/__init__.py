"""Entry points that compose actors and the core; one module per `ramp` subcommand."""
