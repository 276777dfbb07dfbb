"""Every setting of `mstar demo`, in one place: small models that learn the synthetic cohort on a laptop CPU.

The settings were chosen on the demo cohort (``mstar synth``, seeds 0-2); they are not claims about other
data (``RESULTS.md`` reports held-out cohorts).
"""

from __future__ import annotations

#: The demo's patch encoder: timm's test ViT, random init, 64-d (no weights to download).
DEMO_ENCODER = "timm:test_vit"

#: Supervised classification and survival (ABMIL).
DEMO_TRAINING = dict(model="abmil", epochs=40, lr=1e-3, batch_size=8, patience=15, bootstrap=1000,
                     model_args={"dim": 64, "attn_dim": 32})

#: Stage 1: learns the synthetic cohort in about 30 s on 2 CPU cores: 64-d everything, the frozen MiniLM with
#: its pooled token states cached (only proj_text trains), the default SNN gene encoder.
DEMO_STAGE1 = dict(dim=64, vision_args={"heads": 4, "dim_head": 16, "num_landmarks": 32}, max_patches=256,
                   batch_size=16, epochs=20, lr=3e-3, warmup_fraction=0.05, val_every=5, bootstrap=500,
                   max_tokens=128)

#: Stage 2: two short epochs of self-training of the demo encoder.
DEMO_SELFTRAIN = dict(epochs=2, steps_per_epoch=10, slides_per_step=4, patches_per_slide=8, lr=3e-5,
                      val_patches_per_slide=24, probe_slides=16, bootstrap=300, extract_batch=64)

#: The toy stage-1-format aggregator stage 2 uses when no stage-1 run is given (`mstar train classify` code).
DEMO_TOY_STAGE1 = dict(dim=32, epochs=10)

#: Zero-shot, few-shot and retrieval.
DEMO_PROMPTS = "synthetic_cancer_type"
DEMO_ZERO_FEW_SHOT = dict(shots=(1, 2, 4, 8), runs=5, bootstrap=500, heatmaps=2)

#: Multimodal survival: SNN (RNA only), ABMIL (slides only), MCAT and additive late fusion.
DEMO_MULTIMODAL = dict(epochs=20, lr=5e-4, batch_size=8, patience=20, bootstrap=1000)
DEMO_MULTIMODAL_MODELS = {"snn": {}, "abmil": {"dim": 64, "attn_dim": 32}, "mcat": {},
                          "late": {"fusion": "sum", "path_width": 64, "attn_dim": 32}}

#: Report generation. 38 training reports only: token dropout 0.3 keeps the decoder looking at the slide (0.1
#: collapses to one template on the demo cohort), and it needs ~100 epochs to start conditioning on it (30
#: epochs: type stated correctly 25-67 %; 100: 33-100 % over seeds 0-2, docs/report_generation.md). The
#: 240-case test in tests/tasks/test_report_task.py is the learning check.
DEMO_REPORT = dict(epochs=100, lr=4e-3, gamma=0.98, grad_clip_value=None, batch_size=8, min_freq=3,
                   val_every=5, beam_size=3, val_beam_size=1, length_penalty=1.0, bootstrap=500,
                   model_args={"d_model": 32, "d_ff": 64, "n_heads": 4, "d_vf": 64, "cmm_size": 64,
                               "cmm_dim": 32, "topk": 16, "prototype_num": 16, "region_size": 16,
                               "num_layers": 2, "encoder_layers": 2, "dropout": 0.0,
                               "drop_prob_lm": 0.3})
