"""`mstar predict` and `mstar heatmap`: a trained run applied to new, unlabelled slides, with the evidence
behind each prediction (per-tile scores, heatmap, top tiles, QuPath GeoJSON), knowledge citations from a
stage-1 model, and static HTML pages a person reads (docs/predict.md)."""
