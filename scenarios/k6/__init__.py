"""k6 scripts (`payctl loadtest run NAME`); found with payctl.assets.k6_dir()."""
