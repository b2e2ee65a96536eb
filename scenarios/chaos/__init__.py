"""Chaos experiments (`payctl chaos run NAME`); found with payctl.assets.chaos_dir()."""
