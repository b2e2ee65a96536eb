"""The ops console: a Flask page over the stack's status, Prometheus charts, and load and chaos runs
started as background jobs (the original's admin dashboard, and Grafana's job where Grafana is absent)."""
