"""bootlab.store."""
