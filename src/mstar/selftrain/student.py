"""The stage-2 student: the patch encoder being trained plus its copy of the stage-1 projection.

``features = backbone(x)`` (B, D) is what ``mstar extract`` will produce with the exported weights;
``projected = proj(features)`` (B, E) lives in the aggregator's token space and is compared with the
teacher's targets. ``proj`` starts as a copy of the stage-1 ``proj`` (the teacher keeps its own frozen one).
"""

from __future__ import annotations

from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.features.encoders import Encoder, create_encoder


class Student(nn.Module):
    """Backbone + projection.

    Args:
        backbone: a patch encoder ``(B, 3, S, S) -> (B, D)``.
        proj: ``Linear(D, E)``.
    """

    def __init__(self, backbone: nn.Module, proj: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = proj

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, D), projected (B, E))``."""
        f = self.backbone(x)  # (B, D)
        return f, self.proj(f)  # (B, E)


def build_student(encoder: str, checkpoint: str | None, proj_state: dict[str, Tensor], *,
                  train_proj: bool = False, grad_checkpointing: bool = False) -> tuple[Student, Encoder]:
    """The trainable student and the registry entry it came from.

    Args:
        encoder: registry name, ``timm:<model>`` or a stage-2 sidecar name.
        checkpoint: initial weights (loaded strictly), or None for the registry's seeded random init.
        proj_state: ``{'weight' (E, D), 'bias' (E,)}`` of the stage-1 proj.
        train_proj: train the projection (default: frozen, like the teacher's).
        grad_checkpointing: recompute transformer blocks in backward (timm models only).

    Raises:
        MstarError: the encoder's width differs from the projection's input, or it cannot checkpoint.
    """
    enc = create_encoder(encoder, checkpoint, random_init=checkpoint is None)
    weight = proj_state["weight"]
    if enc.dim != weight.shape[1]:
        raise MstarError(f"--encoder {encoder}: gives {enc.dim}-d features but the aggregator's proj takes "
                         f"{weight.shape[1]}-d; the student must be the architecture of the stage-1 patch "
                         "encoder")
    backbone = enc.model.train().requires_grad_(True)
    if grad_checkpointing:
        if not hasattr(backbone, "set_grad_checkpointing"):
            raise MstarError(f"--encoder {encoder}: no gradient checkpointing for this architecture; "
                             "set grad_checkpointing: false")
        backbone.set_grad_checkpointing(True)
    proj = nn.Linear(weight.shape[1], weight.shape[0])
    proj.load_state_dict({"weight": weight.clone(), "bias": proj_state["bias"].clone()})
    proj.requires_grad_(train_proj)
    return Student(backbone, proj), enc
