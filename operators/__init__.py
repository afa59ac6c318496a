"""datumflow operators."""
