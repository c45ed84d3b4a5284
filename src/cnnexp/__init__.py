"""cnnexp: train, reshape, sweep and compare convolutional networks on MNIST."""

from pathlib import Path

__version__ = "0.1.0"

# conf/ sits beside src/ in the checkout; an editable install (make setup) keeps it reachable
# from any working directory.
PROJECT_DIR = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_DIR / "conf"
