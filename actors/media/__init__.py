"""Audio and transcripts without an actor of their own: decoding files into the PCM cache, the
log-mel reference level, speech detection, transcript formats (txt, srt, vtt, json)."""
