"""bootlab.vm."""
