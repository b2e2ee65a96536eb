"""Operations on a running stack: core functions that return typed data for the CLI, chaos and smoke."""
