"""kinema: an open implementation of the HunyuanVideo text-to-video system.

    from kinema import Pipeline
    video = Pipeline.from_pretrained()("a red circle moves to the right", seed=0)
    video.save("out.mp4")
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Pipeline", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use so that `import kinema` (and the CLI's --help) stays light.
    if name == "Pipeline":
        from kinema.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'kinema' has no attribute {name!r}")
