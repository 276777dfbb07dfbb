"""Load upstream mSTAR weights: downstream MIL models and the stage-1 slide aggregator.

Downstream models (``DAttention``/AttMIL, ``TransMIL``): the upstream state_dict is converted exactly,
key by key, into a :class:`MILModel` state_dict: ``classifier.*`` (TransMIL) and ``classifier.0.*``
(ABMIL) become ``head.fc.*``, every other key ``k`` becomes ``aggregator.k``. Loading checks that every key
is consumed, none is missing and every shape matches, then loads with ``strict=True``.

Stage-1 checkpoints (``{'model_state_dict': sd}``, keys optionally prefixed ``module.``): ``proj.*`` is a
Linear(D, 512) and ``vision_encoder.*`` a TransMIL trunk without input projection (see
:func:`load_stage1_aggregator`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.abmil import ABMIL
from mstar.models.heads import make_head
from mstar.models.mil import MILModel
from mstar.models.transmil import TransMIL
from mstar.run.checkpoint import load_checkpoint

StateDict = Mapping[str, Tensor]
_HEAD_KEYS = {"classifier.weight": "head.fc.weight", "classifier.bias": "head.fc.bias",
              "classifier.0.weight": "head.fc.weight", "classifier.0.bias": "head.fc.bias"}
PROJ_MODES = ("fresh", "checkpoint", "none")


def read_checkpoint(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    """A checkpoint mapping, read from ``source`` on CPU (tensors only) unless it is already a mapping.

    Raises:
        MstarError: If the file is missing or cannot be read.
    """
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    if not path.is_file():
        raise MstarError(f"checkpoint {path} does not exist")
    return load_checkpoint(path)


def strip_module_prefix(state_dict: StateDict) -> dict[str, Tensor]:
    """Remove the ``module.`` prefix(es) that DataParallel/DDP put in front of every key."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


