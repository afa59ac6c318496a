"""service/console."""
