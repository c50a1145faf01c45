"""bootlab.cli."""
