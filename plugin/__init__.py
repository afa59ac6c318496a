"""datumflow plugin."""
