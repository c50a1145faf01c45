"""bootlab.console."""
