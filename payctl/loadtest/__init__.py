"""Load testing: run k6, parse any k6 output, grade, compare and render reports."""
