"""datumflow sensors."""
