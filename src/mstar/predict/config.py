"""Settings of `mstar predict` (resolved like every command's settings: defaults < --config < flags)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mstar.run.config import RunConfig


@dataclass
class PredictConfig(RunConfig):
    """A trained run applied to new slides (or their features), with evidence and pages."""

    inputs: list[str] = field(default_factory=list)  # slide files / folders of slides, or one features folder
    run: str = ""                      # the trained classify/survival run (runs/<task>/<name>)
    units: list[str] = field(default_factory=list)  # which units' models (default: all = the ensemble)
    top_k: int = 8                     # evidence tiles cut from each slide
    slide_mpp: float | None = None     # level-0 µm/px for slides whose metadata has none
    checkpoint: str | None = None      # the encoder's weights, when slides are embedded on the way
    batch_size: int = 64               # tiles per forward pass while embedding
    omics: str | None = None           # multimodal runs: omics table (or folder of <case>.csv) by case
    cases: str | None = None           # a manifest mapping slides to cases (default: the slide id, or its
                                       # TCGA patient barcode, is the case)
    knowledge: str | None = None       # knowledge YAML (classes, concepts with sources)
    stage1: str | None = None          # stage-1 checkpoint that ranks the knowledge statements per slide
    top_statements: int = 3            # supporting statements cited per slide
    skip_errors: bool = False          # record a slide that fails and go on
    out: str = ""                      # the output folder (predictions.csv, index.html, evidence/, slides/)
    name: str | None = None

    KIND: ClassVar[str] = "predict"
    REQUIRED: ClassVar[tuple[str, ...]] = ("inputs", "run", "out")
    AT_LEAST: ClassVar[dict[str, float]] = {"top_k": 1, "batch_size": 1, "top_statements": 1}
    POSITIVE: ClassVar[tuple[str, ...]] = ()
    INPUTS: ClassVar[tuple[str, ...]] = ("inputs", "run", "checkpoint", "omics", "cases", "knowledge",
                                         "stage1")
    RUNTIME: ClassVar[tuple[str, ...]] = ("out", "name", "skip_errors", "batch_size")
    BESIDE: ClassVar[str] = "another --out to predict beside it"

    def check(self) -> None:
        from mstar.errors import MstarError

        if self.slide_mpp is not None and not self.slide_mpp > 0:
            raise MstarError(f"config: 'slide_mpp' must be positive, got {self.slide_mpp!r}")
        if self.knowledge and not self.stage1:
            raise MstarError("config: 'knowledge' needs 'stage1' (--stage1 CKPT): the statements are ranked "
                             "with the stage-1 text and slide encoders")

    def run_dir(self) -> Path:
        """The output folder itself (``--out``)."""
        return Path(self.out)

    def default_name(self) -> str:
        return Path(self.out).name

    def input_paths(self) -> dict[str, Any]:
        """The inputs (slides or feature files), the models of the run, the encoder weights, the knowledge
        file and the stage-1 checkpoint."""
        models = sorted(Path(self.run).glob("units/*/model.pt"))
        if self.units:
            models = [m for m in models if m.parent.name in self.units]
        files = []  # a folder counts by its files (names, sizes, times): slides or feature files
        for p in map(Path, self.inputs):
            files += sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
        return {"inputs": files, "models": models, "checkpoint": self.checkpoint, "omics": self.omics,
                "cases": self.cases, "knowledge": self.knowledge, "stage1": self.stage1}
