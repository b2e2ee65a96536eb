"""Chaos experiments: experiments as data, a journaling engine, and the platform's probes/actions."""
