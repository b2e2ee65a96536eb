"""The ingest HTTP service: authorize / capture / refund / cancel / get."""
