"""bootlab.profile."""
