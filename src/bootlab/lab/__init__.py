"""bootlab.lab."""
