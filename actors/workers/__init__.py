"""Actors that take work from the scheduler: ingest (decoding, chunk planning) and the
transcriber (the model, one window per request, and the repair of skipped speech)."""
