"""Context Encoders (Pathak et al., CVPR 2016): feature learning by inpainting, in PyTorch."""

from .checkpoint import load_checkpoint
from .config import Config, load_config
from .fill import fill_batch
from .inpaint import Inpainter
from .loading import inpaint, load_model
from .models import Discriminator, Generator, build_models
from .options import InferenceOptions
from .pretrained import export, list_pretrained
from .train import train, train_step

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Discriminator",
    "Generator",
    "InferenceOptions",
    "Inpainter",
    "build_models",
    "export",
    "fill_batch",
    "inpaint",
    "list_pretrained",
    "load_checkpoint",
    "load_config",
    "load_model",
    "train",
    "train_step",
    "__version__",
]
