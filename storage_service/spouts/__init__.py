"""spouts."""
