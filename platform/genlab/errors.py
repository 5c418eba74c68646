"""Errors that jobs turn into one clear line and a non-zero exit code."""


class GenlabError(Exception):
    """Base of every error a user can cause; jobs print it as one line and exit with `exit_code`."""

    exit_code = 1


class ConfigError(GenlabError):
    """A config file is missing or malformed, or a key is unknown or has the wrong type (exit 2)."""

    exit_code = 2


class DatasetMissingError(GenlabError):
    """A dataset's files are not where the config says; the message says where to put them."""


class PoisonSetError(GenlabError):
    """A PoisonSet file is inconsistent (shape, range, indices, hash, pickle) and was refused."""


class CheckpointError(GenlabError):
    """A checkpoint is missing, corrupt or not in the safetensors + JSON format."""


class TrainingDivergedError(GenlabError):
    """A training loop produced a non-finite loss."""
