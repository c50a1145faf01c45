"""bootlab.packs."""
