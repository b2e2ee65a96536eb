"""`payctl mcp serve`: the platform's operations as MCP tools and its reports as MCP resources."""
