"""The ARI adapter: Asterisk's events in, domain decisions out, ARI requests made."""
