"""mstar: multimodal self-taught pretraining for whole-slide pathology (mSTAR), end to end."""

__version__ = "0.1.0"
