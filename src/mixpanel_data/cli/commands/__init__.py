"""One module per `mp` command group."""
