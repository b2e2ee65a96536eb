"""The typer command line; commands are thin and render data returned by the core."""
