"""whisperd: a watched-folder transcription service built on OpenAI Whisper."""

__version__ = "0.1.0"
