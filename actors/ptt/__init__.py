"""Push-to-talk: the audio actor (microphone, recorder), the hotkey actor (keys), and the
deliver actor (clipboard, typing)."""
