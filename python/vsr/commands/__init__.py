"""Subcommands of the ``vsr`` CLI, one module each (see ``vsr.cli``)."""
