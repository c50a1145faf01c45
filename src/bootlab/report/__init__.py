"""bootlab.report."""
