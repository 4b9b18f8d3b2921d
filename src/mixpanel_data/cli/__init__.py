"""The `mp` command line: a thin shell over the Workspace."""
