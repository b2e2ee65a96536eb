"""Database shell: connection pools per shard, migrations."""
