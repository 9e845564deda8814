"""kinema: an open implementation of the HunyuanVideo text-to-video system.

    from kinema import Pipeline, SamplingOptions
    pipe = Pipeline.from_pretrained()                       # the shipped toy model
    pipe("a red circle moves to the right", seed=0).save("out.mp4")
    pipe("a blue star moves up", SamplingOptions(steps=8, seed=3)).save("fast.mp4")
"""

from __future__ import annotations

from kinema.options import SamplingOptions

__version__ = "0.1.0"
__all__ = ["Pipeline", "SamplingOptions", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use so that `import kinema` (and the CLI's --help) stays light: no torch.
    if name == "Pipeline":
        from kinema.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'kinema' has no attribute {name!r}")
