"""Configuration: settings and watchlist schema, the watchlist query language."""
