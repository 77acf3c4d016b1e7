"""Context Encoders (Pathak et al., CVPR 2016): feature learning by inpainting, in PyTorch."""

from .checkpoint import load_checkpoint, load_generator
from .config import Config, load_config
from .inpaint import Inpainter, fill_batch, inpaint
from .models import Discriminator, Generator, build_models
from .pretrained import list_pretrained, load_pretrained
from .train import train, train_step

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Discriminator",
    "Generator",
    "build_models",
    "fill_batch",
    "inpaint",
    "Inpainter",
    "list_pretrained",
    "load_pretrained",
    "load_checkpoint",
    "load_config",
    "load_generator",
    "train",
    "train_step",
    "__version__",
]
