"""xfer: step-budget sweeps of English intermediate-task training, scored zero-shot on XTREME."""

__version__ = "0.1.0"