def load_exact(module: nn.Module, state_dict: StateDict, what: str) -> None:
    """Load ``state_dict`` into ``module`` with every key consumed, none missing and all shapes equal.

    Raises:
        MstarError: Naming (up to 5 of) the missing, unexpected and mis-shaped keys.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state_dict and state_dict[k].shape != v.shape]
    groups = (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
    problems = [f"{name}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for name, keys in groups if keys]
    if problems:
        raise MstarError(f"{what} does not match the model; " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True)


def upstream_to_mil(state_dict: StateDict) -> dict[str, Tensor]:
    """Upstream DAttention/TransMIL keys -> :class:`MILModel` keys (``module.`` stripped)."""
    return {_HEAD_KEYS.get(k, f"aggregator.{k}"): v for k, v in strip_module_prefix(state_dict).items()}


def mil_to_upstream(model: MILModel) -> dict[str, Tensor]:
    """The upstream-layout state_dict of ``model`` (inverse of :func:`upstream_to_mil`)."""
    head = "classifier.0" if isinstance(model.aggregator, ABMIL) else "classifier"
    out = {}
    for key, value in model.state_dict().items():
        new = key.replace("head.fc", head, 1) if key.startswith("head.fc.") else key[len("aggregator."):]
        out[new] = value
    return out


def _transmil_geometry(trunk: StateDict) -> dict[str, int]:
    """``dim``, ``heads`` and ``dim_head`` of a TransMIL trunk, read from its weights."""
    dim = trunk["cls_token"].shape[-1]
    heads = trunk["layer1.attn.res_conv.weight"].shape[0]
    dim_head = trunk["layer1.attn.to_qkv.weight"].shape[0] // (3 * heads)
    return {"dim": dim, "heads": heads, "dim_head": dim_head}


def from_upstream(source: str | Path | StateDict, task: str, **kwargs: Any) -> MILModel:
    """Build a :class:`MILModel` from an upstream downstream-task state_dict and load it exactly.

    Sizes (input width, widths, classes, heads) are read from the weights; ``task`` cannot be (diagnosis
    and survival checkpoints share keys) and must be given.

    Args:
        source: Path of a ``torch.save``-d state_dict or of upstream's saved checkpoint
            (``{'state_dict': sd, 'epoch': ...}``), or the state_dict.
        task: ``classification`` (diagnosis/molecular) or ``survival``.
        **kwargs: Extra aggregator arguments (``act="gelu"``, ``num_landmarks``, ...).

    Raises:
        MstarError: If the keys are neither upstream ABMIL (DAttention) nor TransMIL, or do not match.
    """
    ckpt = read_checkpoint(source)
    inner = ckpt.get("state_dict")  # upstream's engine saves {'state_dict': sd, 'epoch': ..., ...}
    sd = strip_module_prefix(inner if isinstance(inner, Mapping) else ckpt)
    if "attention.0.weight" in sd and "feature.0.weight" in sd:
        w = sd["feature.0.weight"]
        sizes = {"in_dim": w.shape[1], "dim": w.shape[0], "attn_dim": sd["attention.0.weight"].shape[0]}
        agg: nn.Module = ABMIL(**{**sizes, **kwargs})
    elif "cls_token" in sd and "layer1.attn.res_conv.weight" in sd:
        geo = _transmil_geometry(sd)
        has_proj = "_fc1.0.weight" in sd
        in_dim = sd["_fc1.0.weight"].shape[1] if has_proj else geo["dim"]
        sizes = {"in_dim": in_dim, "input_proj": has_proj, **geo}
        agg = TransMIL(**{**sizes, **kwargs})
    else:
        raise MstarError("state_dict is neither upstream ABMIL/DAttention (feature.*, attention.*) nor "
                         "TransMIL (cls_token, layer1.*)")
    classifier = sd.get("classifier.weight", sd.get("classifier.0.weight"))
    if classifier is None:
        raise MstarError("state_dict has no classifier.* weights; it is not an upstream downstream model")
    n_classes = classifier.shape[0]
    model = MILModel(agg, make_head(task, agg.embed_dim, n_classes))
    load_exact(model, upstream_to_mil(sd), "upstream state_dict")
    return model


def load_stage1_aggregator(source: str | Path | Mapping[str, Any], *, in_dim: int = 1024, proj: str = "fresh",
                           **kwargs: Any) -> TransMIL:
    """A TransMIL initialised from a stage-1 checkpoint (the "mSTAR+"/TransMIL_Pre setting).

    The trunk (``cls_token``, ``pos_layer``, ``layer1``, ``layer2``, ``norm``) always comes from
    ``vision_encoder.*``, and every trunk key must be present. The input projection depends on ``proj``:

    - ``"fresh"`` (upstream TransMIL_Pre): a new Linear(in_dim, dim) + ReLU + Dropout(0.25),
      xavier-initialised; the checkpoint's ``proj`` is NOT used (upstream loads only ``vision_encoder.*``,
      strict=False).
    - ``"checkpoint"``: the checkpoint's ``proj`` Linear with no activation: exactly the stage-1 slide encoder
      (use it for slide embeddings and as the stage-2 teacher); ``in_dim`` is read from ``proj.weight``.
    - ``"none"``: Identity; features must already be ``dim`` wide (upstream TransMIL_Pre for 512-d features).

    Args:
        source: Checkpoint path or mapping: ``{'model_state_dict': sd}`` or ``sd`` itself.
        in_dim: Patch feature width for ``proj="fresh"``.
        proj: ``fresh``, ``checkpoint`` or ``none``.
        **kwargs: Extra :class:`TransMIL` arguments (``act``, ``dropout``, ``num_landmarks``, ...).

    Raises:
        MstarError: If ``vision_encoder.*`` (or, for ``proj="checkpoint"``, ``proj.*``) keys are missing
            or do not fit.
    """
    ckpt = read_checkpoint(source)
    sd = strip_module_prefix(ckpt.get("model_state_dict", ckpt))
    trunk = {k[len("vision_encoder."):]: v for k, v in sd.items() if k.startswith("vision_encoder.")}
    needed = ("cls_token", "layer1.attn.to_qkv.weight", "layer1.attn.res_conv.weight")
    if not all(k in trunk for k in needed):
        name = "checkpoint" if isinstance(source, Mapping) else str(source)
        if "pytorch-lightning_version" in ckpt or "loops" in ckpt:
            raise MstarError(f"{name}: a training resume point (Lightning), not a stage-1 model; pass the "
                             "run's checkpoints/stage1.pt")
        raise MstarError(f"{name}: no stage-1 aggregator (expected {{'model_state_dict': {{...}}}} with "
                         "vision_encoder.cls_token, vision_encoder.layer1.* ... and proj.* keys: the "
                         "checkpoints/stage1.pt of `mstar pretrain`, or upstream mSTAR's stage-1 file)")
    geo = _transmil_geometry(trunk)
    if proj == "checkpoint":
        if "proj.weight" not in sd or "proj.bias" not in sd:
            raise MstarError("checkpoint has no proj.weight/proj.bias; use proj='fresh' or proj='none'")
        model = TransMIL(in_dim=sd["proj.weight"].shape[1], input_proj="linear", **{**geo, **kwargs})
        trunk.update({"_fc1.0.weight": sd["proj.weight"], "_fc1.0.bias": sd["proj.bias"]})
    elif proj == "fresh":
        model = TransMIL(in_dim=in_dim, input_proj="mlp", **{**geo, **kwargs})
        trunk = {**{k: v for k, v in model.state_dict().items() if k.startswith("_fc1.")}, **trunk}
    elif proj == "none":
        model = TransMIL(in_dim=geo["dim"], input_proj="none", **{**geo, **kwargs})
    else:
        raise MstarError(f"proj={proj!r} is not one of {PROJ_MODES}")
    load_exact(model, trunk, "stage-1 vision_encoder")
    return model


def to_stage1_state_dict(model: TransMIL) -> dict[str, Tensor]:
    """Stage-1 checkpoint layout of ``model``: ``proj.*`` (for a Linear projection) + ``vision_encoder.*``.

    Raises:
        MstarError: If the input projection has an activation (the stage-1 ``proj`` has none).
    """
    out: dict[str, Tensor] = {}
    fc1 = model._fc1
    if isinstance(fc1, nn.Sequential):
        if len(fc1) != 1:
            raise MstarError("stage-1 layout needs input_proj='linear' or 'none' (proj has no activation)")
        out.update({"proj.weight": fc1[0].weight, "proj.bias": fc1[0].bias})
    out.update({f"vision_encoder.{k}": v for k, v in model.state_dict().items() if not k.startswith("_fc1.")})
    return out
