"""The exception hierarchy of whisperd.

Every error says what happened and what the user can do about it. The job boundary (the
worker, the ``transcribe`` command) catches :class:`WhisperdError` and reports ``str(err)``
as one line; anything else escaping there is a bug and is logged with its traceback.

``transient`` tells the failure policy whether trying again later can help (a full disk,
CUDA out of memory, an I/O error on a network share) or not (corrupt media).

``environment`` marks errors that are not about the file at all (CUDA gone after a driver
update, a model missing or damaged, the outbox full or unmounted): the job goes back to the
queue without an attempt counted, and the worker pauses with a backoff until the cause is
gone, instead of failing every file in turn.
"""

from __future__ import annotations


class WhisperdError(Exception):
    """Base class: a failure whisperd understands and can explain in one line."""

    transient: bool = False
    environment: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# --- configuration -----------------------------------------------------------------------


class ConfigError(WhisperdError):
    """The configuration file is missing, unreadable or invalid; ``errors`` lists every problem."""

    def __init__(self, path: object, errors: list[str]) -> None:
        self.path = path
        self.errors = list(errors)
        count = len(self.errors)
        head = f"{path}: {count} configuration error{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  {e}" for e in self.errors))


# --- models ------------------------------------------------------------------------------


class ModelError(WhisperdError):
    """A model could not be found, fetched, verified, imported or loaded."""

    environment = True  # no file in the queue can be transcribed with it either


class ModelNotFoundError(ModelError):
    """The configured model is neither a Whisper model name, a checkpoint path, nor imported."""


class ModelDownloadError(ModelError):
    """An official model is not in model_dir and downloading it failed (usually: no network)."""


class ModelChecksumError(ModelError):
    """An imported checkpoint no longer matches the checksum recorded when it was imported."""


class ModelImportError(ModelError):
    """A CTranslate2 / faster-whisper model directory could not be converted."""

    environment = False  # a command's error, not a running service's


# --- media -------------------------------------------------------------------------------


class MediaError(WhisperdError):
    """The source file cannot be decoded into audio; retrying the same bytes will not help."""


class NotMediaError(MediaError):
    """The file is not in any audio or video format FFmpeg knows."""


class EmptyMediaError(MediaError):
    """The file is empty (0 bytes) or holds no audio samples at all."""


class NoAudioStreamError(MediaError):
    """The file is a valid container (e.g. a video) without any audio stream."""


class CorruptMediaError(MediaError):
    """The file looks like media but its data is damaged or truncated."""


class SourceReadError(WhisperdError):
    """The source could not be read (I/O error, vanished, permission); may work later."""

    transient = True


# --- engine ------------------------------------------------------------------------------


class EngineError(WhisperdError):
    """The speech recognition engine failed on a file for a reason that is not the media."""


class OutOfMemoryError(EngineError):
    """The device ran out of memory (CUDA OOM); retried later, possibly when memory is free."""

    transient = True


class EngineUnavailableError(EngineError):
    """The configured engine or device is not available in this installation."""

    environment = True


class SpeechDetectionError(WhisperdError):
    """Speech detection (vad.enabled) cannot run here: silero-vad missing or unloadable."""

    environment = True


# --- outputs -----------------------------------------------------------------------------


class OutputError(WhisperdError):
    """Outputs could not be written."""


class OutputPathError(OutputError):
    """An output path would fall outside the outbox (e.g. a bad output_name template)."""


class OutputWriteError(OutputError):
    """Writing an output failed: disk full, permission, I/O error; retried later."""

    transient = True


class OutboxUnavailableError(OutputWriteError):
    """The outbox cannot take any file: full, read-only, unmounted or not writable."""

    environment = True
    permission = False  # refused for this user: beside the source, one folder's matter


class FolderNotWritableError(OutputWriteError):
    """A video's own folder refuses whisperd's files (``outputs_beside_source``): that file
    fails (after its retries), the rest of the library goes on."""


class ResourceError(WhisperdError):
    """The file is too long for the configured limits or the memory this machine has."""


# --- service -----------------------------------------------------------------------------


class ServiceError(WhisperdError):
    """The service cannot start or run as configured."""


class AlreadyRunningError(ServiceError):
    """Another whisperd service holds the lock on this state_dir."""


class LedgerError(ServiceError):
    """The job ledger (SQLite, or the PostgreSQL database) cannot be opened, reached or used."""


class LeaseLostError(ServiceError):
    """This server's claim on a job ran out or was taken over by another server.

    Not a :class:`LedgerError`: trying the write again cannot help. The job belongs to
    whichever server claims it next; this server drops its result (nothing is published).
    """


# --- media server --------------------------------------------------------------------------


class MediaServerError(WhisperdError):
    """The media server could not be told about new subtitles (logged and counted; no file
    fails for it)."""


class MediaServerAuthError(MediaServerError):
    """The server refused the token (401/403); retrying with the same token cannot help."""


class MediaServerRejected(MediaServerError):
    """The server refused the request itself (another 4xx, no library holds the folder)."""


class MediaServerUnavailable(MediaServerError):
    """Timeout, connection refused, 5xx or 429: worth retrying later."""

    transient = True
