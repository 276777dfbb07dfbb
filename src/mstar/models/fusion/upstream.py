"""Load upstream mSTAR multimodal-survival checkpoints (MCAT, MOTCat, Porpoise, CMTA) into our classes.

Our state_dict keys equal upstream's, so loading is ``load_state_dict(strict=True)`` after checking every key
and shape (:func:`mstar.models.upstream.load_exact`). :func:`fusion_from_upstream` recognises the model from
its keys and reads the sizes (patch width, genes per group / omic width, time bins) from the weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mstar.errors import MstarError
from mstar.models.fusion.cmta import CMTA
from mstar.models.fusion.mcat import MCAT
from mstar.models.fusion.motcat import MOTCat
from mstar.models.fusion.porpoise import Porpoise
from mstar.models.upstream import load_exact, read_checkpoint, strip_module_prefix


def _group_sizes(sd: Mapping[str, Tensor], prefix: str) -> list[int]:
    """Input widths of ``{prefix}.{i}.0.0.weight`` for i = 0, 1, ... (the first Linear of each group)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.0\.0\.weight$")
    found = {int(m.group(1)): v.shape[1] for k, v in sd.items() if (m := pattern.match(k))}
    return [found[i] for i in range(len(found))]


def upstream_kind(state_dict: Mapping[str, Tensor]) -> str:
    """``mcat``, ``motcat``, ``porpoise`` or ``cmta``, recognised from the keys.

    Raises:
        MstarError: If the keys are none of these.
    """
    if "mm.h1_factor" in state_dict and "attention_net.1.weight" in state_dict:
        return "porpoise"
    if "pathomics_encoder.cls_token" in state_dict and "genomics_fc.0.0.0.weight" in state_dict:
        return "cmta"
    if "sig_networks.0.0.0.weight" in state_dict and "wsi_net.0.weight" in state_dict:
        return "mcat" if "coattn.in_proj_weight" in state_dict else "motcat"
    raise MstarError("state_dict is not an upstream MCAT (sig_networks.*, coattn.*), MOTCAT "
                     "(sig_networks.*), Porpoise (attention_net.*, mm.h1_factor) or CMTA "
                     "(pathomics_encoder.*) model")


def fusion_from_upstream(source: str | Path | Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """Build the matching fusion model from an upstream state_dict and load it with every key checked.

    Args:
        source: A ``torch.save``-d state_dict or upstream engine checkpoint (``{'state_dict': sd, ...}``), or
            the mapping itself; ``module.`` prefixes are stripped.
        **kwargs: Extra constructor arguments (e.g. ``chunk_size`` for MOTCat).

    Raises:
        MstarError: If the keys are not an upstream fusion model or a key/shape does not match.
    """
    ckpt = read_checkpoint(source)
    inner = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    sd = strip_module_prefix(inner)
    kind = upstream_kind(sd)
    model: nn.Module
    if kind == "porpoise":
        model = Porpoise(path_dim=sd["attention_net.1.weight"].shape[1],
                         omic_dim=sd["fc_omic.0.0.weight"].shape[1], n_bins=sd["mm.fusion_bias"].shape[1],
                         **kwargs)
    elif kind == "cmta":
        model = CMTA(path_dim=sd["pathomics_fc.0.weight"].shape[1],
                     omic_sizes=_group_sizes(sd, "genomics_fc"), n_bins=sd["classifier.weight"].shape[0],
                     **kwargs)
    else:
        cls = MCAT if kind == "mcat" else MOTCat
        model = cls(path_dim=sd["wsi_net.0.weight"].shape[1], omic_sizes=_group_sizes(sd, "sig_networks"),
                    n_bins=sd["classifier.weight"].shape[0], **kwargs)
    load_exact(model, sd, f"upstream {kind} state_dict")
    return model
