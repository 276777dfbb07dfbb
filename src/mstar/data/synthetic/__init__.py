"""A deterministic synthetic multimodal cohort: slides, reports, RNA-seq and survival with planted signal."""

from mstar.data.synthetic.cohort import SynthConfig, make_cohort

__all__ = ["SynthConfig", "make_cohort"]
