"""The engine: start-up, the server and client loops, evaluation scheduling (SPEC §1, §6)."""
from .run import train
from .setup import SetupError

__all__ = ["train", "SetupError"]
