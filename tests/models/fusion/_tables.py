"""The upstream state_dict tables of ../shared/reference/upstream_state_dicts.md, written out (omic sizes
[31, 57, 89, 64, 120, 45], Porpoise omic_input_dim 200): key -> shape, and the documented key/parameter
counts."""

from __future__ import annotations

SIZES = (31, 57, 89, 64, 120, 45)


def _sig(prefix: str, hidden: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    out = {}
    for i, size in enumerate(SIZES):
        out.update({f"{prefix}.{i}.0.0.weight": (hidden[0], size), f"{prefix}.{i}.0.0.bias": (hidden[0],),
                    f"{prefix}.{i}.1.0.weight": (hidden[1], hidden[0]),
                    f"{prefix}.{i}.1.0.bias": (hidden[1],)})
    return out


def _mha(prefix: str) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.in_proj_weight": (768, 256), f"{prefix}.in_proj_bias": (768,),
            f"{prefix}.out_proj.weight": (256, 256), f"{prefix}.out_proj.bias": (256,)}


def _torch_transformer(prefix: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for j in (0, 1):
        p = f"{prefix}.layers.{j}"
        out.update(_mha(f"{p}.self_attn"))
        out.update({f"{p}.linear1.weight": (512, 256), f"{p}.linear1.bias": (512,),
                    f"{p}.linear2.weight": (256, 512), f"{p}.linear2.bias": (256,),
                    f"{p}.norm1.weight": (256,), f"{p}.norm1.bias": (256,),
                    f"{p}.norm2.weight": (256,), f"{p}.norm2.bias": (256,)})
    return out


def _gated(prefix: str, in_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.attention_a.0.weight": (hidden, in_dim), f"{prefix}.attention_a.0.bias": (hidden,),
            f"{prefix}.attention_b.0.weight": (hidden, in_dim), f"{prefix}.attention_b.0.bias": (hidden,),
            f"{prefix}.attention_c.weight": (1, hidden), f"{prefix}.attention_c.bias": (1,)}


def _head() -> dict[str, tuple[int, ...]]:
    return {"mm.0.weight": (256, 512), "mm.0.bias": (256,), "mm.2.weight": (256, 256), "mm.2.bias": (256,),
            "classifier.weight": (4, 256), "classifier.bias": (4,)}


def _nystrom_trunk(prefix: str, ppeg: bool) -> dict[str, tuple[int, ...]]:
    out = {f"{prefix}.cls_token": (1, 1, 256)}
    if ppeg:
        for conv, k in (("proj", 7), ("proj1", 5), ("proj2", 3)):
            out.update({f"{prefix}.pos_layer.{conv}.weight": (256, 1, k, k),
                        f"{prefix}.pos_layer.{conv}.bias": (256,)})
    for i in (1, 2):
        p = f"{prefix}.layer{i}"
        out.update({f"{p}.norm.weight": (256,), f"{p}.norm.bias": (256,),
                    f"{p}.attn.to_qkv.weight": (768, 256), f"{p}.attn.to_out.0.weight": (256, 256),
                    f"{p}.attn.to_out.0.bias": (256,),
                    f"{p}.attn.res_conv.weight": (8, 1, 33, 1)})
    out.update({f"{prefix}.norm.weight": (256,), f"{prefix}.norm.bias": (256,)})
    return out


def _mcat_trunk() -> dict[str, tuple[int, ...]]:
    out = {"wsi_net.0.weight": (256, 1024), "wsi_net.0.bias": (256,), **_sig("sig_networks", (256, 256))}
    for side in ("path", "omic"):
        out.update(_torch_transformer(f"{side}_transformer"))
        out.update(_gated(f"{side}_attention_head", 256, 256))
        out.update({f"{side}_rho.0.weight": (256, 256), f"{side}_rho.0.bias": (256,)})
    return {**out, **_head()}


MCAT = {**_mcat_trunk(), **_mha("coattn")}
MOTCAT = _mcat_trunk()
PORPOISE = {
    "attention_net.1.weight": (512, 1024), "attention_net.1.bias": (512,),
    **_gated("attention_net.4", 512, 256),
    "rho.0.weight": (256, 512), "rho.0.bias": (256,),
    "fc_omic.0.0.weight": (256, 200), "fc_omic.0.0.bias": (256,), "fc_omic.1.0.weight": (256, 256),
    "fc_omic.1.0.bias": (256,),
    "mm.h1_factor": (16, 33, 4), "mm.h2_factor": (16, 33, 4), "mm.fusion_weights": (1, 16),
    "mm.fusion_bias": (1, 4),
    **{f"mm.linear_{k}{m}.0.{p}": s for m in (1, 2) for k, (w, b) in
       {"h": ((32, 256), (32,)), "z": ((32, 512), (32,)), "o": ((32, 32), (32,))}.items()
       for p, s in (("weight", w), ("bias", b))},
    "classifier_mm.weight": (4, 256), "classifier_mm.bias": (4,),
}
CMTA = {
    "pathomics_fc.0.weight": (256, 1024), "pathomics_fc.0.bias": (256,), "pathomics_fc.3.weight": (256, 256),
    "pathomics_fc.3.bias": (256,), **_sig("genomics_fc", (1024, 256)),
    **_nystrom_trunk("pathomics_encoder", True), **_nystrom_trunk("pathomics_decoder", True),
    **_mha("P_in_G_Att"), **_mha("G_in_P_Att"),
    **_nystrom_trunk("genomics_encoder", False), **_nystrom_trunk("genomics_decoder", False), **_head(),
}
TABLES = {  # name: (key -> shape, documented key count, documented parameter count)
    "mcat": (MCAT, 100, 3_727_622),
    "motcat": (MOTCAT, 96, 3_464_454),
    "porpoise": (PORPOISE, 32, 1_092_953),
    "cmta": (CMTA, 114, 5_201_476),
}
