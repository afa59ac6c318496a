"""service/s3."""
