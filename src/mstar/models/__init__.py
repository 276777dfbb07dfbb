"""Every ``nn.Module`` of mstar: slide aggregators, heads, shared blocks and the model registry.

Importing this package registers the built-in architectures (``mstar models`` lists them).
"""

from mstar.models import fusion  # noqa: E402,F401  registers the multimodal survival models (mcat, cmta, ...)
from mstar.models.abmil import ABMIL
from mstar.models.heads import ClassificationHead, SurvivalHead, make_head, survival_from_logits
from mstar.models.mil import MILModel
from mstar.models.output import MILOutput, SlideOutput, SurvivalOutput
from mstar.models.registry import create_mil_model, create_model, list_models, register_model
from mstar.models.transmil import TransMIL

__all__ = [
    "ABMIL",
    "ClassificationHead",
    "MILModel",
    "MILOutput",
    "SlideOutput",
    "SurvivalHead",
    "SurvivalOutput",
    "TransMIL",
    "create_mil_model",
    "create_model",
    "list_models",
    "make_head",
    "register_model",
    "survival_from_logits",
]
