"""The watch-folder actor: inbox scanning, its own small store, exports beside the audio."""
