"""The `sottovoce` command: the protocol's other face (one control request per command), and
the stack's life cycle (`run` in the foreground, `up`/`down` under supervisord)."""
