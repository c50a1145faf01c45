"""bootlab.lint."""
