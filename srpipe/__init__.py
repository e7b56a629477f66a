"""srpipe: reproducible single-image super-resolution pipeline."""

__version__ = "0.1.0"
